"""Decision lookup by id and filtered search, p50/p99, with 1,000,000 decisions stored (PRODUCT.md §7: lookup
p99 < 20 ms, search p99 < 100 ms), on SQLite and PostgreSQL, in one run.

    .venv/bin/python bench/lookup.py [--decisions 1000000] [--queries 2000] [--databases sqlite,postgresql]

Decisions are recorded through the service layer (ledger entries included; no explanation jobs), spread
over a year and 50,000 subjects. Then a real `rationale serve` answers over HTTP: GET /v1/decisions/{id} for
random ids, GET /v1/decisions?model=&since=&until= for random one-day windows and ?subject_ref= for random
subjects (first page, 100 items). Access control is on: the client uses a compliance key and states a
purpose, so every lookup and search page appends its access entry to the ledger (group-committed) before
it is answered: the figures include recording every read. The floor is SQLAlchemy Core sending the same
SELECTs straight to the database in this process (no HTTP, no ORM, no JSON rendering).

Measured 2026-11-30 on the 2-core machine with nothing else running, 1,000,000 decisions, ms p50 / p99:

    database     API: by id      1-day window    by subject     floor: by id   1-day window   by subject
    sqlite        7.5 / 13.5     17.5 / 26.9      9.7 / 17.5    0.07 / 0.32    2.1 / 4.3      0.6 / 1.2
    postgresql   10.1 / 16.1     28.8 / 44.8     16.4 / 27.5    0.30 / 0.74    3.7 / 8.6      0.8 / 1.7
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.container import build_services
from api.schemas import DecisionCreate, FeatureIn, ManifestIn
from api.services.access import create_key, local_principal
from api.services.decisions import record_decisions
from api.services.models import register_model
from api.settings import Settings
from explain.artifacts import dump_skops
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline
from storage.db import Database
from storage.tables import DecisionRow, ModelVersionRow

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling benches import
import throughput as _throughput

START = datetime(2025, 1, 1, tzinfo=UTC)
SUBJECTS = 50_000


# a free port, and a fresh migrated database with the function that drops it: bench/throughput.py's
_free_port = _throughput._free_port
_database = _throughput._database


def fill(settings: Settings, n: int) -> float:
    """Record n decisions through the service layer; returns decisions per second."""
    spec = credit_spec()
    background, _ = make_credit_frame(50, seed=7)
    services = build_services(settings)
    manifest = ManifestIn(
        name="credit",
        version="1",
        task="binary",
        class_labels=list(spec.class_labels),
        features=[FeatureIn(**f.to_dict()) for f in spec.features],
        background=background.to_dict(orient="records"),  # type: ignore[arg-type]
    )
    register_model(services, manifest=manifest, artifact=dump_skops(train_credit_pipeline(seed=0, n=1500)))
    rows, _ = make_credit_frame(10_000, seed=1)  # inputs repeat every 10,000 decisions; ids and times do not
    records = rows.to_dict(orient="records")
    step = timedelta(days=365) / n
    started = time.perf_counter()
    for start in range(0, n, 1000):
        batch = [
            DecisionCreate(
                decision_id=f"d-{i}",
                model="credit@1",
                inputs=records[i % len(records)],  # type: ignore[arg-type]
                subject_ref=f"s-{i % SUBJECTS}",
                occurred_at=START + step * i,
                explain=[],
            )
            for i in range(start, min(n, start + 1000))
        ]
        record_decisions(services, batch, path="decisions")
        done = min(n, start + 1000)
        if done % 100_000 == 0:
            print(f"  {settings.effective_database_url.split(':')[0]}: {done:,} recorded", file=sys.stderr, flush=True)
    rate = n / (time.perf_counter() - started)
    services.close()
    return rate


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def timed(calls: list[Callable[[], object]]) -> tuple[float, float]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def measure(url: str, tmp: Path, n: int, queries: int) -> dict[str, tuple[float, float]]:
    import httpx

    rng = random.Random(5)
    ids = [f"d-{rng.randrange(n)}" for _ in range(queries)]
    days = [START + timedelta(days=rng.randrange(364)) for _ in range(queries // 4)]
    subjects = [f"s-{rng.randrange(SUBJECTS)}" for _ in range(queries // 4)]

    db = Database.from_url(url)
    table = DecisionRow.__table__
    with db.engine.connect() as conn:
        model_id = conn.execute(select(ModelVersionRow.id)).scalar_one()

        def raw(stmt: Any) -> Callable[[], object]:
            return lambda: conn.execute(stmt).all()

        floor = {
            "lookup": timed([raw(select(table).where(table.c.decision_id == i)) for i in ids]),
            "window": timed(
                [
                    raw(
                        select(table)
                        .where(table.c.model_version_id == model_id, table.c.occurred_at >= d)
                        .where(table.c.occurred_at < d + timedelta(days=1))
                        .order_by(table.c.seq)
                        .limit(101)
                    )
                    for d in days
                ]
            ),
            "subject": timed(
                [raw(select(table).where(table.c.subject_ref == s).order_by(table.c.seq).limit(101)) for s in subjects]
            ),
        }
    db.dispose()

    services = build_services(Settings(data_dir=tmp / "data", database_url=url, workers=0))
    with services.db.unit_of_work(write=False) as uow:
        size_before = uow.ledger.size()
    key = create_key(services, owner="bench", role="compliance", by=local_principal()).secret
    port = _free_port()
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": url,
        "RATIONALE_DATA_DIR": str(tmp / "data"),
        "RATIONALE_WORKERS": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        headers = {"Authorization": f"Bearer {key}", "X-Rationale-Purpose": "bench/lookup.py"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=headers) as client:
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)

            def get(path: str, **params: Any) -> Callable[[], object]:
                def call() -> None:
                    resp = client.get(path, params=params)
                    assert resp.status_code == 200, resp.text

                return call

            for i in ids[:50]:  # warm the connection pool and the caches the floor warmed too
                get(f"/v1/decisions/{i}")()
            api = {
                "lookup": timed([get(f"/v1/decisions/{i}") for i in ids]),
                "window": timed(
                    [
                        get(
                            "/v1/decisions",
                            model="credit@1",
                            since=d.isoformat(),
                            until=(d + timedelta(days=1)).isoformat(),
                        )
                        for d in days
                    ]
                ),
                "subject": timed([get("/v1/decisions", subject_ref=s) for s in subjects]),
            }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    with services.db.unit_of_work(write=False) as uow:
        recorded = uow.ledger.size() - size_before - 1  # less the key's own entry
    services.close()
    expected = 50 + len(ids) + len(days) + len(subjects)
    assert recorded == expected, f"{recorded} access entries for {expected} reads"
    print(f"  {url.split(':')[0]}: {recorded:,} reads recorded as access entries", file=sys.stderr, flush=True)
    return {**{f"floor {k}": v for k, v in floor.items()}, **{f"api {k}": v for k, v in api.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000, help="lookups; a quarter as many of each search")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()

    rows = []
    for kind in args.databases.split(","):
        tmp = Path(tempfile.mkdtemp())
        url, drop = _database(kind, tmp)
        try:
            settings = Settings(data_dir=tmp / "data", database_url=url, workers=0)
            settings.data_dir.mkdir(parents=True)
            db = Database.from_url(url)
            db.upgrade()
            db.dispose()
            rate = fill(settings, args.decisions)
            rows.append((kind, rate, measure(url, tmp, args.decisions, args.queries)))
        finally:
            drop()

    print(f"{args.decisions:,} decisions stored; milliseconds p50 / p99 ({os.cpu_count()} cores)")
    columns = ("lookup by id", "1-day window", "by subject")
    print(f"{'database':<12}{'recorded/s':>11}  {'':<24}" + "".join(f"{c:>18}" for c in columns))
    for kind, rate, figures in rows:
        for who, label in (("api", "API (HTTP, rendered)"), ("floor", "floor (Core SELECT)")):
            cells = "".join(
                f"{figures[f'{who} {k}'][0]:>8.2f} /{figures[f'{who} {k}'][1]:>8.2f}"
                for k in ("lookup", "window", "subject")
            )
            print(f"{kind:<12}{rate:>11,.0f}  {label:<24}{cells}")


if __name__ == "__main__":
    main()
