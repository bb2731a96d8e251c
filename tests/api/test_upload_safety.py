"""Issue #14 item 6: a safe edge for model uploads.

Pickle/joblib only when the operator sets ``RATIONALE_ALLOW_PICKLE`` (and, once access control lands, the
caller is admin) — never by a request flag; skops types trusted by exact name, never a module prefix;
manifest templates validated at registration, and a stored bad template never turns a read into a 500.
"""

from __future__ import annotations

import builtins
import functools
import json
import pickle
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import build_services
from explain.artifacts import load_predictor
from explain.errors import ArtifactError
from explain.samples import credit_spec
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest, ledger_size


class _Boom:
    """A pickle that, when loaded, leaves a file behind: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _upload(client, manifest: dict, artifact: bytes, name: str = "m"):
    return client.post("/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": (name, artifact)})


def test_the_request_flag_is_gone_and_never_unpickles(client, tmp_path):
    marker = tmp_path / "pwned"
    manifest = credit_manifest(version="pickled", format="pickle", trust_unsafe_pickle=True)
    resp = _upload(client, manifest, pickle.dumps(_Boom(marker)), "m.pkl")
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"]["field"] == "manifest.trust_unsafe_pickle"
    assert not marker.exists()
    assert ledger_size(client) == 0


@pytest.mark.parametrize("fmt", ["pickle", "joblib"])
def test_pickle_is_refused_unless_the_operator_allows_it(client, tmp_path, fmt):
    marker = tmp_path / "pwned"
    resp = _upload(client, credit_manifest(version="pickled", format=fmt), pickle.dumps(_Boom(marker)), "m.pkl")
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["details"]["field"] == "artifact" and "RATIONALE_ALLOW_PICKLE" in error["message"]
    sniffed = _upload(client, credit_manifest(version="sniffed"), pickle.dumps(_Boom(marker)), "m.pkl")
    assert sniffed.status_code == 422 and sniffed.json()["error"]["details"]["field"] == "artifact"
    assert not marker.exists()
    assert ledger_size(client) == 0


def test_an_operator_who_allows_pickle_can_register_one(settings, credit_pipeline, tmp_path):
    allowed = settings.model_copy(update={"allow_pickle": True})
    services = build_services(allowed)
    try:
        app = create_app(services=services, start_workers=False, publish_checkpoints=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            # the setting alone is not enough: a data scientist (who may register models) is refused
            marker = tmp_path / "pwned"
            client.headers.update(auth_headers(services, role="data_scientist"))
            refused = _upload(
                client, credit_manifest(version="ds", format="pickle"), pickle.dumps(_Boom(marker)), "m.pkl"
            )
            assert refused.status_code == 422 and refused.json()["error"]["details"]["field"] == "artifact"
            assert not marker.exists()
            client.headers.update(auth_headers(services, role="admin"))
            manifest = credit_manifest(version="pickled", format="pickle")
            resp = _upload(client, manifest, pickle.dumps(credit_pipeline), "m.pkl")
            assert resp.status_code == 201, resp.text
            assert resp.json()["trusted_pickle"] is True
            row = applicant_rows(1)[0]
            decided = client.post("/v1/decisions", json={"decision_id": "p1", "model": "credit@pickled", "inputs": row})
            assert decided.status_code == 201, decided.text
    finally:
        services.close()


def test_pickle_needs_the_setting_and_an_admin(settings):
    from api.routes.models import upload_may_unpickle

    on = settings.model_copy(update={"allow_pickle": True})
    assert upload_may_unpickle(settings, principal_is_admin=True) is False
    assert upload_may_unpickle(on, principal_is_admin=False) is False
    assert upload_may_unpickle(on) is False  # the hook defaults to "not admin"
    assert upload_may_unpickle(on, principal_is_admin=True) is True


def _function_transformer(func) -> bytes:
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    data: bytes = skops.io.dumps(FunctionTransformer(func=func))
    return data


ATTACKS = {
    "builtins.exec": lambda: _function_transformer(builtins.exec),
    "builtins.eval": lambda: _function_transformer(builtins.eval),
    "partial-eval": lambda: _function_transformer(functools.partial(builtins.eval, "__import__('os').getpid()")),
    "partial-exec": lambda: _function_transformer(functools.partial(builtins.exec, "import os")),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_skops_files_calling_builtins_are_refused_by_exact_name(attack):
    with pytest.raises(ArtifactError) as refused:
        load_predictor(ATTACKS[attack](), format="skops", spec=credit_spec())
    assert refused.value.path == "artifact"
    untrusted = refused.value.details["untrusted_types"]
    assert {"builtins.exec", "builtins.eval"} & set(untrusted), untrusted


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_skops_attacks_are_a_422_naming_artifact_and_the_type(client, attack):
    resp = _upload(client, credit_manifest(), ATTACKS[attack](), "m.skops")
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["details"]["field"] == "artifact"
    assert "builtins.e" in error["message"]
    assert ledger_size(client) == 0


BAD_TEMPLATES = [
    ("reason", "{feature.__class__.__mro__}"),
    ("reason_first", "{feature.__init__.__globals__}"),
    ("anchor", "{rule[0]}"),
    ("reason", "{nope}"),
    ("change", "{feature!r:>{width}}"),
    ("counterfactual", "unbalanced {"),
    ("reason", "{value:{fill}}"),
    ("no_such_template", "{feature}"),
    ("reason", "{}"),
]


@pytest.mark.parametrize(("key", "template"), BAD_TEMPLATES)
def test_bad_templates_are_a_422_naming_the_template(client, credit_artifact, key, template):
    resp = _upload(client, credit_manifest(templates={key: template}), credit_artifact)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"]["field"] == f"manifest.templates.{key}"
    assert ledger_size(client) == 0


def test_plain_templates_are_accepted_and_used(client, credit_artifact):
    templates = {"reason": "{feature} ({value}) {direction} {target}.", "anchor": "Holds if {rule} ({precision:.0%})."}
    resp = _upload(client, credit_manifest(templates=templates), credit_artifact)
    assert resp.status_code == 201, resp.text


def test_a_stored_bad_template_never_makes_a_read_a_500(client, services, credit_artifact):
    """A model registered before templates were checked (written here below the API) still reads and exports."""
    from api.workers.local_pool import drain
    from audit.entry import EntryDraft

    good = _upload(client, credit_manifest(), credit_artifact)
    assert good.status_code == 201
    record = None
    with services.db.unit_of_work(write=False) as uow:
        record = uow.models.get("credit", "1")
    assert record is not None
    manifest = {**record.manifest, "templates": {"reason_first": "{nope}", "reason": "{feature.__class__.__mro__}"}}
    with services.db.unit_of_work() as uow:
        payload = {
            "model": "credit@old",
            "name": "credit",
            "version": "old",
            "artifact_sha256": record.artifact_sha256,
            "artifact_format": record.artifact_format,
            "background_sha256": record.background_sha256,
            "background_rows": 60,
            "trusted_pickle": False,
            "manifest": manifest,
        }
        [entry] = services.ledger.append(uow.ledger, [EntryDraft("model.registered", payload)])
        uow.models.add(
            name="credit",
            version="old",
            task=record.task,
            manifest=manifest,
            artifact_sha256=record.artifact_sha256,
            artifact_format=record.artifact_format,
            background_sha256=record.background_sha256,
            trusted_pickle=False,
            ledger_index=entry.index,
            registered_at=services.clock(),
        )
    row = applicant_rows(1)[0]
    resp = client.post("/v1/decisions", json={"decision_id": "t1", "model": "credit@old", "inputs": row})
    assert resp.status_code == 201, resp.text
    drain(services)
    got = client.get("/v1/decisions/t1")
    assert got.status_code == 200, got.text
    sentences = got.json()["reasons"]["sentences"]
    assert sentences and not any("mro" in s or "class" in s for s in sentences)
    export = client.post("/v1/exports", json={"decision_ids": ["t1"]})
    assert export.status_code == 201, export.text


def test_operators_add_trusted_types_by_exact_name_only():
    import numpy as np
    import skops.io
    from sklearn.neighbors import KNeighborsClassifier

    from explain.schema import Feature, ModelSpec

    frame_x = np.random.default_rng(0).random((30, 2))
    labels = np.where(frame_x[:, 0] > 0.5, "yes", "no")
    data = skops.io.dumps(KNeighborsClassifier(metric="manhattan").fit(frame_x, labels))
    spec = ModelSpec(
        task="binary", class_labels=("no", "yes"), features=(Feature("a", "number"), Feature("b", "number"))
    )
    manhattan = "sklearn.metrics._dist_metrics.ManhattanDistance64"
    with pytest.raises(ArtifactError) as refused:
        load_predictor(data, format="skops", spec=spec)
    assert refused.value.details["untrusted_types"] == [manhattan]
    assert load_predictor(data, format="skops", spec=spec, trusted_types={manhattan}) is not None


def test_the_trusted_types_setting_refuses_prefixes(settings):
    from pydantic import ValidationError

    from api.settings import Settings

    for prefix in ("builtins.", "sklearn.*", "builtins"):
        with pytest.raises(ValidationError):
            Settings(**{**settings.model_dump(), "skops_trusted_types": prefix})
    ok = Settings(**{**settings.model_dump(), "skops_trusted_types": "a.B, c.d.E"})
    assert ok.extra_trusted_types == {"a.B", "c.d.E"}
