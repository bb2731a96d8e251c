"""Whether PostgreSQL may vouch for rows in `rationale verify`: the SQL it runs must mean what it says.

The row prefilters (storage.rowscan) let the server compare rows with their entries. The insider of the
threat model runs any SQL, so they could change what that SQL computes without touching a row's bytes: an
operator or function in a schema on the search path that outranks the built-in one, a cast standing in for
a column's spelling, a column retyped so its bytes shift into the next. Before the server vouches for
anything, this module

- pins the transaction's search path to ``pg_catalog`` first, so a same-named object elsewhere never wins
  over a built-in with the same arguments;
- refuses when a schema on that path holds a function or operator named like one the prefilters call
  (different argument types would compete with the built-in), when a cast touching the types they use was
  created by a user, or when a column they read is not of its built-in type (a domain, a type of the same
  name, a text column where ``json`` keeps its JSON checked).

Refusing only costs time: every row is then compared in Python, from stored bytes. A superuser who edits
the system catalog itself (``UPDATE pg_operator``) is beyond what SQL can check about itself; against
that, ``rationale verify --exact`` uses the server for stored bytes only (docs/threat-model.md).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from storage.tables import DecisionRow, ExplanationRow, JobRow, LedgerEntryRow, ModelVersionRow, OutcomeRow

log = logging.getLogger("rationale.verify")

# Every function and operator name the prefilters' SQL calls without a schema (``position(a IN b)`` and
# ``AT TIME ZONE`` are the functions position and timezone; IN and IS DISTINCT FROM use ``=``).
FUNCTIONS = (
    "convert_from",
    "convert_to",
    "jsonb_typeof",
    "left",
    "length",
    "octet_length",
    "position",
    "right",
    "strpos",
    "substr",
    "substring",
    "textcat",
    "anytextcat",
    "textanycat",
    "timezone",
    "to_char",
    "to_json",
    "to_jsonb",
)
OPERATORS = ("=", "<>", "||", "->", "->>", "#>", "#>>", "+", "-", "<", "<=", ">", ">=")
# Types whose casts the prefilters rely on (explicit ``::`` casts and the conversions between them).
TYPES = ("bytea", "text", "json", "jsonb", "varchar", "int4", "int8", "bool", "timestamptz", "name", "numeric")
_TABLES = (DecisionRow, ExplanationRow, JobRow, LedgerEntryRow, ModelVersionRow, OutcomeRow)
_TYPE_NAMES = {
    "BYTEA": "bytea",
    "TEXT": "text",
    "JSON": "json",
    "JSONB": "jsonb",
    "VARCHAR": "varchar",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


def _expected_columns() -> list[str]:
    """``table.column:typname`` of every column the prefilters read, from the table definitions."""
    dialect = postgresql.dialect()
    expected = []
    for row_class in _TABLES:
        table = cast(Table, row_class.__table__)
        for column in table.columns:
            compiled = column.type.compile(dialect=dialect).split("(")[0]
            expected.append(f"{table.name}.{column.name}:{_TYPE_NAMES[compiled]}")
    return expected


EXPECTED_COLUMNS = _expected_columns()

_FINDINGS = """
WITH path AS (
    SELECT n.oid FROM pg_catalog.pg_namespace n
    WHERE n.nspname = ANY(:schemas) AND n.nspname <> 'pg_catalog'
)
SELECT 'function ' || p.oid::pg_catalog.regprocedure::pg_catalog.text
FROM pg_catalog.pg_proc p WHERE p.pronamespace IN (SELECT oid FROM path) AND p.proname = ANY(:functions)
UNION ALL
SELECT 'operator ' || o.oid::pg_catalog.regoperator::pg_catalog.text
FROM pg_catalog.pg_operator o WHERE o.oprnamespace IN (SELECT oid FROM path) AND o.oprname = ANY(:operators)
UNION ALL
SELECT 'cast (' || pg_catalog.format_type(c.castsource, NULL) || ' AS '
    || pg_catalog.format_type(c.casttarget, NULL) || ')'
FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_type s ON s.oid = c.castsource
    JOIN pg_catalog.pg_type t ON t.oid = c.casttarget
WHERE c.oid >= 16384 AND (s.typname = ANY(:types) OR t.typname = ANY(:types))
UNION ALL
SELECT 'column ' || r.relname || '.' || a.attname || ' of type '
    || pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid
    JOIN pg_catalog.pg_type y ON y.oid = a.atttypid
WHERE r.relnamespace IN (SELECT oid FROM path) AND a.attnum > 0 AND NOT a.attisdropped
    AND (r.relname || '.' || a.attname) = ANY(:columns)
    AND NOT (y.typnamespace = 'pg_catalog'::pg_catalog.regnamespace
             AND (r.relname || '.' || a.attname || ':' || y.typname) = ANY(:expected))
"""


def pin_and_check(session: Session) -> str | None:
    """Pin the search path (pg_catalog first) for the rest of the transaction; None when the prefilters may
    run, else what stands in the way (logged once per transaction). SQLite runs no SQL a user defined."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    schemas = session.execute(text("SELECT pg_catalog.current_schemas(false)")).scalar_one()
    path = ", ".join(["pg_catalog", *('"' + s.replace('"', '""') + '"' for s in schemas if s != "pg_catalog")])
    pin = "SELECT pg_catalog.set_config('search_path', :path, true)"
    session.execute(text(pin), {"path": "pg_catalog"})  # the check itself sees built-ins only
    params: dict[str, Any] = {
        "schemas": list(schemas),
        "functions": list(FUNCTIONS),
        "operators": list(OPERATORS),
        "types": list(TYPES),
        "columns": [c.split(":")[0] for c in EXPECTED_COLUMNS],
        "expected": EXPECTED_COLUMNS,
    }
    found = [str(f) for (f,) in session.execute(text(_FINDINGS), params)]
    session.execute(text(pin), {"path": path})
    if not found:
        return None
    reason = "the database's comparison is not trusted (" + "; ".join(found[:5]) + "): rows are compared in Python"
    log.warning("verify: %s", reason)
    return reason
