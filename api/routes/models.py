"""POST /v1/models and model lookups."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import Allow, ServicesDep
from api.errors import InvalidRequestError
from api.presenters import model_public
from api.schemas import ManifestIn, ModelList, ModelVersionPublic
from api.services import lookups
from api.services.access import Principal
from api.services.models import parse_background_file, register_model

router = APIRouter(prefix="/v1/models", tags=["models"])


def parse_manifest(text: str) -> ManifestIn:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"manifest is not valid JSON: {exc.msg}", field="manifest") from exc
    try:
        return ManifestIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("manifest", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ModelVersionPublic)
def register(
    services: ServicesDep,
    principal: Annotated[Principal, Allow("models.register")],
    manifest: Annotated[str, Form(description="the manifest as JSON (see ManifestIn)")],
    artifact: Annotated[UploadFile, File(description="model artifact: skops, XGBoost JSON/UBJ, LightGBM text")],
    background: Annotated[UploadFile | None, File(description="background sample as CSV, JSON or JSONL")] = None,
) -> ModelVersionPublic:
    """Register an immutable model version; the same version again with other content is a 409."""
    parsed = parse_manifest(manifest)
    rows = None
    from_csv = False
    if background is not None:
        raw = background.file.read()
        try:
            rows = parse_background_file(raw, background.filename)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"background file cannot be read: {exc}", field="background") from exc
        from_csv = not (background.filename or "").lower().endswith(
            (".json", ".jsonl")
        ) and not raw.lstrip().startswith((b"[", b"{"))
    registration = register_model(
        services,
        manifest=parsed,
        artifact=artifact.file.read(),
        background_rows=rows,
        background_from_csv=from_csv,
    )
    return model_public(registration.record, leaf_hash=registration.leaf_hash, created=registration.created)


@router.get("", response_model=ModelList)
def list_models(
    services: ServicesDep, _: Annotated[Principal, Allow("models.read")], name: str | None = None
) -> ModelList:
    return ModelList(items=[model_public(r) for r in lookups.list_models(services, name=name)])


@router.get("/{name}/versions/{version}", response_model=ModelVersionPublic)
def get_model(
    services: ServicesDep, _: Annotated[Principal, Allow("models.read")], name: str, version: str
) -> ModelVersionPublic:
    record, leaf = lookups.get_model(services, name, version)
    return model_public(record, leaf_hash=leaf)
