"""Loaded model versions, cached per process.

Loading an artifact (skops parsing, booster deserialisation) costs far more than a prediction, so each
process keeps the few versions in use. Predictors are shared between threads (prediction is read-only);
explainer objects are not, and are built per batch by the job runner.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from api.heap import freeze_long_lived
from explain.artifacts import load_predictor
from explain.base import Background, Budget, Predictor
from explain.predictor import frame_from_rows
from explain.schema import ModelSpec
from storage.blobs import BlobStore
from storage.records import ModelVersionRecord


@dataclass(frozen=True, slots=True)
class LoadedModel:
    record: ModelVersionRecord
    spec: ModelSpec
    predictor: Predictor
    background: Background

    @property
    def explainers(self) -> dict[str, Any]:
        explainers: dict[str, Any] = self.record.manifest.get("explainers", {})
        return explainers

    def default_methods(self) -> list[str]:
        return list(self.explainers.get("default_methods", ["shap"]))

    def params_for(self, method: str) -> dict[str, Any]:
        return dict(self.explainers.get("params", {}).get(method, {}))

    def budget_for(self, method: str, default: Budget) -> Budget:
        override = self.explainers.get("budgets", {}).get(method, {})
        return Budget(
            max_model_calls=int(override.get("max_model_calls") or default.max_model_calls),
            max_seconds=float(override.get("max_seconds") or default.max_seconds),
        )


def spec_from_manifest(manifest: dict[str, Any]) -> ModelSpec:
    return ModelSpec.from_dict(manifest)


def load_background(blobs: BlobStore, sha256: str, spec: ModelSpec) -> Background:
    rows = json.loads(blobs.get(sha256))
    return Background(frame=frame_from_rows(spec, rows), sha256=sha256)


class ModelCache:
    """A small LRU of loaded model versions keyed by id; safe to call from many threads."""

    def __init__(
        self,
        *,
        blobs: BlobStore,
        capacity: int = 16,
        freeze_after_load: bool = False,
        trusted_types: frozenset[str] = frozenset(),
    ) -> None:
        self._blobs = blobs
        self._trusted_types = trusted_types  # the operator's RATIONALE_SKOPS_TRUSTED_TYPES
        self._capacity = capacity
        self._freeze_after_load = freeze_after_load
        self._items: OrderedDict[int, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}

    def get(self, record: ModelVersionRecord) -> LoadedModel:
        with self._lock:
            hit = self._items.get(record.id)
            if hit is not None:
                self._items.move_to_end(record.id)
                return hit
            gate = self._loading.setdefault(record.id, threading.Lock())
        with gate:  # one thread loads a version; the others wait for it
            with self._lock:
                hit = self._items.get(record.id)
            if hit is not None:
                return hit
            loaded = self._load(record)
            if self._freeze_after_load:  # the estimators, and the libraries loading them imported, live on
                freeze_long_lived()
            with self._lock:
                self._items[record.id] = loaded
                while len(self._items) > self._capacity:
                    self._items.popitem(last=False)
            return loaded

    def _load(self, record: ModelVersionRecord) -> LoadedModel:
        spec = spec_from_manifest(record.manifest)
        predictor = load_predictor(
            self._blobs.get(record.artifact_sha256),
            format=record.artifact_format,
            spec=spec,
            trust_pickle=record.trusted_pickle,
            trusted_types=self._trusted_types,
        )
        background = load_background(self._blobs, record.background_sha256, spec)
        return LoadedModel(record=record, spec=spec, predictor=predictor, background=background)
