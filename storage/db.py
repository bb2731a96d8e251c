"""Engines, the unit of work, schema checks and migrations — the one choke point for database errors.

SQLite write transactions start with BEGIN IMMEDIATE so concurrent writers queue on the busy timeout
instead of failing with a deadlock; PostgreSQL connections are pre-pinged so the service recovers by
itself once the server is back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from audit.canonical import canonical_bytes
from audit.errors import NonCanonicalValueError
from storage.errors import ConflictError, SchemaOutdatedError, StorageError, UnavailableError
from storage.records import EncodedJson
from storage.writer_queue import WriterQueue

MIGRATIONS = Path(__file__).parent / "migrations"
APPEND_ONLY_MESSAGE = "ledger is append-only"


class LedgerAppendOnlyError(StorageError):
    """The database refused to change or remove a ledger row (the append-only triggers fired)."""


@dataclass
class UnitOfWork:
    """One transaction and the repositories bound to it."""

    session: Session

    def __post_init__(self) -> None:
        from storage.access_store import AccessRepository
        from storage.ledger_store import SqlLedgerStore
        from storage.repos import (
            DecisionRepository,
            ExplanationRepository,
            JobRepository,
            ModelRepository,
            OutcomeRepository,
        )

        self.ledger = SqlLedgerStore(self.session)
        self.models = ModelRepository(self.session)
        self.decisions = DecisionRepository(self.session)
        self.jobs = JobRepository(self.session)
        self.explanations = ExplanationRepository(self.session)
        self.outcomes = OutcomeRepository(self.session)
        self.access = AccessRepository(self.session)


def translate(error: BaseException) -> StorageError:
    """Map a driver or SQLAlchemy error to our error tree; messages carry no SQL."""
    text = str(getattr(error, "orig", error))
    if APPEND_ONLY_MESSAGE in text:
        return LedgerAppendOnlyError("the ledger is append-only: rows cannot be changed or removed")
    if isinstance(error, exc.IntegrityError):
        return ConflictError("the write conflicts with a stored record")
    if isinstance(error, (exc.OperationalError, exc.InterfaceError, ConnectionError, TimeoutError)):
        if "database is locked" in text:
            return UnavailableError("the database is busy; retry shortly")
        return UnavailableError("the database is unreachable; retry shortly")
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return UnavailableError("the database connection was lost; retry shortly")
    return StorageError(f"database error: {type(error).__name__}")


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
        # SQLite lets one writer in at a time and makes the others poll with growing sleeps (up to 100 ms
        # each); writers of this process queue here instead, each starting the moment the last ends, the
        # request path ahead of background work (storage/writer_queue.py)
        self._sqlite_writer = WriterQueue()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def shared_with_other_processes(self) -> bool:
        """Whether another process opening its own connection sees what these sessions see: not an in-memory
        SQLite database, and sessions bound to the engine rather than to one open transaction (as the
        adversary harness binds them, to read its uncommitted tampering)."""
        database = self.engine.url.database
        in_memory = self.dialect == "sqlite" and database in (None, "", ":memory:")
        return not in_memory and self._sessions.kw.get("bind") is self.engine

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        if url.startswith("sqlite"):
            engine = create_engine(
                url,
                echo=echo,
                connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
                json_serializer=_row_json,
            )
            _configure_sqlite(engine)
        else:
            engine = create_engine(
                url,
                echo=echo,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                pool_recycle=1800,
                json_serializer=_row_json,
            )
        return cls(engine)

    @contextmanager
    def unit_of_work(self, *, write: bool = True, background: bool = False) -> Iterator[UnitOfWork]:
        """Commit on success, roll back on any error; database errors leave as StorageError subclasses.

        ``background``: nobody waits on this write (a worker's claim or recording); on SQLite it lets a
        waiting request-path write go first. PostgreSQL has no process-wide writer slot to order."""
        serialized = write and self.dialect == "sqlite"
        if serialized:
            self._sqlite_writer.acquire(background=background)
        try:
            session = self._sessions()
            if self.dialect == "sqlite":
                session.connection(execution_options={"rationale_write": write})
            try:
                yield UnitOfWork(session)
                session.commit()
            except exc.SQLAlchemyError as error:
                _rollback_quietly(session)
                raise translate(error) from error
            except BaseException:
                _rollback_quietly(session)
                raise
            finally:
                session.close()
        finally:
            if serialized:
                self._sqlite_writer.release()

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except exc.SQLAlchemyError as error:
            raise translate(error) from error

    def check_schema(self) -> None:
        """Refuse to run on a schema this code does not expect, naming the command that fixes it."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            where = f"at revision {current}" if current else "empty (no schema)"
            raise SchemaOutdatedError(
                f"the database schema is {where}, this code expects {head}: run `rationale db upgrade`"
            )

    def upgrade(self) -> None:
        cfg = self.alembic_config()
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except exc.SQLAlchemyError as error:
            raise translate(error) from error

    def dispose(self) -> None:
        self.engine.dispose()


def _row_json(value: Any) -> str:
    """JSON is written as RFC 8785 text, the spelling of the ledger's entries: SQLite's JSON columns and a
    decision's ``json`` columns on PostgreSQL keep that text, so `rationale verify` can let the database
    compare a row with its entry as text (storage/rowscan.py); anything RFC 8785 cannot encode is written as
    plain JSON (and then checked the slow way)."""
    if isinstance(value, EncodedJson):
        return value.text
    try:
        return canonical_bytes(value).decode("utf-8")
    except NonCanonicalValueError:
        return json.dumps(value)


def _rollback_quietly(session: Session) -> None:
    with suppress(exc.SQLAlchemyError):
        session.rollback()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # The driver is in autocommit mode; we start transactions ourselves. Writers take the lock up
        # front (IMMEDIATE) so two of them never deadlock upgrading a shared lock.
        write = conn.get_execution_options().get("rationale_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
