"""Alembic environment. The connection is handed in by storage.db (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

from storage.tables import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through storage.db.Database.upgrade()")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
