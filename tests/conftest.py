"""Shared fixtures: every database test runs on SQLite and on the PostgreSQL server (tests/db_fixtures.py)."""

from __future__ import annotations

from tests.db_fixtures import _pg_templates, _sqlite_template, database, db_url

__all__ = ["_pg_templates", "_sqlite_template", "database", "db_url"]
