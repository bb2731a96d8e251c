"""Seeded explanations computed in concurrent threads are the ones computed alone (PRODUCT.md §7).

KernelSHAP, PermutationSHAP, anchors and DiCE draw from process-wide random generators; each explanation
gets its own explainer object, and explain/seeding.py keeps one thread's seeded draws from interleaving with
another's.
"""

from __future__ import annotations

import threading

import pytest

from explain.registry import create_explainer

METHODS = [
    ("shap", {"algorithm": "kernel", "nsamples": 60, "background_size": 20}, 4),
    ("shap", {"algorithm": "permutation", "max_evals": 40, "background_size": 20}, 4),
    ("counterfactuals", {"total_cfs": 2}, 2),
]


def explain(fitted, method, params, n):
    explainer = create_explainer(method, predictor=fitted.predictor, background=fitted.background, params=params)
    results = explainer.explain(fitted.rows.iloc[:n], seeds=[101 + i for i in range(n)])
    return [r.body for r in results]


def concurrently(fn, threads: int):
    out: list[object] = [None] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(k: int) -> None:
        try:
            start.wait()
            out[k] = fn()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return out


@pytest.mark.parametrize(("method", "params", "n"), METHODS, ids=["kernel", "permutation", "dice"])
def test_threads_give_the_explanation_each_seed_gives_alone(credit, method, params, n):
    alone = explain(credit, method, params, n)
    for _ in range(2):
        for together in concurrently(lambda: explain(credit, method, params, n), threads=3):
            assert together == alone


@pytest.mark.heavy
def test_anchors_in_threads_are_the_anchors_found_alone(credit):
    params = {"threshold": 0.9, "coverage_samples": 500}
    alone = explain(credit, "anchors", params, 1)
    for together in concurrently(lambda: explain(credit, "anchors", params, 1), threads=2):
        assert together == alone
