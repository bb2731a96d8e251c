"""Feature schemas and the validation of raw inputs against them.

A model version's schema is the contract for every decision logged against it: inputs are checked here
before anything is written, and explainers use the same schema to know which features are categorical,
which are immutable and which ranges a counterfactual may move in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from explain.errors import InvalidInputError, InvalidSchemaError

FeatureType = Literal["number", "integer", "category", "boolean"]
Task = Literal["binary", "multiclass", "regression"]
FEATURE_TYPES: tuple[str, ...] = ("number", "integer", "category", "boolean")
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")


@dataclass(frozen=True, slots=True)
class Feature:
    """One raw input feature as the client sends it."""

    name: str
    type: FeatureType
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    immutable: bool = False
    monotone: Literal["increasing", "decreasing"] | None = None
    label: str | None = None
    personal: bool = False

    def __post_init__(self) -> None:
        where = f"features.{self.name}" if self.name else "features"
        if not self.name or not isinstance(self.name, str):
            raise InvalidSchemaError("features", "every feature needs a non-empty name")
        if self.type not in FEATURE_TYPES:
            raise InvalidSchemaError(f"{where}.type", f"must be one of {', '.join(FEATURE_TYPES)}")
        if self.type == "category":
            if not self.categories:
                raise InvalidSchemaError(f"{where}.categories", "a category feature lists its categories")
            if len(set(self.categories)) != len(self.categories):
                raise InvalidSchemaError(f"{where}.categories", "categories must be unique")
        elif self.categories is not None:
            raise InvalidSchemaError(f"{where}.categories", "only category features take categories")
        if self.type in ("category", "boolean") and (self.minimum is not None or self.maximum is not None):
            raise InvalidSchemaError(f"{where}", "ranges apply to number and integer features only")
        for bound in ("minimum", "maximum"):
            value = getattr(self, bound)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise InvalidSchemaError(f"{where}.{bound}", "must be a finite number")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InvalidSchemaError(f"{where}", "minimum is greater than maximum")
        if self.monotone not in (None, "increasing", "decreasing"):
            raise InvalidSchemaError(f"{where}.monotone", "must be increasing or decreasing")

    @property
    def display_name(self) -> str:
        return self.label or self.name.replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.categories is not None:
            data["categories"] = list(self.categories)
        for key in ("minimum", "maximum", "monotone", "label"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.immutable:
            data["immutable"] = True
        if self.personal:
            data["personal"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        categories = data.get("categories")
        return cls(
            name=str(data.get("name", "")),
            type=cast(FeatureType, data.get("type")),
            categories=tuple(str(c) for c in categories) if categories is not None else None,
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            immutable=bool(data.get("immutable", False)),
            monotone=data.get("monotone"),
            label=data.get("label"),
            personal=bool(data.get("personal", False)),
        )

    def validate(self, value: Any, path: str) -> Any:
        """Return the value in its canonical Python type or raise InvalidInputError naming ``path``."""
        if value is None:
            raise InvalidInputError(path, "is required and may not be null")
        if self.type == "category":
            if not isinstance(value, str):
                raise InvalidInputError(path, f"must be one of the categories {list(self.categories or ())}")
            if value not in (self.categories or ()):
                raise InvalidInputError(path, f"{value!r} is not an allowed category {list(self.categories or ())}")
            return value
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise InvalidInputError(path, "must be true or false")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputError(path, f"must be a {'whole ' if self.type == 'integer' else ''}number")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(path, "NaN and infinity are not allowed")
        if self.type == "integer":
            if isinstance(value, float):
                if not value.is_integer():
                    raise InvalidInputError(path, "must be a whole number")
                value = int(value)
        else:
            value = float(value)
        if self.minimum is not None and value < self.minimum:
            raise InvalidInputError(path, f"{value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidInputError(path, f"{value} is above the maximum {self.maximum}")
        return value


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What explainers need to know about a model besides the artifact: task, classes and features."""

    task: Task
    features: tuple[Feature, ...]
    class_labels: tuple[str, ...] = ()
    positive_class: str | None = None
    _index: Mapping[str, Feature] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidSchemaError("task", f"must be one of {', '.join(TASKS)}")
        if not self.features:
            raise InvalidSchemaError("features", "a model needs at least one feature")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidSchemaError("features", f"duplicate feature names: {duplicates}")
        if self.task == "regression":
            if self.class_labels:
                raise InvalidSchemaError("class_labels", "a regression model has no class labels")
        else:
            expected = 2 if self.task == "binary" else None
            if len(self.class_labels) < 2 or (expected and len(self.class_labels) != expected):
                raise InvalidSchemaError("class_labels", "binary models need exactly 2 labels, multiclass at least 2")
            if len(set(self.class_labels)) != len(self.class_labels):
                raise InvalidSchemaError("class_labels", "class labels must be unique")
        if self.positive_class is not None and self.positive_class not in self.class_labels:
            raise InvalidSchemaError("positive_class", "must be one of the class labels")
        object.__setattr__(self, "_index", {f.name: f for f in self.features})

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    def feature(self, name: str) -> Feature:
        return self._index[name]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task": self.task,
            "class_labels": list(self.class_labels),
            "features": [f.to_dict() for f in self.features],
        }
        if self.positive_class is not None:
            data["positive_class"] = self.positive_class
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        raw_features = data.get("features")
        if not isinstance(raw_features, list):
            raise InvalidSchemaError("features", "must be a list of features")
        features = []
        for i, item in enumerate(raw_features):
            if not isinstance(item, Mapping):
                raise InvalidSchemaError(f"features[{i}]", "must be an object")
            features.append(Feature.from_dict(item))
        return cls(
            task=cast(Task, data.get("task")),
            features=tuple(features),
            class_labels=tuple(str(c) for c in data.get("class_labels") or ()),
            positive_class=data.get("positive_class"),
        )

    def validate_inputs(self, inputs: Any, path: str = "inputs") -> dict[str, Any]:
        """Check one decision's raw inputs; unknown, missing or ill-typed features raise InvalidInputError."""
        if not isinstance(inputs, Mapping):
            raise InvalidInputError(path, "must be an object mapping feature names to values")
        unknown = [k for k in inputs if k not in self._index]
        if unknown:
            raise InvalidInputError(f"{path}.{unknown[0]}", "is not a feature of this model")
        clean: dict[str, Any] = {}
        for feature in self.features:
            where = f"{path}.{feature.name}"
            if feature.name not in inputs:
                raise InvalidInputError(where, "is missing")
            clean[feature.name] = feature.validate(inputs[feature.name], where)
        return clean

    def validate_rows(self, rows: Sequence[Any], path: str = "rows") -> list[dict[str, Any]]:
        return [self.validate_inputs(row, f"{path}[{i}]") for i, row in enumerate(rows)]
