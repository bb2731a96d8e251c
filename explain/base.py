"""The one explainer interface every back-end implements.

``Explainer.explain`` is concrete: it enforces the budget, times the work, and turns any library failure
into an ``ExplainError`` so that every back-end has the same error contract. Back-ends implement
``_explain`` only. Explainer objects are never shared between threads (shap and alibi explainers are
not thread-safe, shap issue #2863): callers create one per batch or per thread.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from explain.errors import BudgetExceededError, ExplainerFailedError, ExplainError, UnsupportedModelError
from explain.results import ExplanationResult
from explain.schema import ModelSpec


class Predictor(Protocol):
    """A loaded model version: raw-feature DataFrame in, scores out."""

    spec: ModelSpec
    estimator: Any  # the underlying fitted object (sklearn estimator/pipeline, xgboost/lightgbm booster)
    format: str

    def predict_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities of shape (n, n_classes) in ``spec.class_labels`` order, or (n,) for regression."""
        ...

    accepts_array: bool  # whether predict_scores_array calls the model without building a DataFrame

    def predict_scores_array(self, matrix: np.ndarray) -> np.ndarray:
        """predict_scores of raw numeric features in schema order as a float matrix (integers whole,
        booleans 0/1); for schemas without categorical features."""
        ...

    def predict_labels(self, frame: pd.DataFrame) -> list[str]:
        """Predicted class label per row (regression: the value formatted as a string)."""
        ...

    def predict(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Outputs as recorded: {"label", "scores"} for classifiers, {"value"} for regression."""
        ...

    def margin(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Raw model output (log-odds for boosted classifiers) when the model has one."""
        ...

    def margin_and_scores(
        self, frame: pd.DataFrame, *, transformed: Any = None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """margin() and predict_scores(); ``transformed`` spares a pipeline its preprocessing a second time."""
        ...


@dataclass(frozen=True, slots=True)
class Budget:
    """Caps on one explanation's work. A back-end that cannot stay inside fails with BudgetExceededError."""

    max_model_calls: int = 200_000  # rows evaluated by the model, summed over calls
    max_seconds: float = 120.0


@dataclass(slots=True)
class CallMeter:
    """Counts the rows the model evaluates for ONE explanation and stops it when its budget runs out."""

    budget: Budget
    started: float = field(default_factory=time.monotonic)
    rows: int = 0
    calls: int = 0

    def start(self) -> None:
        """The explanation's own work begins now (rows of a batch explained one after another)."""
        self.started = time.monotonic()

    def charge(self, n_rows: int) -> None:
        self.rows += int(n_rows)
        self.calls += 1
        if self.rows > self.budget.max_model_calls:
            raise BudgetExceededError(
                f"model-call budget exceeded: {self.rows} rows evaluated, cap {self.budget.max_model_calls}"
            )
        elapsed = time.monotonic() - self.started
        if elapsed > self.budget.max_seconds:
            raise BudgetExceededError(
                f"time budget exceeded: {elapsed:.1f}s elapsed, cap {self.budget.max_seconds:.1f}s"
            )


class BatchMeter:
    """One CallMeter per explanation of a batch.

    Each explanation is charged what it would cost explained alone: work done for one row goes to that
    row's meter (``row(i).charge``), work shared by the batch (a background evaluated once for all rows)
    goes to every row's meter (``charge``), since each would have paid it alone. So an explanation's
    recorded ``model_calls`` and its budget do not depend on the batch it ran in.
    """

    def __init__(self, budget: Budget, n_rows: int) -> None:
        self.meters = [CallMeter(budget) for _ in range(n_rows)]

    def row(self, i: int) -> CallMeter:
        return self.meters[i]

    def charge(self, n_rows: int) -> None:
        for meter in self.meters:
            meter.charge(n_rows)


def _installed(module: str) -> bool:
    if module in sys.modules:  # imported already, or made unimportable (None)
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True, slots=True)
class Background:
    """The registered background sample (raw features) and its SHA-256, recorded in every explanation."""

    frame: pd.DataFrame
    sha256: str


@dataclass(frozen=True, slots=True)
class Target:
    """Which output to explain: a class index (classification) or None for regression."""

    class_index: int | None


class Explainer(ABC):
    """One explanation method over one model version; ``method`` is the registry name."""

    method: ClassVar[str]

    def __init__(
        self, *, predictor: Predictor, background: Background, params: Mapping[str, Any] | None = None
    ) -> None:
        self.predictor = predictor
        self.background = background
        self.params: dict[str, Any] = dict(params or {})

    def explain(
        self,
        rows: pd.DataFrame,
        *,
        seeds: Sequence[int],
        targets: Sequence[Target] | None = None,
        budget: Budget | None = None,
    ) -> list[ExplanationResult]:
        """Explain every row (raw features, schema column order) in one batched call.

        Raises BudgetExceededError when an explanation runs over ``budget`` (each explanation has its own,
        counted as if it were explained alone), and ExplainerFailedError for any failure of the library.
        """
        if len(seeds) != len(rows):
            raise ExplainError("one seed per row is required")
        self.check_available(self.params)
        resolved = list(targets) if targets is not None else self.default_targets(rows)
        meter = BatchMeter(budget or Budget(), len(rows))
        try:
            return self._explain(rows.reset_index(drop=True), seeds=list(seeds), targets=resolved, meter=meter)
        except ExplainError:
            raise
        except Exception as exc:  # the library's own failure, named and wrapped
            raise ExplainerFailedError(f"{type(self).__name__} failed: {type(exc).__name__}: {exc}") from exc

    def default_targets(self, rows: pd.DataFrame) -> list[Target]:
        """Explain the predicted class by default; regression has a single output."""
        spec = self.predictor.spec
        if not spec.is_classifier:
            return [Target(None) for _ in range(len(rows))]
        scores = self.predictor.predict_scores(rows)
        return [Target(int(i)) for i in np.argmax(scores, axis=1)]

    @abstractmethod
    def _explain(
        self, rows: pd.DataFrame, *, seeds: list[int], targets: list[Target], meter: BatchMeter
    ) -> list[ExplanationResult]: ...

    requires: ClassVar[tuple[tuple[str, str], ...]] = ()  # (module, extra) the back-end cannot run without

    @classmethod
    def check_available(cls, params: Mapping[str, Any]) -> None:
        """Raise UnsupportedModelError naming the extra to install when a library this method needs (with
        these parameters) is not installed: a clear 422, not a worker's ImportError."""
        for module, extra in cls.needs(params):
            if not _installed(module):
                raise UnsupportedModelError(
                    f"{cls.method} needs the {module} package, which is not installed: pip install 'rationale[{extra}]'"
                )

    @classmethod
    def needs(cls, params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        return cls.requires

    @classmethod
    def check(cls, predictor: Predictor, background: Background, params: Mapping[str, Any]) -> None:
        """Refuse, before anything is queued, parameters that cannot apply to this model (raises
        UnsupportedModelError saying why); back-ends override it where they can tell in advance."""
        cls.check_available(params)
