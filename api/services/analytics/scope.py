"""A model's versions and the windows of decisions the analytics compare."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from api.container import Services
from api.errors import InvalidRequestError, ResourceNotFoundError
from storage.analytics import Window
from storage.records import ModelVersionRecord


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    type: str  # number, integer, category, boolean

    @property
    def numeric(self) -> bool:
        return self.type in ("number", "integer")


@dataclass(frozen=True, slots=True)
class ModelScope:
    """Every registered version of one model name, oldest first."""

    name: str
    versions: tuple[ModelVersionRecord, ...]

    @property
    def latest(self) -> ModelVersionRecord:
        return self.versions[-1]

    @property
    def task(self) -> str:
        return self.latest.task

    @property
    def class_labels(self) -> list[str]:
        return list(self.latest.manifest.get("class_labels") or [])

    @property
    def positive_class(self) -> str | None:
        """The manifest's positive class; otherwise the second label (scikit-learn's ``classes_[1]``)."""
        if self.task != "binary":
            return None
        labels = self.class_labels
        return self.latest.manifest.get("positive_class") or (labels[1] if len(labels) > 1 else None)

    def features(self, versions: Sequence[ModelVersionRecord] | None = None) -> list[Feature]:
        """Features every one of ``versions`` has, in the order of the last of them."""
        chosen = list(versions or self.versions)
        names = set.intersection(*({f["name"] for f in v.manifest["features"]} for v in chosen))
        return [Feature(f["name"], f["type"]) for f in chosen[-1].manifest["features"] if f["name"] in names]

    def by_id(self, model_version_id: int) -> ModelVersionRecord:
        return next(v for v in self.versions if v.id == model_version_id)

    def pick(self, versions: Sequence[str] | None, *, field: str) -> list[ModelVersionRecord]:
        """The named versions (all when none is named); an unknown one is a 422 naming ``field``."""
        if not versions:
            return list(self.versions)
        known = {v.version: v for v in self.versions}
        unknown = [v for v in versions if v not in known]
        if unknown:
            raise InvalidRequestError(f"model {self.name} has no version {unknown[0]!r}", field=field)
        return [known[v] for v in dict.fromkeys(versions)]

    def window(
        self,
        versions: Sequence[str] | None,
        since: datetime | None,
        until: datetime | None,
        *,
        field: str = "version",
    ) -> Window:
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidRequestError("must include a timezone", field=name)
        if since is not None and until is not None and since >= until:
            raise InvalidRequestError("since must be before until", field="since")
        return Window(tuple(v.id for v in self.pick(versions, field=field)), since, until)


def load_scope(services: Services, name: str) -> ModelScope:
    """Raises ResourceNotFoundError (404) when no version of ``name`` is registered."""
    with services.db.unit_of_work(write=False) as uow:
        versions = uow.models.list(name=name)
    if not versions:
        raise ResourceNotFoundError(f"model {name!r} is not registered", field="name")
    return ModelScope(name, tuple(versions))
