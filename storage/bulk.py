"""Inserting many rows at once: executemany on SQLite, COPY on PostgreSQL.

Every decision and explanation inserts several rows (ledger entry, tree nodes, the decision or
explanation, the job). Through executemany each row is its own statement execution; on PostgreSQL that
is ~17 µs of driver work per row plus SQLAlchemy's per-row parameter handling, in the process that also
serves HTTP. COPY sends the rows as one stream (~8 µs a row). Values go through each column's own
SQLAlchemy bind processing (JSON, UTC timestamps), so what is stored is what an INSERT would store;
database errors leave as SQLAlchemy errors, so the unit of work translates them as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table, exc, insert
from sqlalchemy.orm import Session


def insert_rows(session: Session, row_class: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``row_class``'s table in the session's transaction."""
    if not rows:
        return
    table = cast(Table, row_class.__table__)
    session.flush()  # anything the ORM holds goes first, as it would before an INSERT
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    defaults = {  # Python-side scalar defaults an INSERT would fill in; COPY knows only the server's
        c.name: cast(Any, c.default).arg
        for c in table.columns
        if c.name not in names and c.default is not None and c.default.is_scalar
    }
    names += list(defaults)
    processors: list[Callable[[Any], Any] | None] = [
        table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names
    ]
    columns = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    statement = f"COPY {dialect.identifier_preparer.format_table(table)} ({columns}) FROM STDIN"
    driver = cast(Any, connection.connection.driver_connection)
    import psycopg

    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                values = [row[n] if n in row else defaults[n] for n in names]
                copy.write_row([v if p is None else p(v) for p, v in zip(processors, values, strict=True)])
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(statement, None, error, psycopg.Error) from error
