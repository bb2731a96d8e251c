"""Distribution-shift statistics shared by input and attribution drift.

Binning, stated once so clients and tests can reproduce it: numeric values are cut at the reference
window's deciles (``bins`` quantiles, duplicates merged, outer edges open), categories are their own bins.
PSI = Σ (c - r)·ln(c / r) over bin proportions floored at ``PSI_FLOOR`` (an empty bin would make it
infinite); Jensen-Shannon distance is scipy's ``jensenshannon`` (base 2, in [0, 1]) on the raw proportions;
Kolmogorov-Smirnov is scipy's ``ks_2samp`` on the values, chi-squared scipy's ``chi2_contingency`` on the
2 x k table of counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PSI_FLOOR = 1e-4


@dataclass(frozen=True, slots=True)
class Shift:
    test: str  # "ks" or "chi2"
    statistic: float | None
    p_value: float | None
    psi: float | None
    js_distance: float | None


def finite(value: float | np.floating | None) -> float | None:
    """JSON has no NaN: undefined figures are None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.concatenate([[-np.inf], inner, [np.inf]])


def proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values, bins=edges)
    return counts / max(1, counts.sum())


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    r = np.maximum(reference, PSI_FLOOR)
    c = np.maximum(current, PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(reference, current, base=2))


def numeric_shift(reference: np.ndarray, current: np.ndarray, *, bins: int) -> Shift:
    if len(reference) == 0 or len(current) == 0:
        return Shift("ks", None, None, None, None)
    from scipy.stats import ks_2samp

    ks = ks_2samp(reference, current)
    edges = quantile_edges(reference, bins)
    p, q = proportions(reference, edges), proportions(current, edges)
    return Shift("ks", finite(ks.statistic), finite(ks.pvalue), finite(psi(p, q)), finite(js_distance(p, q)))


def categorical_shift(reference: Mapping[str, int], current: Mapping[str, int]) -> Shift:
    categories = sorted(set(reference) | set(current))
    r = np.array([reference.get(k, 0) for k in categories], dtype=float)
    c = np.array([current.get(k, 0) for k in categories], dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return Shift("chi2", None, None, None, None)
    p, q = r / r.sum(), c / c.sum()
    statistic = p_value = None
    if len(categories) > 1:
        from scipy.stats import chi2_contingency

        result = chi2_contingency(np.vstack([r, c]))
        statistic, p_value = finite(result.statistic), finite(result.pvalue)
    else:
        statistic, p_value = 0.0, 1.0
    return Shift("chi2", statistic, p_value, finite(psi(p, q)), finite(js_distance(p, q)))
