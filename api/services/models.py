"""Model registration: validate the manifest, load the artifact once, store it, append a ledger entry."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from api.container import Services
from api.errors import InvalidRequestError
from api.json_body import JsonBodyError, parse_json
from api.schemas import ManifestIn
from audit.canonical import canonical_bytes
from audit.entry import parse_timestamp
from audit.payloads import ModelRegistered
from explain.artifacts import detect_format, load_predictor
from explain.errors import ArtifactError, InvalidInputError, InvalidSchemaError
from explain.predictor import frame_from_rows
from explain.schema import ModelSpec
from explain.templates import check_templates
from storage.errors import ConflictError
from storage.records import ModelVersionRecord

UNSAFE_FORMATS = ("pickle", "joblib")
MAX_BACKGROUND_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Registration:
    record: ModelVersionRecord
    leaf_hash: str | None
    created: bool


def parse_background_file(data: bytes, filename: str | None) -> list[dict[str, Any]]:
    """Background rows from a CSV (header row) or JSON/JSONL file part."""
    text = data.decode("utf-8-sig")
    name = (filename or "").lower()
    stripped = text.lstrip()
    if name.endswith(".json") or stripped.startswith("["):
        rows = parse_json(text, where="background")
        if not isinstance(rows, list):
            raise InvalidRequestError("background JSON must be a list of rows", field="background")
        return rows
    if name.endswith(".jsonl") or stripped.startswith("{"):
        return [parse_json(line, where=f"background[{i}]") for i, line in enumerate(text.splitlines()) if line.strip()]
    if "\x00" in text:
        raise JsonBodyError("background", "the CSV contains U+0000, which is not stored")
    return list(csv.DictReader(io.StringIO(text)))


def _manifest_spec(manifest: ManifestIn) -> ModelSpec:
    """The feature schema, with every refusal naming its manifest path (``manifest.features[3].name``)."""
    seen: dict[str, int] = {}
    for i, feature in enumerate(manifest.features):
        if feature.name in seen:
            raise InvalidSchemaError(
                f"manifest.features[{i}].name",
                f"duplicate feature name {feature.name!r} (also manifest.features[{seen[feature.name]}])",
            )
        seen[feature.name] = i
    try:
        return ModelSpec.from_dict(manifest.model_dump(include={"task", "class_labels", "positive_class", "features"}))
    except InvalidSchemaError as exc:
        path = exc.path
        for name, i in seen.items():  # explain names features by name; the client sent a list
            if path == f"features.{name}" or path.startswith(f"features.{name}."):
                path = f"features[{i}]" + path[len(f"features.{name}") :]
                break
        raise InvalidSchemaError(f"manifest.{path}", exc.reason) from exc


def _coerce_csv_row(spec: ModelSpec, row: dict[str, Any]) -> dict[str, Any]:
    """CSV carries strings: convert each to the feature's type before validation."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key not in {f.name for f in spec.features} or not isinstance(value, str):
            out[key] = value
            continue
        kind = spec.feature(key).type
        try:
            if kind == "number":
                out[key] = float(value)
            elif kind == "integer":
                out[key] = int(float(value))
            elif kind == "boolean":
                out[key] = {"true": True, "1": True, "false": False, "0": False}[value.strip().lower()]
            else:
                out[key] = value
        except (ValueError, KeyError):
            out[key] = value  # validation names the field
    return out


def register_model(
    services: Services,
    *,
    manifest: ManifestIn,
    artifact: bytes,
    background_rows: list[dict[str, Any]] | None = None,
    background_from_csv: bool = False,
    allow_pickle: bool = False,
) -> Registration:
    """Register ``name@version``; same artifact and manifest again is a no-op, anything different a 409.

    ``allow_pickle``: load pickle/joblib artifacts (arbitrary code). The caller decides: the HTTP route passes
    True only when the operator set RATIONALE_ALLOW_PICKLE and the caller is admin (PRODUCT §3). Every
    refusal names its field: ``artifact``, or the manifest path the artifact disagrees with."""
    spec = _manifest_spec(manifest)
    check_templates(manifest.templates, path="manifest.templates")
    if not artifact:
        raise InvalidRequestError("the artifact is empty", field="artifact")
    fmt = manifest.format or detect_format(artifact)
    if fmt in UNSAFE_FORMATS and not allow_pickle:
        raise ArtifactError(
            f"{fmt} artifacts can execute arbitrary code when loaded: refused unless the operator sets "
            "RATIONALE_ALLOW_PICKLE=true and an admin uploads it; use skops instead",
            details={"format": fmt},
        )
    rows = background_rows if background_rows is not None else manifest.background
    if not rows:
        raise InvalidRequestError(
            "a background sample is required (manifest.background or a `background` file)", field="background"
        )
    if len(rows) > MAX_BACKGROUND_ROWS:
        raise InvalidRequestError(f"at most {MAX_BACKGROUND_ROWS} background rows", field="background")
    if background_from_csv:
        rows = [_coerce_csv_row(spec, r) for r in rows]
    clean_rows = spec.validate_rows(rows, path="background")
    try:
        predictor = load_predictor(
            artifact,
            format=fmt,
            spec=spec,
            trust_pickle=allow_pickle,
            trusted_types=services.settings.extra_trusted_types,
        )
    except ArtifactError as exc:
        if exc.path != "artifact":  # the artifact disagrees with the manifest: name the manifest's field
            exc.path = f"manifest.{exc.path}"
        raise
    try:
        predictor.predict_scores(frame_from_rows(spec, clean_rows[:16]))
    except Exception as exc:  # the artifact does not fit its own schema
        raise ArtifactError(f"the artifact cannot predict on the declared features: {exc}") from exc

    artifact_sha = hashlib.sha256(artifact).hexdigest()
    background_bytes = canonical_bytes(clean_rows)
    background_sha = hashlib.sha256(background_bytes).hexdigest()
    stored_manifest = manifest.model_dump(mode="json", exclude={"background", "format"})
    stored_manifest["features"] = [f.to_dict() for f in spec.features]
    canonical_bytes(stored_manifest)  # refuses NaN/inf in metadata before anything is written

    with services.db.unit_of_work(write=False) as uow:
        existing = uow.models.get(manifest.name, manifest.version)
    if existing is not None:
        return _same_or_conflict(existing, artifact_sha, background_sha, stored_manifest)

    services.blobs.put(artifact)
    services.blobs.put(background_bytes)
    with services.db.unit_of_work() as uow:
        existing = uow.models.get(manifest.name, manifest.version)
        if existing is not None:  # lost a race with an identical request
            return _same_or_conflict(existing, artifact_sha, background_sha, stored_manifest)
        payload = ModelRegistered(
            name=manifest.name,
            model_version=manifest.version,
            artifact_sha256=artifact_sha,
            artifact_format=fmt,
            background_sha256=background_sha,
            background_rows=len(clean_rows),
            trusted_pickle=fmt in UNSAFE_FORMATS,
            manifest=stored_manifest,
        )
        [entry] = services.ledger.append(uow.ledger, [payload.draft()])
        record = uow.models.add(
            name=manifest.name,
            version=manifest.version,
            task=manifest.task,
            manifest=stored_manifest,
            artifact_sha256=artifact_sha,
            artifact_format=fmt,
            background_sha256=background_sha,
            trusted_pickle=fmt in UNSAFE_FORMATS,
            ledger_index=entry.index,
            registered_at=parse_timestamp(entry.recorded_at),  # the entry's time, so the row can be checked
        )
    return Registration(record=record, leaf_hash=entry.leaf_hash.hex(), created=True)


def _same_or_conflict(
    existing: ModelVersionRecord, artifact_sha: str, background_sha: str, manifest: dict[str, Any]
) -> Registration:
    if (
        existing.artifact_sha256 == artifact_sha
        and existing.background_sha256 == background_sha
        and canonical_bytes(existing.manifest) == canonical_bytes(manifest)
    ):
        return Registration(record=existing, leaf_hash=None, created=False)
    raise ConflictError(
        f"model {existing.ref} is already registered with a different artifact, background or manifest; "
        "model versions are immutable: register a new version"
    )


def resolve_model(services: Services, ref: str, *, field: str) -> ModelVersionRecord:
    """Look up ``name@version``; unknown references are a 422 naming the field."""
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise InvalidInputError(field, "must be written name@version")
    with services.db.unit_of_work(write=False) as uow:
        record = uow.models.get(name, version)
    if record is None:
        raise InvalidInputError(field, f"model {ref} is not registered")
    return record
