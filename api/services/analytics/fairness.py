"""Fairness by group with Fairlearn's ``MetricFrame``, from counts aggregated in the database.

The database returns one row per (group, predicted positive?, outcome) with its number of decisions; those
few rows go to Fairlearn with the counts as ``sample_weight``, which gives exactly the figures Fairlearn
would compute on the expanded decisions, without loading them. Selection = predicting the positive class.
Equalised odds needs outcomes and uses the decisions that have one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from api.container import Services
from api.errors import InvalidRequestError
from api.services.analytics.scope import load_scope
from api.services.analytics.stats import finite
from storage.analytics import AnalyticsQueries

MAX_GROUPS = 50
MISSING = "(missing)"


@dataclass(frozen=True, slots=True)
class GroupFigures:
    group: str
    decisions: int
    selected: int
    selection_rate: float | None
    with_outcome: int
    true_positive_rate: float | None
    false_positive_rate: float | None
    accuracy: float | None


@dataclass(frozen=True, slots=True)
class Fairness:
    model: str
    group_by: str
    source: str  # "input" or "context"
    positive_class: str
    decisions: int
    with_outcome: int
    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    groups: list[GroupFigures]


def compute_fairness(
    services: Services,
    name: str,
    *,
    group: str,
    versions: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    positive: str | None = None,
) -> Fairness:
    """``group``: an input feature, or a context key (``context.KEY``, or a bare key no feature has)."""
    scope = load_scope(services, name)
    if scope.task == "regression":
        raise InvalidRequestError("fairness by selection rate needs a classifier", field="name")
    positive = positive or scope.positive_class
    if positive is None:
        raise InvalidRequestError("name the positive class for a multiclass model", field="positive")
    if positive not in scope.class_labels:
        raise InvalidRequestError(f"{positive!r} is not one of {scope.class_labels}", field="positive")
    window = scope.window(versions, since, until)
    features = {f.name for f in scope.features([scope.by_id(i) for i in window.version_ids])}
    key = group.removeprefix("context.")
    source = "input" if group in features else "context"
    column = AnalyticsQueries.input_value(group) if source == "input" else AnalyticsQueries.context_value(key)
    with services.db.unit_of_work(write=False) as uow:
        rows = AnalyticsQueries(uow.session).group_counts(window, group=column, positive=positive)
    labels = sorted({MISSING if g is None else g for g, *_ in rows})
    if len(labels) > MAX_GROUPS:
        raise InvalidRequestError(
            f"{group} has {len(labels)} distinct values (at most {MAX_GROUPS}): group by a category", field="group"
        )
    return _figures(name, group if source == "input" else key, source, positive, rows)


def _figures(
    name: str, group: str, source: str, positive: str, rows: list[tuple[str | None, bool, str | None, int]]
) -> Fairness:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    # one label per row, always a 1-D array: a context value may be a JSON array or object (the fuzzer sent
    # one), which np.array would turn into a second dimension; such values are grouped by their JSON text
    groups = np.empty(len(rows), dtype=object)
    groups[:] = [MISSING if g is None else _label(g) for g, *_ in rows]
    y_pred = np.array([p for _, p, _, _ in rows], dtype=int)
    weight = np.array([n for *_, n in rows], dtype=float)
    known = np.array([o is not None for _, _, o, _ in rows], dtype=bool)
    y_true = np.array([o == positive for _, _, o, _ in rows], dtype=int)
    decisions = {g: int(weight[groups == g].sum()) for g in sorted(set(groups))}
    selected = {g: int(weight[(groups == g) & (y_pred == 1)].sum()) for g in decisions}
    if not len(rows):
        return Fairness(name, group, source, positive, 0, 0, None, None, None, [])
    weights = {"sample_weight": weight}
    # a Series, not an array: fairlearn squeezes arrays, so one group row would become 0-dimensional
    sensitive = pd.Series(groups, dtype=object)
    selection = MetricFrame(
        metrics={"selection_rate": selection_rate},
        y_true=y_pred,  # selection rate looks at predictions only
        y_pred=y_pred,
        sensitive_features=sensitive,
        sample_params={"selection_rate": weights},
    )
    dp_difference = demographic_parity_difference(y_pred, y_pred, sensitive_features=sensitive, sample_weight=weight)
    dp_ratio = demographic_parity_ratio(y_pred, y_pred, sensitive_features=sensitive, sample_weight=weight)
    by_group_outcomes: dict[str, dict[str, float | None]] = {}
    with_outcome = {g: int(weight[known & (groups == g)].sum()) for g in decisions}
    eo: float | None = None
    if known.any():
        w = weight[known]
        outcomes = MetricFrame(
            metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "accuracy": accuracy_score},
            y_true=y_true[known],
            y_pred=y_pred[known],
            sensitive_features=pd.Series(groups[known], dtype=object),
            sample_params={k: {"sample_weight": w} for k in ("tpr", "fpr", "accuracy")},
        )
        for g, row in outcomes.by_group.iterrows():
            by_group_outcomes[str(g)] = {k: finite(row[k]) for k in ("tpr", "fpr", "accuracy")}
        eo = finite(
            equalized_odds_difference(
                y_true[known], y_pred[known], sensitive_features=pd.Series(groups[known], dtype=object), sample_weight=w
            )
        )
    figures = []
    rates = selection.by_group["selection_rate"]
    for g in decisions:
        extra = by_group_outcomes.get(g, {})
        figures.append(
            GroupFigures(
                group=g,
                decisions=decisions[g],
                selected=selected[g],
                selection_rate=finite(rates[g]),
                with_outcome=with_outcome[g],
                true_positive_rate=extra.get("tpr"),
                false_positive_rate=extra.get("fpr"),
                accuracy=extra.get("accuracy"),
            )
        )
    return Fairness(
        model=name,
        group_by=group,
        source=source,
        positive_class=positive,
        decisions=int(weight.sum()),
        with_outcome=int(weight[known].sum()),
        demographic_parity_difference=finite(dp_difference),
        demographic_parity_ratio=finite(dp_ratio),
        equalized_odds_difference=eo,
        groups=figures,
    )


def _label(value: object) -> object:
    """A group label: scalars as they are, JSON arrays and objects as their canonical JSON text."""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value
