"""Exact interventional TreeSHAP over groups of columns (the raw features of a pipeline).

The game is the interventional one: v(S) = mean over background rows b of f(x_S, b_not_S), with S a set of
*raw* features, each of which may own several columns of the matrix the trees see (a one-hot block).
Summing shap's per-column values over a block is not this game's Shapley value for a tree (a coalition of
columns may take half a one-hot block from x and half from b, an input no raw row produces), so the
values are computed here directly, by the leaf decomposition of Lundberg et al. 2020 ("From local
explanations to global understanding", interventional Tree SHAP) applied to groups:

for one leaf and one background row, a group either must come from x (only x satisfies the path's
conditions on its columns), must come from b (only b does), is free (both do), or blocks the leaf
(neither does). The leaf's value is reached exactly when the X-groups are in S and the B-groups are not,
a game whose Shapley values are closed-form: each X-group gets v·(|X|-1)!|B|!/(|X|+|B|)!, each B-group
-v·|X|!(|B|-1)!/(|X|+|B|)!. Summed over leaves and averaged over the background this is exact, and with
one column per group it is shap's own interventional TreeExplainer (the tests check both, and a brute-force
enumeration of coalitions, to 1e-9).

The trees come from shap's ``TreeEnsemble`` parse (sklearn, XGBoost, LightGBM, already normalised to
``x <= threshold`` goes left, values in the model's raw output units, learning rates applied).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# Elements of the (rows, background, leaves, groups-on-path) arrays worked on at once.
CHUNK_ELEMENTS = 4_000_000


class TreeParseError(Exception):
    """The ensemble has splits this decomposition does not handle (categorical bitsets)."""


@dataclass(frozen=True, slots=True)
class Leaves:
    """Every leaf of the ensemble as its path's box: ``lo < x[col] <= hi`` for each constrained slot."""

    cols: np.ndarray  # (L, C) column of each constrained slot, 0 for padding
    lo: np.ndarray  # (L, C)
    hi: np.ndarray  # (L, C)
    slot_group: np.ndarray  # (L, C) index into the leaf's groups (0..D-1), -1 for padding
    groups: np.ndarray  # (L, D) raw feature of each group on the path, n_groups for padding
    values: np.ndarray  # (L, outputs)
    base_offset: np.ndarray  # (outputs,)
    input_dtype: Any


def leaves_of(ensemble: Any, column_groups: np.ndarray, n_groups: int) -> Leaves:
    """Decompose shap's TreeEnsemble; ``column_groups[c]`` is the raw feature of column ``c``."""
    left, right = ensemble.children_left, ensemble.children_right
    features, thresholds = ensemble.features, ensemble.thresholds
    types = getattr(ensemble, "threshold_types", None)
    limit = ensemble.tree_limit if getattr(ensemble, "tree_limit", None) is not None else len(left)
    paths: list[list[tuple[int, float, float]]] = []
    values: list[np.ndarray] = []
    for t in range(min(limit, len(left))):
        stack: list[tuple[int, dict[int, tuple[float, float]]]] = [(0, {})]
        while stack:
            node, box = stack.pop()
            if left[t, node] < 0:
                paths.append([(c, lo, hi) for c, (lo, hi) in box.items()])
                values.append(np.asarray(ensemble.values[t, node], dtype=float))
                continue
            if types is not None and types[t, node] != 0:
                raise TreeParseError("categorical splits are not supported by the grouped TreeSHAP")
            col, th = int(features[t, node]), float(thresholds[t, node])
            low, high = box.get(col, (-math.inf, math.inf))
            stack.append((int(left[t, node]), {**box, col: (low, min(high, th))}))
            stack.append((int(right[t, node]), {**box, col: (max(low, th), high)}))
    n_leaves = len(paths)
    width = max([len(p) for p in paths] + [1])
    cols = np.zeros((n_leaves, width), dtype=int)
    lo = np.full((n_leaves, width), -math.inf)
    hi = np.full((n_leaves, width), math.inf)
    slot_group = np.full((n_leaves, width), -1, dtype=int)
    path_groups: list[list[int]] = []
    for i, path in enumerate(paths):
        seen: list[int] = []
        for k, (c, a, b) in enumerate(sorted(path)):
            g = int(column_groups[c])
            if g not in seen:
                seen.append(g)
            cols[i, k], lo[i, k], hi[i, k], slot_group[i, k] = c, a, b, seen.index(g)
        path_groups.append(seen)
    depth = max([len(g) for g in path_groups] + [1])
    groups = np.full((n_leaves, depth), n_groups, dtype=int)
    for i, seen in enumerate(path_groups):
        groups[i, : len(seen)] = seen
    return Leaves(
        cols=cols,
        lo=lo,
        hi=hi,
        slot_group=slot_group,
        groups=groups,
        values=np.vstack(values),
        base_offset=np.asarray(ensemble.base_offset, dtype=float).reshape(-1),
        input_dtype=getattr(ensemble, "input_dtype", np.float64),
    )


def _group_ok(leaves: Leaves, matrix: np.ndarray) -> np.ndarray:
    """(m, L, D): does each row satisfy the leaf's conditions on each group of its path?"""
    z = np.asarray(matrix, dtype=leaves.input_dtype).astype(float)
    if np.isnan(z).any():
        raise TreeParseError("missing values reach the trees; impute them in the pipeline")
    picked = z[:, leaves.cols]  # (m, L, C)
    fails = ~((picked > leaves.lo) & (picked <= leaves.hi))
    depth = leaves.groups.shape[1]
    ok = np.ones((len(z), *leaves.groups.shape), dtype=bool)
    for d in range(depth):
        in_group = leaves.slot_group == d  # (L, C)
        ok[:, :, d] = ~np.any(fails & in_group, axis=2)
    return ok


@lru_cache(maxsize=16)
def _weights(depth: int) -> tuple[np.ndarray, np.ndarray]:
    """w_plus[nx, nb] = (nx-1)! nb! / (nx+nb)!, w_minus[nx, nb] = nx! (nb-1)! / (nx+nb)!."""
    plus = np.zeros((depth + 1, depth + 1))
    minus = np.zeros((depth + 1, depth + 1))
    f = math.factorial
    for nx in range(depth + 1):
        for nb in range(depth + 1 - nx):
            if nx:
                plus[nx, nb] = f(nx - 1) * f(nb) / f(nx + nb)
            if nb:
                minus[nx, nb] = f(nx) * f(nb - 1) / f(nx + nb)
    plus.flags.writeable = minus.flags.writeable = False  # shared by every call (cached)
    return plus, minus


@dataclass(frozen=True, slots=True)
class GroupShap:
    values: np.ndarray  # (rows, groups, outputs)
    base: np.ndarray  # (outputs,): mean model output over the background, in raw units
    output: np.ndarray  # (rows, outputs): the ensemble's raw output at each row, from the same leaves


# Up to this many groups on a path, background rows are counted by which of the path's groups they satisfy
# (at most 2**depth patterns per leaf) instead of visited one by one: the same sums, for the credit demo
# model ~12x fewer operations (100 background rows, at most 8 patterns); test_exact_shap covers both paths.
PATTERN_DEPTH = 6


@lru_cache(maxsize=16)
def _pattern_table(depth: int) -> np.ndarray:
    """T[px, pb, d]: the Shapley coefficient of path group d when x satisfies the groups in bit pattern px
    and the background row those in pb."""
    plus, minus = _weights(depth)
    n = 2**depth
    bits = ((np.arange(n)[:, None] >> np.arange(depth)[None, :]) & 1).astype(bool)  # (P, D)
    x = bits[:, None, :]
    b = bits[None, :, :]
    in_x, in_b = x & ~b, b & ~x
    reach = ~np.any(~x & ~b, axis=2)
    nx, nb = in_x.sum(axis=2), in_b.sum(axis=2)
    table: np.ndarray = reach[..., None] * (in_x * plus[nx, nb][..., None] - in_b * minus[nx, nb][..., None])
    table.flags.writeable = False
    return table


def _pattern_counts(ok_b: np.ndarray) -> np.ndarray:
    """(L, P): the share of background rows satisfying each bit pattern of each leaf's path groups."""
    depth = ok_b.shape[2]
    pb = (ok_b * (1 << np.arange(depth))).sum(axis=2)  # (B, L)
    n_leaves, patterns = ok_b.shape[1], 2**depth
    counts = np.zeros((n_leaves, patterns))
    np.add.at(counts, (np.broadcast_to(np.arange(n_leaves), pb.shape), pb), 1.0)
    counts /= len(ok_b)
    return counts


def _coefficients_by_pattern(ok_x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    depth = ok_x.shape[2]
    weights = 1 << np.arange(depth)
    px = (ok_x * weights).sum(axis=2)  # (R, L)
    n_leaves, patterns = ok_x.shape[1], 2**depth
    table = _pattern_table(depth)  # (P, P, D)
    coef = np.zeros(ok_x.shape)
    step = max(1, CHUNK_ELEMENTS // max(1, n_leaves * patterns * depth))
    for start in range(0, len(ok_x), step):
        gathered = table[px[start : start + step]]  # (r, L, P, D)
        coef[start : start + step] = np.einsum("rlpd,lp->rld", gathered, counts)
    return coef


def _coefficients_by_row(ok_x: np.ndarray, ok_b: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    n_bg, n_leaves, depth = ok_b.shape
    per_row = max(1, n_bg * n_leaves * depth)
    step = max(1, CHUNK_ELEMENTS // per_row)
    bg_step = n_bg if per_row <= CHUNK_ELEMENTS else max(1, CHUNK_ELEMENTS // (n_leaves * depth))
    coef = np.zeros(ok_x.shape)
    for start in range(0, len(ok_x), step):
        x = ok_x[start : start + step][:, None]  # (r, 1, L, D)
        for b0 in range(0, n_bg, bg_step):
            b = ok_b[None, b0 : b0 + bg_step]  # (1, b, L, D)
            in_x = x & ~b
            in_b = b & ~x
            reach = ~np.any(~x & ~b, axis=3)  # (r, b, L)
            nx = in_x.sum(axis=3)
            nb = in_b.sum(axis=3)
            wp = np.where(reach, plus[nx, nb], 0.0)[..., None]
            wm = np.where(reach, minus[nx, nb], 0.0)[..., None]
            coef[start : start + step] += (in_x * wp - in_b * wm).sum(axis=1)
    coef /= n_bg
    return coef


@dataclass(frozen=True, slots=True)
class _BackgroundSide:
    """What a call needs of the background: it depends on the trees and the background alone, so it is
    computed once per process and reused by every batch (for a one-row batch it was most of the work)."""

    leaves: Leaves
    ok_b: np.ndarray  # (B, L, D), padding slots set
    base: np.ndarray  # (K,)
    counts: np.ndarray | None  # (L, P) when the pattern path applies


_SIDES: OrderedDict[tuple[int, int, bytes], _BackgroundSide] = OrderedDict()
_SIDES_LOCK = threading.Lock()
_SIDES_KEPT = 8


def _background_side(leaves: Leaves, background: np.ndarray, n_groups: int) -> _BackgroundSide:
    matrix = np.ascontiguousarray(background)
    digest = hashlib.sha256(f"{matrix.shape}{matrix.dtype}".encode() + matrix.tobytes()).digest()
    key = (id(leaves), n_groups, digest)
    with _SIDES_LOCK:
        side = _SIDES.get(key)
        if side is not None and side.leaves is leaves:  # the very trees: an id is never trusted alone
            _SIDES.move_to_end(key)
            return side
    ok_b = _group_ok(leaves, matrix)  # (B, L, D)
    ok_b[:, leaves.groups == n_groups] = True  # no group there: both x and b "satisfy" it
    ok_b.flags.writeable = False
    base = leaves.base_offset + (ok_b.all(axis=2).astype(float) @ leaves.values).mean(axis=0)
    counts = _pattern_counts(ok_b) if leaves.groups.shape[1] <= PATTERN_DEPTH else None
    side = _BackgroundSide(leaves, ok_b, base, counts)
    with _SIDES_LOCK:
        _SIDES[key] = side
        while len(_SIDES) > _SIDES_KEPT:
            _SIDES.popitem(last=False)
    return side


def group_tree_shap(leaves: Leaves, rows: np.ndarray, background: np.ndarray, n_groups: int) -> GroupShap:
    """Interventional Shapley values of the raw-unit ensemble output, per group, for every row."""
    side = _background_side(leaves, background, n_groups)
    ok_x = _group_ok(leaves, rows)  # (R, L, D)
    n_rows, depth = len(rows), leaves.groups.shape[1]
    ok_x[:, leaves.groups == n_groups] = True  # no group there: both "satisfy" it
    values = leaves.values  # (L, K)
    out = np.zeros((n_rows, n_groups + 1, values.shape[1]))
    base = side.base
    output = leaves.base_offset + ok_x.all(axis=2).astype(float) @ values
    if depth <= PATTERN_DEPTH:
        coef = _coefficients_by_pattern(ok_x, side.counts if side.counts is not None else _pattern_counts(side.ok_b))
    else:
        plus, minus = _weights(depth)
        coef = _coefficients_by_row(ok_x, side.ok_b, plus, minus)
    contrib = coef[..., None] * values[None, :, None, :]  # (R, L, D, K)
    by_group = out.transpose(1, 0, 2)  # a view: (groups, R, K)
    for d in range(depth):
        np.add.at(by_group, leaves.groups[:, d], contrib[:, :, d, :].transpose(1, 0, 2))
    return GroupShap(values=out[:, :n_groups], base=base, output=output)


@dataclass(frozen=True, slots=True)
class _Ensemble:
    """The attributes of shap's TreeEnsemble that ``leaves_of`` reads, for models shap does not parse."""

    children_left: np.ndarray
    children_right: np.ndarray
    features: np.ndarray
    thresholds: np.ndarray
    values: np.ndarray
    base_offset: np.ndarray
    tree_output: str
    input_dtype: Any = np.float32
    tree_limit: int | None = None
    threshold_types: np.ndarray | None = None


def multiclass_gbm_ensemble(model: Any) -> _Ensemble:
    """scikit-learn's multiclass GradientBoostingClassifier (shap 0.49 reads binary ones only): one
    regression tree per stage and class, scaled by the learning rate, over a constant prior (the init)."""
    init = model.init_
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ != "DummyClassifier":
        raise TreeParseError("a GradientBoostingClassifier with a custom init estimator is not a sum of trees")
    offset = np.asarray(model._raw_predict_init(np.zeros((1, model.n_features_in_))), dtype=float)[0]
    stages, n_classes = model.estimators_.shape
    trees = [(model.estimators_[s, k].tree_, k) for s in range(stages) for k in range(n_classes)]
    width = max(t.node_count for t, _ in trees)
    shape = (len(trees), width)
    left, right = -np.ones(shape, dtype=int), -np.ones(shape, dtype=int)
    features, thresholds = -np.ones(shape, dtype=int), np.zeros(shape)
    values = np.zeros((*shape, n_classes))
    for i, (tree, k) in enumerate(trees):
        n = tree.node_count
        left[i, :n], right[i, :n] = tree.children_left, tree.children_right
        features[i, :n], thresholds[i, :n] = tree.feature, tree.threshold
        values[i, :n, k] = model.learning_rate * tree.value[:, 0, 0]
    return _Ensemble(left, right, features, thresholds, values, offset, "log_odds")


def xgboost_ensemble(booster: Any) -> _Ensemble:
    """An XGBoost booster from its own JSON model (shap 0.49 cannot read XGBoost 3's model files).

    XGBoost sends x left when ``x < split`` in float32: the thresholds are moved down one float32 step so
    that ``x <= threshold`` holds for exactly the same inputs. The intercept (base_score, whose encoding
    changed across versions) is measured: the booster's margin minus the trees' sum, on probe rows.
    """
    import json

    model = json.loads(bytes(booster.save_raw(raw_format="json")))
    gbm = model["learner"]["gradient_booster"]
    if "model" not in gbm:
        raise TreeParseError(f"XGBoost {gbm.get('name', 'booster')} models are not tree ensembles")
    trees = gbm["model"]["trees"]
    info = gbm["model"]["tree_info"]
    n_outputs = max(1, int(model["learner"]["learner_model_param"].get("num_class", "0") or 0))
    objective = model["learner"]["objective"]["name"]
    width = max(len(t["left_children"]) for t in trees)
    shape = (len(trees), width)
    left, right = -np.ones(shape, dtype=int), -np.ones(shape, dtype=int)
    features, thresholds = -np.ones(shape, dtype=int), np.zeros(shape)
    values = np.zeros((*shape, n_outputs))
    for i, tree in enumerate(trees):
        if any(int(s) != 0 for s in tree.get("split_type", [])):
            raise TreeParseError("categorical splits are not supported by the grouped TreeSHAP")
        n = len(tree["left_children"])
        left[i, :n], right[i, :n] = tree["left_children"], tree["right_children"]
        features[i, :n] = tree["split_indices"]
        split = np.asarray(tree["split_conditions"], dtype=np.float32)
        thresholds[i, :n] = np.nextafter(split, np.float32(-np.inf)).astype(np.float64)
        leaf = np.asarray(left[i, :n]) < 0
        values[i, :n, int(info[i]) if n_outputs > 1 else 0] = np.where(leaf, split.astype(np.float64), 0.0)
    ensemble = _Ensemble(
        left, right, features, thresholds, values, np.zeros(n_outputs), _xgb_output(objective, n_outputs)
    )
    n_features = int(model["learner"]["learner_model_param"]["num_feature"])
    probe = np.vstack([np.zeros(n_features), np.ones(n_features), -np.ones(n_features)])
    import xgboost

    names = booster.feature_names
    margin = np.asarray(booster.predict(xgboost.DMatrix(probe, feature_names=names), output_margin=True), dtype=float)
    leaves = leaves_of(ensemble, np.arange(n_features), n_features)
    ok = _group_ok(leaves, probe).all(axis=2).astype(float)
    offsets = margin.reshape(len(probe), -1) - ok @ leaves.values
    if np.max(np.abs(offsets - offsets[0])) > 1e-4:
        raise TreeParseError("the XGBoost model's intercept is not constant")
    return _Ensemble(
        left, right, features, thresholds, values, offsets[0], ensemble.tree_output, input_dtype=np.float32
    )


def _xgb_output(objective: str, n_outputs: int) -> str:
    if objective in ("binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax"):
        return "log_odds"
    return "raw_value"


def lightgbm_ensemble(booster: Any) -> _Ensemble:
    """A LightGBM booster from its own model dump (shap 0.49 folds a multiclass Booster's per-class trees
    into one output). LightGBM sends x left when ``x <= threshold``; the intercept is measured as for XGBoost."""
    model = booster.dump_model()
    per_iteration = int(model.get("num_tree_per_iteration", 1))
    trees = model["tree_info"]
    flat: list[list[tuple[int, int, int, float, float]]] = []  # per tree: (left, right, feature, threshold, value)
    for info in trees:
        nodes: list[tuple[int, int, int, float, float]] = []

        def add(node: dict[str, Any], nodes: list[tuple[int, int, int, float, float]] = nodes) -> int:
            index = len(nodes)
            nodes.append((-1, -1, -1, 0.0, 0.0))
            if "leaf_value" in node or "split_feature" not in node:
                nodes[index] = (-1, -1, -1, 0.0, float(node.get("leaf_value", 0.0)))
                return index
            if node.get("decision_type", "<=") != "<=":
                raise TreeParseError("categorical splits are not supported by the grouped TreeSHAP")
            left = add(node["left_child"])
            right = add(node["right_child"])
            nodes[index] = (left, right, int(node["split_feature"]), float(node["threshold"]), 0.0)
            return index

        add(info["tree_structure"])
        flat.append(nodes)
    width = max(len(n) for n in flat)
    shape = (len(flat), width)
    left, right = -np.ones(shape, dtype=int), -np.ones(shape, dtype=int)
    features, thresholds = -np.ones(shape, dtype=int), np.zeros(shape)
    values = np.zeros((*shape, per_iteration))
    for i, nodes in enumerate(flat):
        for j, (lc, rc, feature, threshold, value) in enumerate(nodes):
            left[i, j], right[i, j], features[i, j], thresholds[i, j] = lc, rc, feature, threshold
            values[i, j, i % per_iteration] = value
    objective = str(model.get("objective", "")).split(" ")[0]
    output = "log_odds" if objective in ("binary", "multiclass", "softmax", "multiclassova") else "raw_value"
    ensemble = _Ensemble(left, right, features, thresholds, values, np.zeros(per_iteration), output, np.float64)
    n_features = int(model["max_feature_idx"]) + 1
    probe = np.vstack([np.zeros(n_features), np.ones(n_features), -np.ones(n_features)])
    margin = np.asarray(booster.predict(probe, raw_score=True), dtype=float).reshape(len(probe), -1)
    leaves = leaves_of(ensemble, np.arange(n_features), n_features)
    offsets = margin - _group_ok(leaves, probe).all(axis=2).astype(float) @ leaves.values
    if np.max(np.abs(offsets - offsets[0])) > 1e-9:
        raise TreeParseError("the LightGBM model's intercept is not constant")
    return _Ensemble(left, right, features, thresholds, values, offsets[0], output, np.float64)
