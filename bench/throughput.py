"""Decisions explained per second, in one run, four ways:
(a) shap called directly on all rows in one batch — the floor; (b) shap once per row — what a per-request
explainer server does; (c) through Rationale's HTTP API end to end (recorded, explained, in the ledger)
with the embedded pool; (d) the same with 2 Celery worker processes on Redis.

    .venv/bin/python bench/throughput.py [--decisions N] [--kernel-decisions N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from explain.artifacts import dump_skops
from explain.samples import credit_spec, make_credit_frame

BROKER = os.environ.get("RATIONALE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")


def gbm_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    spec = credit_spec()
    frame, labels = make_credit_frame(3000, seed=0)
    cats = [f.name for f in spec.features if f.type == "category"]
    nums = [f.name for f in spec.features if f.type != "category"]
    prep = ColumnTransformer([("num", "passthrough", nums), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    model = GradientBoostingClassifier(n_estimators=100, max_depth=6, random_state=0)
    return Pipeline([("prep", prep), ("model", model)]).fit(frame, labels)


def small_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.neural_network import MLPClassifier  # not linear: KernelSHAP is the right tool
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    spec = credit_spec()
    frame, labels = make_credit_frame(2000, seed=0)
    cats = [f.name for f in spec.features if f.type == "category"]
    nums = [f.name for f in spec.features if f.type != "category"]
    prep = ColumnTransformer([("num", StandardScaler(), nums), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
    return Pipeline([("prep", prep), ("model", model)]).fit(frame, labels)


def rate(n: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def direct_tree(pipeline: Any, rows: Any, per_row: bool) -> None:
    import shap

    final, prep = pipeline.steps[-1][1], pipeline[:-1]
    if per_row:
        for i in range(len(rows)):
            shap.TreeExplainer(final)(prep.transform(rows.iloc[[i]]))
    else:
        shap.TreeExplainer(final)(prep.transform(rows))


def direct_kernel(pipeline: Any, rows: Any, background: Any, nsamples: int, per_row: bool) -> None:
    import shap

    from explain.coding import FeatureCoder

    coder = FeatureCoder(credit_spec())

    def f(z: np.ndarray) -> np.ndarray:
        return pipeline.predict_proba(coder.decode(z))

    coded, bg = coder.encode(rows), coder.encode(background)
    if per_row:
        for i in range(len(coded)):
            shap.KernelExplainer(f, bg).shap_values(coded[i : i + 1], nsamples=nsamples, silent=True)
    else:
        shap.KernelExplainer(f, bg).shap_values(coded, nsamples=nsamples, silent=True)


def manifest(name: str, background: Any, params: dict[str, Any]) -> dict[str, Any]:
    spec = credit_spec()
    return {
        "name": name,
        "version": "1",
        "task": "binary",
        "class_labels": list(spec.class_labels),
        "features": [f.to_dict() for f in spec.features],
        "background": background.to_dict(orient="records"),
        "explainers": {"default_methods": ["shap"], "params": {"shap": params}},
    }


def through_api(
    name: str, artifact: bytes, rows: Any, background: Any, params: dict[str, Any], *, celery_workers: int
) -> float:
    """Seconds from the first POST until every decision's explanation is in the ledger."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.container import build_services
    from api.settings import Settings
    from storage.db import Database

    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp}/bench.db"
    db = Database.from_url(url)
    db.upgrade()
    db.dispose()
    executor = "celery" if celery_workers else "local"
    settings = Settings(
        data_dir=tmp / "data",
        database_url=url,
        executor=executor,
        broker_url=BROKER,
        workers=0 if celery_workers else 2,
        batch_size=64,
    )
    procs = []
    if celery_workers:
        import redis

        redis.Redis.from_url(BROKER).flushdb()
        env = {
            **os.environ,
            "RATIONALE_DATABASE_URL": url,
            "RATIONALE_DATA_DIR": str(tmp / "data"),
            "RATIONALE_EXECUTOR": "celery",
            "RATIONALE_BROKER_URL": BROKER,
            "RATIONALE_BATCH_SIZE": "64",
        }
        for _ in range(celery_workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "api.cli", "worker", "--threads", "1"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
    services = build_services(settings)
    app = create_app(services=services, publish_checkpoints=False)
    try:
        with TestClient(app) as client:
            resp = client.post(
                "/v1/models",
                data={"manifest": json.dumps(manifest(name, background, params))},
                files={"artifact": ("m.skops", artifact)},
            )
            assert resp.status_code == 201, resp.text
            if celery_workers:
                time.sleep(3)  # let the worker processes boot before the clock starts
            records = rows.to_dict(orient="records")
            started = time.perf_counter()
            for start in range(0, len(records), 100):
                batch = [
                    {"decision_id": f"d-{i}", "model": f"{name}@1", "inputs": r}
                    for i, r in enumerate(records[start : start + 100], start)
                ]
                assert client.post("/v1/decisions", json={"decisions": batch}).status_code == 201
            while True:
                with services.db.unit_of_work(write=False) as uow:
                    if uow.jobs.depth() == 0:
                        break
                time.sleep(0.05)
            return time.perf_counter() - started
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000, help="decisions for the tree model")
    parser.add_argument("--kernel-decisions", type=int, default=40, help="decisions for KernelSHAP")
    parser.add_argument("--nsamples", type=int, default=200, help="KernelSHAP samples per explanation")
    args = parser.parse_args()

    background, _ = make_credit_frame(50, seed=7)
    results: list[tuple[str, int, float, float, float, float]] = []

    gbm = gbm_pipeline()
    rows, _ = make_credit_frame(args.decisions, seed=3)
    gbm_artifact = dump_skops(gbm)
    n = len(rows)
    direct_tree(gbm, rows.iloc[:10], per_row=False)  # warm shap
    a = rate(n, lambda: direct_tree(gbm, rows, per_row=False))
    b = rate(min(n, 300), lambda: direct_tree(gbm, rows.iloc[:300], per_row=True))
    c = n / through_api("gbm", gbm_artifact, rows, background, {"algorithm": "tree"}, celery_workers=0)
    d = n / through_api("gbm", gbm_artifact, rows, background, {"algorithm": "tree"}, celery_workers=2)
    results.append(("TreeSHAP, GBM 100 trees depth 6", n, a, b, c, d))

    small = small_pipeline()
    krows, _ = make_credit_frame(args.kernel_decisions, seed=4)
    k = len(krows)
    params = {"algorithm": "kernel", "nsamples": args.nsamples, "background_size": 50}
    ka = rate(k, lambda: direct_kernel(small, krows, background, args.nsamples, per_row=False))
    kb = rate(k, lambda: direct_kernel(small, krows, background, args.nsamples, per_row=True))
    kc = k / through_api("mlp", dump_skops(small), krows, background, params, celery_workers=0)
    kd = k / through_api("mlp", dump_skops(small), krows, background, params, celery_workers=2)
    results.append((f"KernelSHAP, small MLP, nsamples {args.nsamples}", k, ka, kb, kc, kd))

    print("decisions explained per second (2 cores)")
    header = f"{'workload':<40}{'n':>6}{'(a) batch':>11}{'(b) per row':>13}{'(c) API local':>15}{'(d) 2 Celery':>14}"
    print(header)
    for name, count, *figures in results:
        print(
            f"{name:<40}{count:>6}" + "".join(f"{v:>{w},.1f}" for v, w in zip(figures, (11, 13, 15, 14), strict=True))
        )


if __name__ == "__main__":
    main()
