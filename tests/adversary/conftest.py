"""One small populated ledger per database, built once; each tampering runs in a transaction that is rolled back.

The attacker has database write access: inside the transaction they drop every trigger on the database
(as DDL is transactional on both SQLite and PostgreSQL, the rollback restores them), change rows with
plain SQL, and then the real checks run *inside that transaction*: ``rationale verify``'s
``verify_whole_ledger`` and the read path's services, through a ``storage.db.Database`` whose sessions
join the attacker's connection (SQLAlchemy's "join an external transaction" recipe). Nothing is mocked;
the rollback leaves the ledger as it was for the next tampering.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import reject
from sqlalchemy import Connection, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import sessionmaker

from api.container import Services, build_services
from api.schemas import DecisionCreate, FeatureIn, ManifestIn, OutcomeCreate
from api.services.checkpoints import publish_now
from api.services.decisions import record_decisions
from api.services.models import register_model
from api.services.outcomes import record_outcome
from api.services.verification import verify_whole_ledger
from api.settings import Settings
from api.workers.local_pool import drain
from explain.artifacts import dump_skops
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline
from storage.db import Database
from tests.db_fixtures import BACKENDS, PostgresTemplates, postgres_unreachable

DECISIONS = 6


@dataclass
class Facts:
    """What the untouched ledger holds, read once, so strategies can pick real rows."""

    entries: list[tuple[int, str]] = field(default_factory=list)
    nodes: list[tuple[int, int]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    explanations: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Attacked:
    """The outcome of one tampering: what `rationale verify` printed, its exit status, and the services
    whose database is the attacker's transaction (for read-path checks)."""

    status: int
    output: str
    services: Services


@dataclass
class Populated:
    backend: str
    services: Services
    facts: Facts
    tamperings: int = 0

    def __repr__(self) -> str:  # hypothesis prints the fixture with each failing example
        return f"Populated({self.backend})"

    def drop_triggers(self, conn: Connection) -> None:
        if self.services.db.dialect == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT t.tgisinternal"
                )
            ).all()
            for name, table in rows:
                conn.execute(text(f'DROP TRIGGER "{name}" ON "{table}"'))
        else:
            for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
                conn.execute(text(f'DROP TRIGGER "{name}"'))

    @contextlib.contextmanager
    def attack(self, tamper: Callable[[Connection], None], *, exact: bool = False) -> Iterator[Attacked]:
        """Tamper in a transaction, verify (``exact``: `rationale verify --exact`) and read inside it, then roll
        it back."""
        original = self.services.db
        with original.engine.connect() as conn:
            transaction = conn.begin()
            try:
                self.drop_triggers(conn)
                try:
                    tamper(conn)
                except (IntegrityError, DataError):
                    reject()  # the database's own constraints refused this edit: not a tampering

                joined = Database(original.engine)
                joined._sessions = sessionmaker(
                    bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False
                )
                self.services.db = joined
                try:
                    out, err = io.StringIO(), io.StringIO()
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                        status = verify_whole_ledger(self.services, quiet=True, exact=exact)
                    yield Attacked(status, err.getvalue() + out.getvalue(), self.services)
                finally:
                    self.services.db = original
            finally:
                transaction.rollback()
        self.tamperings += 1


def register_credit(services: Services, **manifest_fields: Any) -> None:
    """The credit pipeline as model ``credit@1`` (40 background rows), the model every adversary ledger uses."""
    spec = credit_spec()
    background, _ = make_credit_frame(40, seed=7)
    manifest = ManifestIn(
        name="credit",
        version="1",
        task="binary",
        class_labels=list(spec.class_labels),
        features=[FeatureIn(**f.to_dict()) for f in spec.features],
        background=background.to_dict(orient="records"),  # type: ignore[arg-type]
        **manifest_fields,
    )
    register_model(services, manifest=manifest, artifact=dump_skops(train_credit_pipeline(seed=0, n=600)))


def _populate(services: Services) -> None:
    spec = credit_spec()
    register_credit(services, metadata={"owner": "adversary"})
    rows, _ = make_credit_frame(DECISIONS, seed=3)
    items = [
        DecisionCreate(
            decision_id=f"a-{i}",
            model="credit@1",
            inputs=row,  # type: ignore[arg-type]
            subject_ref=f"s-{i}",
            occurred_at=datetime(2026, 3, 1, 12, i, tzinfo=UTC),
            context={"channel": "web"},
        )
        for i, row in enumerate(rows.to_dict(orient="records"))
    ]
    record_decisions(services, items[:3], path="decisions")
    drain(services)
    publish_now(services)
    record_decisions(services, items[3:], path="decisions")
    drain(services)
    labels = list(spec.class_labels)
    for i in (0, 2, 4):
        record_outcome(services, decision_id=f"a-{i}", body=OutcomeCreate(label=labels[i % len(labels)]))
    publish_now(services)


def _facts(services: Services) -> Facts:
    facts = Facts()
    with services.db.engine.connect() as conn:
        facts.entries = [(int(i), str(t)) for i, t in conn.execute(text("SELECT idx, entry_type FROM ledger_entries"))]
        facts.nodes = [(int(a), int(b)) for a, b in conn.execute(text("SELECT level, idx FROM ledger_nodes"))]
        facts.checkpoints = [int(s) for (s,) in conn.execute(text("SELECT tree_size FROM ledger_checkpoints"))]
        facts.keys = [str(k) for (k,) in conn.execute(text("SELECT key_id FROM signing_keys"))]
        for name, query in (
            ("decisions", "SELECT decision_id, ledger_index, model_version_id FROM decisions"),
            ("explanations", "SELECT id, decision_id, ledger_index, status FROM explanations"),
            ("jobs", "SELECT id, decision_id, state FROM jobs WHERE state IN ('succeeded', 'failed')"),
            ("outcomes", "SELECT decision_id, ledger_index, label FROM outcomes"),
            ("models", "SELECT id, name, version, ledger_index FROM model_versions"),
        ):
            setattr(facts, name, [dict(r) for r in conn.execute(text(query)).mappings()])
    return facts


def open_ledger(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_templates: PostgresTemplates,
    populate: Callable[[Services], None],
) -> Iterator[Populated]:
    """A fresh database of ``request.param``'s back-end, filled by ``populate`` and verified, then dropped."""
    tmp = tmp_path_factory.mktemp(f"adversary-{request.param}")
    if request.param == "sqlite":
        shutil.copy(sqlite_template, tmp / "rationale.db")
        url = f"sqlite:///{tmp / 'rationale.db'}"
    else:
        try:
            url = pg_templates.fresh()
        except psycopg.OperationalError as exc:
            postgres_unreachable(exc)
    settings = Settings(
        environment="test", data_dir=tmp / "data", database_url=url, workers=0, origin="rationale.test/adversary"
    )
    services = build_services(settings)
    try:
        populate(services)
        assert verify_whole_ledger(services, quiet=True) == 0
        yield Populated(request.param, services, _facts(services))
    finally:
        services.close()
        if request.param == "postgresql":
            with contextlib.suppress(psycopg.Error):
                pg_templates.drop(url)


@pytest.fixture(scope="module", params=BACKENDS)
def populated(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_template: Path,
    _pg_templates: PostgresTemplates,
) -> Iterator[Populated]:
    """A ledger of one model, six decisions with SHAP explanations, three outcomes and two checkpoints."""
    yield from open_ledger(request, tmp_path_factory, _sqlite_template, _pg_templates, _populate)
