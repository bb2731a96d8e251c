"""Rows straight from the DB-API cursor, for the scans that read every ledger entry or row-backed row.

``rationale verify`` streams 10^5 to 10^7 rows; SQLAlchemy's result processing (Row objects, ORM loading)
costs as much as the query itself there, and PostgreSQL's text protocol sends bytea as hex that both
sides must encode and decode. These scans take plain tuples from the driver, on PostgreSQL in binary
format, inside the session's own transaction (same snapshot as everything else the unit of work reads).
Values come back as the driver gives them, unconverted: callers check their types, as for any row an
attacker may have written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session


def driver_rows(session: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """All rows of ``sql``, whose parameters are written ``?`` (the SQL must hold no other ``?`` or ``%``)."""
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        cursor = raw.cursor(binary=True)
        sql = sql.replace("?", "%s")
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql, tuple(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()
