"""Drift, importance, performance and fairness over 100,000-decision windows of 1,000,000 recorded decisions
with SHAP explanations (issue #18: each under 10 s and 1 GiB on 2 cores), on SQLite and PostgreSQL.

    .venv/bin/python bench/analytics.py [--decisions 1000000] [--window 100000] [--databases sqlite,postgresql]

Filling: two model versions are registered through the service (ledger entries included); 10,000 distinct
applications are predicted and explained with TreeSHAP by the service's own explainer, then the decision,
explanation and outcome rows are bulk-inserted through storage/bulk.py (COPY on PostgreSQL) with ids and
times of their own: a year of decisions, version 1 for the first half and version 2 after, 70 % with an
outcome. The rows are what the services write (the explanation body is the real entry payload); their
ledger entries are not written, because no analytic reads them and appending 3M entries would take the
bench's whole budget. Measuring: each figure is computed by the service function the HTTP route calls, in a
fresh process per figure, once to warm the database's cache and once timed; peak memory is that process's
maximum resident set size (Python, numpy, scipy, scikit-learn and Fairlearn included).

Measured 2026-11-30 on the 2-core machine with nothing else running (load average < 1), seconds / peak MiB
(the process's VmHWM, imports included; ~185 MiB before the figure); drift reads two windows (200k
decisions), the others one (100k):

    database     drift        importance   performance  fairness
    sqlite       3.1 / 281    0.8 / 188    0.6 / 295    0.3 / 260
    postgresql   3.6 / 309    0.6 / 192    0.7 / 308    0.3 / 264

(On the same machine under heavy load from other work, drift took 13.8 s on SQLite and 14.6 s on PostgreSQL.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
DISTINCT = 10_000
CHUNK = 20_000


def _database(kind: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A fresh, migrated database and a function that drops it: bench/throughput.py's (imported here, not at
    the top, so that the measuring processes load nothing the service would not)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import throughput

    return throughput._database(kind, tmp)


def _settings(url: str, tmp: Path) -> Any:
    from api.settings import Settings

    return Settings(data_dir=tmp / "data", database_url=url, workers=0, gc_freeze=False)


def fill(url: str, tmp: Path, n: int) -> float:
    """Returns seconds spent filling."""
    from api.container import build_services
    from api.schemas import FeatureIn, ManifestIn
    from api.services.explaining import ComputeRequest, compute
    from api.services.models import register_model
    from explain.artifacts import dump_skops
    from explain.predictor import frame_from_rows
    from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline
    from storage.bulk import insert_rows
    from storage.db import Database
    from storage.tables import DecisionRow, ExplanationRow, OutcomeRow

    started = time.perf_counter()
    db = Database.from_url(url)
    db.upgrade()
    db.dispose()
    settings = _settings(url, tmp)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = build_services(settings)
    spec = credit_spec()
    background, _ = make_credit_frame(50, seed=7)
    prepared = []
    for version, kind in (("1", "gbm"), ("2", "gbm")):
        manifest = ManifestIn(
            name="credit",
            version=version,
            task="binary",
            class_labels=list(spec.class_labels),
            positive_class="approved",
            features=[FeatureIn(**f.to_dict()) for f in spec.features],
            background=background.to_dict(orient="records"),  # type: ignore[arg-type]
        )
        pipeline = train_credit_pipeline(seed=int(version), n=1500, kind=kind)
        registration = register_model(services, manifest=manifest, artifact=dump_skops(pipeline))
        loaded = services.models.get(registration.record)
        frame, labels = make_credit_frame(DISTINCT, seed=10 + int(version))
        if version == "2":
            frame["income"] = (frame["income"] * 1.3).clip(upper=480_000).round(2)
        rows = frame.to_dict(orient="records")
        outputs = loaded.predictor.predict(frame_from_rows(loaded.spec, rows))
        request = ComputeRequest(
            model=registration.record,
            method="shap",
            params=loaded.params_for("shap"),
            inputs=rows,
            seeds=[0] * len(rows),
            targets=None,
            budget=loaded.budget_for("shap", services.default_budget),
        )
        results = compute(request, loaded)
        prepared.append((registration.record, rows, outputs, [e.result.to_dict() for e in results], list(labels)))
    print(f"  {url.split(':')[0]}: models registered, {2 * DISTINCT:,} distinct rows explained", file=sys.stderr)
    step = YEAR / n
    now = datetime.now(UTC)
    for start in range(0, n, CHUNK):
        decisions, explanations, outcomes = [], [], []
        for i in range(start, min(n, start + CHUNK)):
            record, rows, outputs, bodies, labels = prepared[0 if i < n // 2 else 1]
            k = (i * 7919) % DISTINCT
            decision_id = f"d-{i}"
            decisions.append(
                {
                    "decision_id": decision_id,
                    "model_version_id": record.id,
                    "model_ref": record.ref,
                    "inputs": rows[k],
                    "output": outputs[k],
                    "client_output": None,
                    "output_mismatch": False,
                    "subject_ref": f"s-{i % 50_000}",
                    "occurred_at": START + step * i,
                    "recorded_at": now,
                    "context": {"channel": ("web", "branch", "phone")[i % 3]},
                    "body_sha256": "0" * 64,
                    "ledger_index": 0,
                }
            )
            explanations.append(
                {
                    "id": uuid.uuid4().hex,
                    "decision_id": decision_id,
                    "method": "shap",
                    "params_hash": "0" * 32,
                    "status": "succeeded",
                    "body": {"decision_id": decision_id, "method": "shap", "model": record.ref, **bodies[k]},
                    "ledger_index": 0,
                    "created_at": now,
                    "job_id": None,
                }
            )
            if i % 10 < 7:
                outcomes.append(
                    {
                        "decision_id": decision_id,
                        "label": labels[k],
                        "body": {"label": labels[k], "observed_at": "2026-01-01T00:00:00.000000Z"},
                        "ledger_index": 0,
                        "recorded_at": now,
                    }
                )
        with services.db.unit_of_work() as uow:
            insert_rows(uow.session, DecisionRow, decisions)
            insert_rows(uow.session, ExplanationRow, explanations)
            insert_rows(uow.session, OutcomeRow, outcomes)
        done = min(n, start + CHUNK)
        if done % 100_000 == 0:
            print(f"  {url.split(':')[0]}: {done:,} decisions stored", file=sys.stderr, flush=True)
    if services.db.dialect == "postgresql":
        with services.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with services.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    services.close()
    return time.perf_counter() - started


def peak_rss_kib() -> int:
    """This process's peak resident set (KiB): VmHWM belongs to the address space exec made, whereas
    ru_maxrss keeps the high-water mark of the parent's image forked before exec (the filled bench, ~700 MiB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_one(url: str, tmp: str, figure: str, n: int, window: int) -> None:
    """In a fresh process: compute ``figure`` twice, print JSON with the second time and the peak RSS."""
    from api.container import build_services
    from api.services.analytics.drift import WindowSpec, compute_drift
    from api.services.analytics.fairness import compute_fairness
    from api.services.analytics.importance import compute_importance
    from api.services.analytics.performance import compute_performance

    services = build_services(_settings(url, Path(tmp)))
    span = YEAR * window / n
    ref_start = START + YEAR * 0.1  # inside version 1's half
    cur_start = START + YEAR * 0.6  # inside version 2's half
    calls: dict[str, Callable[[], Any]] = {
        "drift": lambda: compute_drift(
            services,
            "credit",
            reference=WindowSpec(None, ref_start, ref_start + span),
            current=WindowSpec(None, cur_start, cur_start + span),
        ),
        "importance": lambda: compute_importance(
            services, "credit", since=cur_start, until=cur_start + span, bucket="day"
        ),
        "performance": lambda: compute_performance(
            services, "credit", since=cur_start, until=cur_start + span, bucket="week"
        ),
        "fairness": lambda: compute_fairness(
            services, "credit", group="housing", since=cur_start, until=cur_start + span
        ),
    }
    baseline = peak_rss_kib()
    calls[figure]()
    started = time.perf_counter()
    result = calls[figure]()
    seconds = time.perf_counter() - started
    peak = peak_rss_kib()
    decisions = {
        "drift": lambda r: r.reference.decisions + r.current.decisions,
        "importance": lambda r: sum(x.explanations for x in r.rows),
        "performance": lambda r: sum(x.decisions for x in r.rows),
        "fairness": lambda r: r.decisions,
    }[figure](result)
    services.close()
    print(
        json.dumps(
            {"seconds": seconds, "peak_mib": peak / 1024, "baseline_mib": baseline / 1024, "decisions": decisions}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=100_000, help="decisions per analysed window")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--measure", nargs=3, metavar=("URL", "TMP", "FIGURE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_one(*args.measure, args.decisions, args.window)
        return
    table = []
    for kind in args.databases.split(","):
        tmp = Path(tempfile.mkdtemp())
        url, drop = _database(kind, tmp)
        try:
            filled = fill(url, tmp, args.decisions)
            for figure in ("drift", "importance", "performance", "fairness"):
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--decisions",
                        str(args.decisions),
                        "--window",
                        str(args.window),
                        "--measure",
                        url,
                        str(tmp),
                        figure,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                table.append((kind, filled, figure, json.loads(done.stdout.strip().splitlines()[-1])))
                print(f"  {kind}: {figure} {table[-1][3]}", file=sys.stderr, flush=True)
        finally:
            drop()
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{args.decisions:,} decisions with SHAP explanations stored; windows of {args.window:,} decisions "
        f"({os.cpu_count()} cores)"
    )
    print(f"{'database':<12}{'figure':<13}{'decisions read':>15}{'seconds':>9}{'peak RSS MiB':>14}{'at start MiB':>14}")
    for kind, _, figure, m in table:
        print(
            f"{kind:<12}{figure:<13}{m['decisions']:>15,}{m['seconds']:>9.2f}{m['peak_mib']:>14.0f}{m['baseline_mib']:>14.0f}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
