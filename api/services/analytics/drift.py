"""Drift between two windows of a model's decisions (time ranges and/or versions), of the inputs and of
the SHAP attributions. Statistics and binning: api/services/analytics/stats.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from api.container import Services
from api.services.analytics.scope import ModelScope, load_scope
from api.services.analytics.stats import categorical_shift, finite, numeric_shift
from storage.analytics import AnalyticsQueries, Window


@dataclass(frozen=True, slots=True)
class WindowSummary:
    versions: list[str]
    since: datetime | None
    until: datetime | None
    decisions: int
    explained: int


@dataclass(frozen=True, slots=True)
class InputDrift:
    feature: str
    type: str
    test: str  # "ks" (numbers) or "chi2" (categories)
    statistic: float | None
    p_value: float | None
    psi: float | None
    js_distance: float | None
    reference_count: int
    current_count: int


@dataclass(frozen=True, slots=True)
class AttributionDrift:
    feature: str
    reference_mean_abs: float | None
    current_mean_abs: float | None
    change: float | None  # current - reference
    reference_rank: int | None  # 1 = largest mean |SHAP|
    current_rank: int | None
    rank_change: int | None  # current rank - reference rank (negative: became more important)
    ks_statistic: float | None
    ks_p_value: float | None
    psi: float | None
    js_distance: float | None


@dataclass(frozen=True, slots=True)
class Drift:
    model: str
    bins: int
    reference: WindowSummary
    current: WindowSummary
    inputs: list[InputDrift]
    attributions: list[AttributionDrift]


@dataclass(frozen=True, slots=True)
class WindowSpec:
    versions: Sequence[str] | None
    since: datetime | None
    until: datetime | None


def compute_drift(
    services: Services, name: str, *, reference: WindowSpec, current: WindowSpec, bins: int = 10
) -> Drift:
    scope = load_scope(services, name)
    ref = scope.window(reference.versions, reference.since, reference.until, field="reference_version")
    cur = scope.window(current.versions, current.since, current.until, field="current_version")
    features = scope.features([scope.by_id(i) for i in (*ref.version_ids, *cur.version_ids)])
    numeric = [f.name for f in features if f.numeric]
    categorical = [f.name for f in features if not f.numeric]
    with services.db.unit_of_work(write=False) as uow:
        queries = AnalyticsQueries(uow.session)
        counts = (queries.count(ref), queries.count(cur))
        inputs: list[InputDrift] = []
        (ref_numbers, ref_counts), (cur_numbers, cur_counts) = (
            queries.inputs(ref, numeric, categorical),
            queries.inputs(cur, numeric, categorical),
        )
        for feature in features:
            if feature.numeric:
                r, c = ref_numbers[feature.name], cur_numbers[feature.name]
                shift = numeric_shift(r, c, bins=bins)
                sizes = (len(r), len(c))
            else:
                rc, cc = ref_counts[feature.name], cur_counts[feature.name]
                shift = categorical_shift(rc, cc)
                sizes = (sum(rc.values()), sum(cc.values()))
            inputs.append(
                InputDrift(
                    feature.name,
                    feature.type,
                    shift.test,
                    shift.statistic,
                    shift.p_value,
                    shift.psi,
                    shift.js_distance,
                    *sizes,
                )
            )
        del ref_numbers, cur_numbers
        names = [f.name for f in features]
        attributions = (queries.attributions(ref, names), queries.attributions(cur, names))
    explained = (
        max((len(v) for v in attributions[0].values()), default=0),
        max((len(v) for v in attributions[1].values()), default=0),
    )
    return Drift(
        model=name,
        bins=bins,
        reference=_summary(scope, ref, counts[0], explained[0]),
        current=_summary(scope, cur, counts[1], explained[1]),
        inputs=inputs,
        attributions=attribution_drift(names, attributions[0], attributions[1], bins=bins),
    )


def attribution_drift(
    names: Sequence[str], reference: dict[str, np.ndarray], current: dict[str, np.ndarray], *, bins: int
) -> list[AttributionDrift]:
    ref_means = {n: float(np.mean(np.abs(reference[n]))) if len(reference[n]) else None for n in names}
    cur_means = {n: float(np.mean(np.abs(current[n]))) if len(current[n]) else None for n in names}
    ref_ranks, cur_ranks = _ranks(ref_means), _ranks(cur_means)
    out = []
    for name in names:
        shift = numeric_shift(reference[name], current[name], bins=bins)
        r, c = ref_means[name], cur_means[name]
        rr, cr = ref_ranks.get(name), cur_ranks.get(name)
        out.append(
            AttributionDrift(
                feature=name,
                reference_mean_abs=finite(r),
                current_mean_abs=finite(c),
                change=finite(c - r) if r is not None and c is not None else None,
                reference_rank=rr,
                current_rank=cr,
                rank_change=cr - rr if rr is not None and cr is not None else None,
                ks_statistic=shift.statistic,
                ks_p_value=shift.p_value,
                psi=shift.psi,
                js_distance=shift.js_distance,
            )
        )
    return sorted(out, key=lambda a: (a.current_rank or 10**9, a.feature))


def _ranks(means: dict[str, float | None]) -> dict[str, int]:
    known = sorted(((v, k) for k, v in means.items() if v is not None), key=lambda vk: (-vk[0], vk[1]))
    return {k: position + 1 for position, (_, k) in enumerate(known)}


def _summary(scope: ModelScope, window: Window, decisions: int, explained: int) -> WindowSummary:
    versions = [scope.by_id(i).version for i in window.version_ids]
    return WindowSummary(versions, window.since, window.until, decisions, explained)
