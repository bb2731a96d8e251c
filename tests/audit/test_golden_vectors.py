"""RFC 9162 inclusion and consistency golden vectors (transparency-dev/merkle), corrupted ones included."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from audit.errors import ProofError
from audit.merkle import verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[1] / "assets" / "rfc9162"


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def test_vectors_are_present():
    assert len(_cases("inclusion")) > 50 and len(_cases("consistency")) > 50


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vector(path: Path):
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]

    def check() -> None:
        verify_inclusion(
            leaf=_b64(case["leafHash"]),
            index=case["leafIdx"],
            tree_size=case["treeSize"],
            proof=proof,
            root=_b64(case["root"]),
        )

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vector(path: Path):
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]

    def check() -> None:
        verify_consistency(
            first=case["size1"],
            second=case["size2"],
            proof=proof,
            first_root=_b64(case["root1"]),
            second_root=_b64(case["root2"]),
        )

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()
