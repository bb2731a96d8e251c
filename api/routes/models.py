"""POST /v1/models and model lookups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import Allow, ServicesDep
from api.errors import InvalidRequestError, ResourceNotFoundError
from api.json_body import JsonBodyError, parse_json
from api.params import NamePath
from api.presenters import model_public, model_view_public
from api.schemas import ManifestIn, ModelList, ModelVersionPublic
from api.services import reading
from api.services.access import Principal, Role
from api.services.models import parse_background_file, register_model
from api.settings import Settings

router = APIRouter(prefix="/v1/models", tags=["models"])


def parse_manifest(text: str) -> ManifestIn:
    """The manifest through the strict JSON reader (duplicate keys, NaN, depth … name ``manifest.<path>``)."""
    data = parse_json(text, where="manifest")
    try:
        return ManifestIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("manifest", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc


def upload_may_unpickle(settings: Settings, *, principal_is_admin: bool = False) -> bool:
    """Pickle/joblib artifacts run arbitrary code when loaded: only when the operator set
    RATIONALE_ALLOW_PICKLE=true AND the caller is admin (PRODUCT §3, issue #14 item 6). Never a request flag.
    ``principal_is_admin`` defaults to False so a caller that forgets it is refused."""
    return bool(settings.allow_pickle and principal_is_admin)


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
        except JsonBodyError:
            raise
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
        allow_pickle=upload_may_unpickle(services.settings, principal_is_admin=principal.role is Role.ADMIN),
    )
    return model_public(registration.record, leaf_hash=registration.leaf_hash, created=registration.created)


@router.get("", response_model=ModelList)
def list_models(
    services: ServicesDep,
    _: Annotated[Principal, Allow("models.read")],
    name: Annotated[str | None, Query(max_length=128)] = None,
) -> ModelList:
    return ModelList(items=[model_view_public(v) for v in reading.list_models(services, name=name)])


@router.get("/{name}/versions/{version}", response_model=ModelVersionPublic)
def get_model(
    services: ServicesDep, _: Annotated[Principal, Allow("models.read")], name: NamePath, version: NamePath
) -> ModelVersionPublic:
    view = reading.read_model(services, name, version)
    if view is None:
        raise ResourceNotFoundError(f"model {name}@{version} is not registered")
    return model_view_public(view)
