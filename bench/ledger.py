"""Ledger speed on SQLite and PostgreSQL, next to a plain INSERT of the same rows, in one run:
appends/s (group commit), full verification rate, full verification with every row checked against its entry
(decisions recorded through the service layer, rows included), inclusion- and consistency-proof time at large
sizes, and the witness round trip (a `rationale witness serve` process over loopback HTTP).

    .venv/bin/python bench/ledger.py [--appends N] [--row-decisions N] [--sizes 1000000,10000000]
                                     [--postgres URL] [--witness-rounds N] [--witness-only]

PostgreSQL runs in a scratch database created and dropped here.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import uuid
from datetime import UTC, datetime

import psycopg
from sqlalchemy import text

from audit.entry import EntryDraft, StoredEntry
from audit.ledger import Ledger
from audit.tree import nodes_completed
from audit.verify import verify_ledger
from storage.db import Database

NOW = datetime(2026, 3, 3, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def payload(i: int) -> dict[str, object]:
    return {
        "decision_id": f"d-{i}",
        "model": "credit@1",
        "inputs": {"income": 40_000.0 + i, "purpose": "car", "age": 30 + i % 40},
        "output": {"label": "approved", "scores": {"approved": 0.7, "declined": 0.3}},
    }


def bench_appends(db: Database, n: int, batch: int) -> tuple[float, float]:
    ledger = Ledger(clock=clock)
    drafts = [EntryDraft("decision.recorded", payload(i)) for i in range(n)]
    started = time.perf_counter()
    for start in range(0, n, batch):
        with db.unit_of_work() as uow:
            ledger.append(uow.ledger, drafts[start : start + batch])
    ours = n / (time.perf_counter() - started)
    # The floor: the same canonical rows by a plain INSERT into a table without triggers or tree nodes.
    rows = [StoredEntry.build(index=i, draft=d, recorded_at=NOW) for i, d in enumerate(drafts)]
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE plain_rows (idx BIGINT PRIMARY KEY, body BYTEA)".replace(
                    "BYTEA", "BLOB" if db.dialect == "sqlite" else "BYTEA"
                )
            )
        )
    started = time.perf_counter()
    for start in range(0, n, batch):
        with db.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO plain_rows (idx, body) VALUES (:i, :b)"),
                [{"i": r.index, "b": r.canonical} for r in rows[start : start + batch]],
            )
    floor = n / (time.perf_counter() - started)
    return ours, floor


def bulk_fill(db: Database, size: int) -> None:
    """A large ledger quickly: synthetic entries and their tree nodes by bulk insert (not via append)."""
    chunk = 100_000
    with db.unit_of_work() as uow:
        start = uow.ledger.size()
    while start < size:
        end = min(size, start + chunk)
        entries = []
        for i in range(start, end):
            body = b'{"index":%d,"payload":{"n":%d},"recorded_at":"2026-03-03T00:00:00.000000Z","type":"bulk"}' % (i, i)
            entries.append(
                StoredEntry(i, "bulk", "2026-03-03T00:00:00.000000Z", body, hashlib.sha256(b"\x00" + body).digest())
            )
        with db.unit_of_work() as uow:
            uow.ledger.append(entries)
            uow.ledger.put_nodes(nodes_completed(start, [e.leaf_hash for e in entries], uow.ledger))
        start = end


def bench_proofs(db: Database, size: int, trials: int = 200) -> tuple[float, float]:
    ledger = Ledger(clock=clock)
    import random

    rng = random.Random(0)
    with db.unit_of_work(write=False) as uow:
        started = time.perf_counter()
        for _ in range(trials):
            ledger.inclusion_proof(uow.ledger, index=rng.randrange(size), tree_size=size)
        inclusion = (time.perf_counter() - started) / trials
        started = time.perf_counter()
        for _ in range(trials):
            first = rng.randrange(1, size)
            ledger.consistency_proof(uow.ledger, first=first, second=size)
        consistency = (time.perf_counter() - started) / trials
    return inclusion * 1000, consistency * 1000


def bench_verify(db: Database) -> float:
    with db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        started = time.perf_counter()
        report = verify_ledger(uow.ledger, anchors=[])
        assert report.ok, report.failure
    return size / (time.perf_counter() - started)


def bench_witness(rounds: int, entries_per_round: int = 10) -> tuple[float, float, float]:
    """Push + cosign over loopback HTTP to a real witness process (its own SQLite database): per round, the
    log appends entries, signs a checkpoint, makes the consistency proof from the witness's size, POSTs
    add-checkpoint, and checks the returned cosignature. Returns p50 and p99 (ms) and rounds/s."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.cosignature import check_quorum, parse_verifier_key
    from audit.memory_store import MemoryLedgerStore
    from audit.note import checkpoint_text, sign_note, verifier_key
    from audit.witness import format_add_checkpoint

    origin = "bench.example/ledger"
    log_key = Ed25519PrivateKey.generate()
    vkey = verifier_key(origin, log_key.public_key().public_bytes_raw())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data_dir = tempfile.mkdtemp()
    witness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "witness",
            "serve",
            "--log",
            vkey,
            "--name",
            "bench.example/witness",
            "--data-dir",
            data_dir,
            "--port",
            str(port),
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    witness_vkey = parse_verifier_key(client.get(f"{url}/healthz").json()["verifier_key"])
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            ledger, store = Ledger(clock=clock), MemoryLedgerStore()
            old, timings = 0, []
            for r in range(rounds + 5):
                ledger.append(store, [EntryDraft("t", {"n": i}) for i in range(entries_per_round)])
                size = store.size()
                started = time.perf_counter()
                note = sign_note(
                    checkpoint_text(origin, size, ledger.root(store, size)), name=origin, private_key=log_key
                )
                proof = ledger.consistency_proof(store, first=old, second=size) if old else []
                response = client.post(f"{url}/add-checkpoint", content=format_add_checkpoint(old, proof, note))
                assert response.status_code == 200, response.text
                check_quorum(note + response.text, keys=[witness_vkey], quorum=1)
                if r >= 5:  # warm-up rounds
                    timings.append(time.perf_counter() - started)
                old = size
    finally:
        witness.terminate()
        witness.wait(20)
    timings.sort()
    p50 = timings[len(timings) // 2] * 1000
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))] * 1000
    return p50, p99, len(timings) / sum(timings)


def fill_decisions(url: str, data_dir: str, n: int) -> None:
    """n decisions recorded through the service layer: entries *and* the rows that index them."""
    from api.container import build_services
    from api.schemas import DecisionCreate, FeatureIn, ManifestIn
    from api.services.decisions import record_decisions
    from api.services.models import register_model
    from api.settings import Settings
    from explain.artifacts import dump_skops
    from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline

    settings = Settings(data_dir=data_dir, database_url=url, workers=0)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = build_services(settings)
    spec = credit_spec()
    background, _ = make_credit_frame(50, seed=7)
    manifest = ManifestIn(
        name="credit",
        version="1",
        task="binary",
        class_labels=list(spec.class_labels),
        features=[FeatureIn(**f.to_dict()) for f in spec.features],
        background=background.to_dict(orient="records"),  # type: ignore[arg-type]
    )
    register_model(services, manifest=manifest, artifact=dump_skops(train_credit_pipeline(seed=0, n=1500)))
    rows, _ = make_credit_frame(5_000, seed=1)
    records = rows.to_dict(orient="records")
    for start in range(0, n, 1000):
        batch = [
            DecisionCreate(
                decision_id=f"d-{i}",
                model="credit@1",
                inputs=records[i % len(records)],  # type: ignore[arg-type]
                subject_ref=f"s-{i % 50_000}",
                explain=[],
            )
            for i in range(start, min(n, start + 1000))
        ]
        record_decisions(services, batch, path="decisions")
    services.close()


def bench_verify_with_rows(db: Database) -> tuple[float, float, float]:
    """Entries/s of the ledger check alone, of the row check alone, and of both as `rationale verify` runs
    them (api.services.verification.check_everything: at once, the row check in a second process)."""
    from api.services.rowbinding import check_all_rows
    from api.services.verification import check_everything

    with db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        started = time.perf_counter()
        report = verify_ledger(uow.ledger, anchors=[])
        ledger_seconds = time.perf_counter() - started
        assert report.ok, report.failure
        started = time.perf_counter()
        findings = list(check_all_rows(uow))
        row_seconds = time.perf_counter() - started
        assert not findings, findings[:3]
    whole = check_everything(db, anchors=[])
    assert whole.report.ok and not whole.row_count, (whole.report.failure, whole.row_failures[:3])
    return size / ledger_seconds, size / row_seconds, whole.report.entries_checked / whole.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="entries per transaction (group commit)")
    parser.add_argument("--sizes", default="1000000", help="ledger sizes for proofs, comma-separated")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--witness-rounds", type=int, default=300, help="add-checkpoint round trips (0: skip)")
    parser.add_argument("--witness-only", action="store_true", help="only the witness round trip")
    parser.add_argument(
        "--row-decisions", type=int, default=100_000, help="decisions recorded with their rows for the row check"
    )
    args = parser.parse_args()
    if args.witness_rounds:
        p50, p99, per_second = bench_witness(args.witness_rounds)
        print(
            f"witness round trip (push + cosign over loopback HTTP, witness on SQLite, {args.witness_rounds} "
            f"rounds): p50 {p50:.2f} ms, p99 {p99:.2f} ms, {per_second:,.0f} checkpoints/s\n"
        )
    if args.witness_only:
        return
    sizes = [int(s) for s in args.sizes.split(",")]

    tmp = tempfile.mkdtemp()
    scratch = f"rationale_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
    pg_url = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{scratch}"
    backends = {"SQLite": f"sqlite:///{tmp}/bench.db", "PostgreSQL": pg_url}
    try:
        print(f"appends: {args.appends} entries in transactions of {args.batch}")
        print(f"{'backend':<12}{'ledger appends/s':>18}{'plain INSERT/s':>16}{'verify entries/s':>18}")
        for name, url in backends.items():
            db = Database.from_url(url)
            db.upgrade()
            ours, floor = bench_appends(db, args.appends, args.batch)
            print(f"{name:<12}{ours:>18,.0f}{floor:>16,.0f}{bench_verify(db):>18,.0f}")
            db.dispose()
        print(f"\nfull verification with row checks: {args.row_decisions:,} decisions recorded with their rows")
        print(f"{'backend':<12}{'ledger only/s':>16}{'rows only/s':>14}{'verify (both)/s':>18}")
        for name, url in backends.items():
            rows_url = url.replace("bench.db", "rows.db") if name == "SQLite" else url
            db = Database.from_url(rows_url)
            if name == "PostgreSQL":  # a fresh scratch schema: the append bench above left bare entries
                with db.engine.begin() as conn:
                    conn.execute(text("DROP SCHEMA public CASCADE"))
                    conn.execute(text("CREATE SCHEMA public"))
            db.upgrade()
            fill_decisions(rows_url, f"{tmp}/data-{name}", args.row_decisions)
            ledger_rate, row_rate, both = bench_verify_with_rows(db)
            print(f"{name:<12}{ledger_rate:>16,.0f}{row_rate:>14,.0f}{both:>18,.0f}")
            db.dispose()
        print("\nproofs (ms, mean of 200 random requests)")
        print(f"{'backend':<12}{'size':>12}{'inclusion':>12}{'consistency':>13}{'verify entries/s':>18}")
        for name, url in backends.items():
            db = Database.from_url(url)
            for size in sizes:
                bulk_fill(db, size)
                inclusion, consistency = bench_proofs(db, size)
                rate = bench_verify(db) if size <= 1_000_000 else float("nan")
                print(f"{name:<12}{size:>12,}{inclusion:>12.3f}{consistency:>13.3f}{rate:>18,.0f}")
            db.dispose()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


if __name__ == "__main__":
    main()
