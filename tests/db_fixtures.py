"""Database back-ends for tests: a fresh, migrated SQLite file or PostgreSQL database per test.

PostgreSQL databases are cloned from a migrated template (fast), named rationale_test_*, and dropped
afterwards. Under CI an unreachable PostgreSQL fails the tests; it is never skipped silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage.db import Database

ADMIN_URL = os.environ.get("RATIONALE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def _sqlalchemy_url(dbname: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


def postgres_unreachable(exc: Exception) -> None:
    message = f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class PostgresTemplates:
    def __init__(self) -> None:
        self.template = f"rationale_tmpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []
        self.ready = False

    def ensure_template(self) -> None:
        if self.ready:
            return
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.template}"')
        db = Database.from_url(_sqlalchemy_url(self.template))
        db.upgrade()
        db.dispose()
        self.ready = True

    def fresh(self) -> str:
        self.ensure_template()
        name = f"rationale_test_{uuid.uuid4().hex[:12]}"
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return _sqlalchemy_url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if not self.ready:
            return
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_templates() -> Iterator[PostgresTemplates]:
    templates = PostgresTemplates()
    yield templates
    with contextlib.suppress(psycopg.Error):
        templates.close()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database.from_url(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path, _pg_templates: PostgresTemplates
) -> Iterator[str]:
    """A fresh migrated database URL, once per back-end."""
    if request.param == "sqlite":
        target = tmp_path / "rationale.db"
        shutil.copy(_sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    try:
        url = _pg_templates.fresh()
    except psycopg.OperationalError as exc:
        postgres_unreachable(exc)
    yield url
    with contextlib.suppress(psycopg.Error):
        _pg_templates.drop(url)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database.from_url(db_url)
    yield db
    db.dispose()
