"""Shared builders for API tests."""

from __future__ import annotations

from typing import Any

from explain.samples import credit_spec, make_credit_frame


def credit_manifest(**overrides: Any) -> dict[str, Any]:
    spec = credit_spec()
    background, _ = make_credit_frame(60, seed=7)
    manifest: dict[str, Any] = {
        "name": "credit",
        "version": "1",
        "task": "binary",
        "class_labels": list(spec.class_labels),
        "features": [f.to_dict() for f in spec.features],
        "background": background.to_dict(orient="records"),
        "metadata": {"owner": "tests"},
    }
    manifest.update(overrides)
    return manifest


def applicant_rows(n: int, *, seed: int = 11) -> list[dict[str, Any]]:
    frame, _ = make_credit_frame(n, seed=seed)
    return frame.to_dict(orient="records")


def ledger_size(client: Any) -> int:
    return int(client.get("/healthz").json()["ledger_size"])
