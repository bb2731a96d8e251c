"""Streaming every row that indexes a ledger entry, with that entry's bytes, for ``rationale verify``.

Rows come out as plain dicts keyed by column name, in primary-key batches, each joined to its entry by the
entry's primary key (one index lookup per row, done by the database). On SQLite, JSON and timestamp columns
are read as text and parsed here, so a value an attacker wrote that no longer parses is reported as a
mismatch instead of stopping the scan; such a value comes out as ``UNREADABLE``. On PostgreSQL the types
check their own input, and values are read without SQL casts, which an insider could redefine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, Column, DateTime, Select, String, Table, Text, and_, exists, select, text, type_coerce
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from audit.entry import StoredEntry
from storage.driver import driver_rows
from storage.sql_guard import pin_and_check
from storage.tables import DecisionRow, ExplanationRow, JobRow, LedgerEntryRow, ModelVersionRow, OutcomeRow

BATCH = 5_000
UNREADABLE = object()  # a stored value that cannot be read as its column's type

_TABLES: dict[str, Table] = {
    "model_versions": cast(Table, ModelVersionRow.__table__),
    "decisions": cast(Table, DecisionRow.__table__),
    "explanations": cast(Table, ExplanationRow.__table__),
    "outcomes": cast(Table, OutcomeRow.__table__),
}
_KEYS = {"model_versions": "id", "decisions": "seq", "explanations": "id", "outcomes": "decision_id"}
_ENTRIES = cast(Table, LedgerEntryRow.__table__)
_JOBS = cast(Table, JobRow.__table__)


def _json(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return UNREADABLE


def _sqlite_time(text: Any) -> Any:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    except ValueError:
        return UNREADABLE


def _columns(table: Table, sqlite: bool, prefix: str = "") -> tuple[list[Any], dict[str, Any]]:
    """Selectable columns (JSON as text; SQLite timestamps as text) and a parser per column label."""
    selected: list[Any] = []
    parsers: dict[str, Any] = {}
    for column in table.columns:
        label = f"{prefix}{column.name}"
        col: Column[Any] = column
        if isinstance(column.type, JSON) and sqlite:
            selected.append(sql_cast(col, Text).label(label))
            parsers[label] = _json
        elif isinstance(column.type, JSON):
            # PostgreSQL: no CAST (an insider can define the cast from json to text); the driver decodes the
            # type's own output, and a column retyped to text arrives as a string that matches no member
            selected.append(type_coerce(col, NullType()).label(label))
        elif sqlite and isinstance(getattr(column.type, "impl", None), DateTime):
            selected.append(type_coerce(col, String).label(label))
            parsers[label] = _sqlite_time
        else:
            selected.append(col.label(label))
    return selected, parsers


def _stream(session: Session, query: Select[Any], key: Any, parsers: dict[str, Any]) -> Iterator[dict[str, Any]]:
    last: Any = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = session.execute(page.order_by(key).limit(BATCH)).mappings().all()
        for row in rows:
            item = dict(row)
            for label, parse in parsers.items():
                item[label] = parse(item[label])
            yield item
        if len(rows) < BATCH:
            return
        last = rows[-1]["__key"]


def iter_rows_with_entries(
    session: Session, table_name: str, *, keys: set[Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Every row of ``table_name`` with ``entry.canonical`` (None when no entry has its ledger_index);
    explanation rows also carry their job's columns as ``job.<column>`` (all None when there is no job)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    table = _TABLES[table_name]
    columns, parsers = _columns(table, sqlite)
    key = table.c[_KEYS[table_name]]
    query = select(*columns, key.label("__key"), _ENTRIES.c.canonical.label("entry.canonical")).select_from(
        table.outerjoin(_ENTRIES, _ENTRIES.c.idx == table.c.ledger_index)
    )
    if table_name == "explanations":
        job_columns, job_parsers = _columns(_JOBS, sqlite, prefix="job.")
        parsers.update(job_parsers)
        query = query.add_columns(*job_columns).outerjoin(_JOBS, _JOBS.c.id == table.c.job_id)
    if keys is not None:  # only these rows (the prefilter's candidates), 500 at a time
        wanted = sorted(keys)
        for start in range(0, len(wanted), 500):
            page = query.where(key.in_(wanted[start : start + 500]))
            for item in _stream(session, page, key, parsers):
                item["entry.canonical"] = _blob(item["entry.canonical"])
                yield item
        return
    for item in _stream(session, query, key, parsers):
        item["entry.canonical"] = _blob(item["entry.canonical"])
        yield item


def _blob(value: Any) -> bytes | None:
    """Entry bytes as stored; a tampered column may hold text (the ledger check names that corruption),
    which is compared by its UTF-8 bytes here rather than failing the scan."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return bytes(value)


def iter_entry_heads(session: Session) -> Iterator[tuple[int, Any, Any, bytes]]:
    """Every ledger row's (idx, entry_type, recorded_at, canonical), in index order."""
    query = select(_ENTRIES.c.idx, _ENTRIES.c.entry_type, _ENTRIES.c.recorded_at, _ENTRIES.c.canonical)
    last = -1
    while True:
        rows = session.execute(query.where(_ENTRIES.c.idx > last).order_by(_ENTRIES.c.idx).limit(BATCH * 4)).all()
        for idx, entry_type, recorded_at, canonical in rows:
            yield int(idx), entry_type, recorded_at, _blob(canonical) or b""
        if len(rows) < BATCH * 4:
            return
        last = int(rows[-1][0])


def finished_jobs_without_explanation(session: Session) -> list[tuple[str, str]]:
    """(job id, state) of jobs marked succeeded or failed that no explanation row records."""
    explanations = _TABLES["explanations"]
    recorded = exists().where(
        and_(explanations.c.decision_id == _JOBS.c.decision_id, explanations.c.job_id == _JOBS.c.id)
    )
    query = select(_JOBS.c.id, _JOBS.c.state).where(_JOBS.c.state.in_(("succeeded", "failed")), ~recorded)
    return [(str(job_id), str(state)) for job_id, state in session.execute(query.order_by(_JOBS.c.id))]


def read_entries(session: Session, indexes: Sequence[int]) -> dict[int, StoredEntry]:
    """The entries at ``indexes`` in one primary-key read per 500 (a search page's decisions and outcomes)."""
    wanted = sorted(set(indexes))
    found: dict[int, StoredEntry] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(
                _ENTRIES.c.idx,
                _ENTRIES.c.entry_type,
                _ENTRIES.c.recorded_at,
                _ENTRIES.c.canonical,
                _ENTRIES.c.leaf_hash,
            ).where(_ENTRIES.c.idx.in_(wanted[start : start + 500]))
        )
        for idx, entry_type, recorded_at, canonical, leaf in rows:
            found[int(idx)] = StoredEntry(
                int(idx), entry_type, recorded_at, _blob(canonical) or b"", _blob(leaf) or b""
            )
    return found


def leaf_hashes(session: Session, indexes: Sequence[int]) -> dict[int, bytes]:
    """Leaf hashes at ``indexes`` (no entry bytes): what a search page shows of rows the database vouched for."""
    wanted = sorted(set(indexes))
    found: dict[int, bytes] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(_ENTRIES.c.idx, _ENTRIES.c.leaf_hash).where(_ENTRIES.c.idx.in_(wanted[start : start + 500]))
        )
        found.update({int(idx): bytes(leaf) for idx, leaf in rows})
    return found


def outcome_rows(session: Session, decision_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The outcome rows of these decisions (body, label, ledger_index, recorded_at), by decision id."""
    outcomes = _TABLES["outcomes"]
    found: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(decision_ids))
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(
                outcomes.c.decision_id,
                outcomes.c.body,
                outcomes.c.label,
                outcomes.c.ledger_index,
                outcomes.c.recorded_at,
            ).where(outcomes.c.decision_id.in_(ids[start : start + 500]))
        ).mappings()
        for row in rows:
            found[str(row["decision_id"])] = {k: row[k] for k in ("body", "label", "ledger_index", "recorded_at")}
    return found


# ------------------------------------------------------------------------------------------------------------
# The database as prefilter. Comparing every row in Python costs ~20 µs a decision (fetch, parse four JSON
# columns and the entry, compare), several times the ledger check itself. So the database compares first, at
# C speed: on SQLite rows hold canonical JSON text (storage.db's json_serializer) and json_extract returns a
# member's text as it stands in the entry's canonical bytes, so equal facts are equal text; on PostgreSQL
# the entry is cast to jsonb and compared with jsonb columns (numbers by value, true is not 1). The query
# only *selects candidates*: every row it does not vouch for (rows written before canonical text, any
# value an attacker wrote, bytes the JSON functions refuse) goes through the precise comparison in
# audit.rowcheck, which alone decides and names the fields. tests/adversary holds the two to one answer:
# every generated tampering must be located by `verify`, which runs this prefilter.


class _Sql:
    """SQL fragments reading an entry's members, per dialect; ``e`` is the joined ledger row."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.text = "CAST(e.canonical AS TEXT)"

    def source(self, table: str, alias: str, where: str = "") -> tuple[str, str]:
        """(FROM clause, prefix of the outer WHERE) for ``table`` as ``alias`` joined to its entry, restricted
        to the rows ``where`` selects. PostgreSQL parses the entry once per row, into ``entry_json``, inside a
        subquery the planner may not flatten (OFFSET 0): inlined, the cast is parsed again at each of the ~15
        references (measured: 1.5 s against 0.3 s for 100,000 decisions)."""
        joined = f"{table} {alias} LEFT JOIN ledger_entries e ON e.idx = {alias}.ledger_index"
        if self.sqlite:
            return joined, f"{where} AND " if where else ""
        restricted = f"{joined} WHERE {where}" if where else joined
        parsed = "convert_from(e.canonical, 'UTF8')::jsonb AS entry_json"
        return f"(SELECT {alias}.*, {parsed} FROM {restricted} OFFSET 0) {alias}", ""

    def value(self, path: str) -> str:
        """The member at ``path`` ("payload.inputs") as JSON (SQLite: its text; PostgreSQL: jsonb)."""
        if self.sqlite:
            return f"json_extract({self.text}, '$.{path}')"
        return f"(entry_json #> '{{{path.replace('.', ',')}}}')"

    def scalar(self, path: str) -> str:
        """The member at ``path`` as SQL text (NULL for JSON null)."""
        if self.sqlite:
            return self.value(path)
        return f"(entry_json #>> '{{{path.replace('.', ',')}}}')"

    def is_null(self, path: str) -> str:
        if self.sqlite:
            return f"json_type({self.text}, '$.{path}') = 'null'"
        return f"jsonb_typeof({self.value(path)}) = 'null'"

    def same(self, column: str, expression: str) -> str:
        return f"{column} IS {expression}" if self.sqlite else f"{column} IS NOT DISTINCT FROM {expression}"

    def json_column(self, column: str, path: str) -> str:
        """A JSON column against the member at ``path`` (JSON null matches SQL NULL or JSON null)."""
        if self.sqlite:
            return (
                f"(CASE WHEN {self.is_null(path)} THEN ({column} IS NULL OR {column} = 'null') "
                f"ELSE {column} = {self.value(path)} END)"
            )
        return (
            f"(CASE WHEN {self.is_null(path)} THEN ({column} IS NULL OR {column} = 'null'::jsonb) "
            f"ELSE {column} = {self.value(path)} END)"
        )

    def stamp(self, column: str, path: str) -> str:
        if self.sqlite:
            return f"(replace({column}, ' ', 'T') || 'Z') = {self.scalar(path)}"
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') = {self.scalar(path)}"

    def index(self, column: str) -> str:
        if self.sqlite:
            return f"json_extract({self.text}, '$.index') = {column}"
        return f"(entry_json -> 'index') = to_jsonb({column})"

    def vouched(self, conditions: list[str]) -> str:
        body = " AND ".join(conditions)
        if self.sqlite:
            return f"COALESCE(CASE WHEN json_valid({self.text}) THEN ({body}) END, 0)"
        return f"COALESCE(({body}), false)"


def decision_candidates(
    session: Session,
    model_refs: dict[int, str],
    *,
    seqs: Sequence[int] | None = None,
    seq_range: tuple[int, int] | None = None,
) -> set[int] | None:
    """Seqs of decision rows (all, those in ``seqs``: a search page, or those with lo <= seq < hi) the
    database cannot vouch for, or None when it could not compare."""
    dialect = session.get_bind().dialect.name
    where = f"d.seq IN ({', '.join(str(int(seq)) for seq in seqs) or 'NULL'})" if seqs is not None else ""
    if seq_range is not None:
        where = f"d.seq >= {int(seq_range[0])} AND d.seq < {int(seq_range[1])}"
    params = {f"ref{n}": ref for n, ref in enumerate(model_refs.values())}
    if dialect == "postgresql":
        return _candidates(session, _decisions_as_text(model_refs, where), params)
    q = _Sql(dialect)
    refs = " OR ".join(
        f"(d.model_version_id = {int(i)} AND {q.scalar('payload.model')} = :ref{n})" for n, i in enumerate(model_refs)
    )
    conditions = [
        q.index("d.ledger_index"),
        f"{q.scalar('type')} = 'decision.recorded'",
        f"d.decision_id = {q.scalar('payload.decision_id')}",
        f"d.model_ref = {q.scalar('payload.model')}",
        f"d.inputs = {q.value('payload.inputs')}",
        f"d.output = {q.value('payload.output')}",
        q.json_column("d.client_output", "payload.client_output"),
        f"d.output_mismatch = (NOT ({q.is_null('payload.output_mismatch')}))",
        q.same("d.subject_ref", q.scalar("payload.subject_ref")),
        q.stamp("d.occurred_at", "payload.occurred_at"),
        q.stamp("d.recorded_at", "recorded_at"),
        f"d.context = {q.value('payload.context')}",
        f"d.body_sha256 = {q.scalar('payload.body_sha256')}",
        f"({refs or '1 = 0'})",
    ]
    source, prefix = q.source("decisions", "d", where)
    query = f"SELECT d.seq FROM {source} WHERE {prefix}NOT {q.vouched(conditions)}"
    return _candidates(session, query, params)


_STAMP = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
# A version-1 decision.recorded entry in RFC 8785 spelling, cut where the row holds no copy of the member:
#   {"index":I,"payload":{"body_sha256":S,"client_output":J,"context":J,"decision_id":S,
#   "explanations_requested":<list>   ,"inputs":J,"model":S,"model_artifact_sha256":<"64 hex">
#   ,"occurred_at":"T","output":J,"output_mismatch":<null|object>   ,"subject_ref":S},"recorded_at":"T",
#   "type":"decision.recorded"}
_HEAD = (
    """'{"index":' || d.ledger_index || ',"payload":{"body_sha256":' || to_json(d.body_sha256)::text"""
    """ || ',"client_output":' || COALESCE(d.client_output::text, 'null') || ',"context":' || d.context::text"""
    """ || ',"decision_id":' || to_json(d.decision_id)::text || ',"explanations_requested":'"""
)
_INPUTS = (
    """',"inputs":' || d.inputs::text || ',"model":' || to_json(d.model_ref)::text"""
    """ || ',"model_artifact_sha256":'"""
)
_OUTPUT = (
    """',"occurred_at":"' || """ + _STAMP.format("d.occurred_at") + """ || '","output":' || d.output::text"""
    """ || ',"output_mismatch":'"""
)
_TAIL = (
    """',"subject_ref":' || COALESCE(to_json(d.subject_ref)::text, 'null') || '},"recorded_at":"' || """
    + _STAMP.format("d.recorded_at")
    + """ || '","type":"decision.recorded"}'"""
)
_INPUTS_KEY = "'\\x2c22696e70757473223a'::bytea"  # ,"inputs":
_SHA_WIDTH = 66  # "<64 hex digits>"


def _decisions_as_text(model_refs: dict[int, str], where: str) -> str:
    """PostgreSQL: each decision row spelled as its entry's bytes and compared with them, piece by piece.

    Parsing every entry as jsonb costs ~5 µs (most of a verify); a decision's JSON columns hold RFC 8785 text
    (``json`` columns, storage.db's serializer), so the row can be spelled as the entry instead and compared
    as bytes, ~2.5 µs. The row has no copy of three members (the explanations requested, the artifact's
    hash, the mismatch details), so the pieces between them are compared where they must stand:

    - the head is the entry's prefix and the tail its suffix, at fixed lengths from the row;
    - the inputs piece starts at the first ``,"inputs":`` after the head: only a key can be spelled so (a
      quote inside a JSON string is escaped), and the list before it holds strings only (the payload class
      refuses anything else), so that is the payload's own member;
    - the output piece follows the 66-byte hash string; what is left before the tail is the mismatch
      details, ``null`` exactly when the row says the outputs agreed.

    Each compared column is a whole JSON value (PostgreSQL checks ``json`` input), and a JSON value's extent
    is fixed by its first byte, so equal bytes mean equal members. Anything else (another payload version,
    a non-canonical spelling, a missing entry) is not vouched for: audit.rowcheck compares it in Python.
    """
    refs = ", ".join(f"({int(i)}, :ref{n})" for n, i in enumerate(model_refs)) or "(NULL, NULL)"
    pieces = (
        f"SELECT d.seq, d.output_mismatch AS mismatch, e.canonical AS t, convert_to({_HEAD}, 'UTF8') AS head, "
        f"convert_to({_INPUTS}, 'UTF8') AS inputs, convert_to({_OUTPUT}, 'UTF8') AS output, "
        f"convert_to({_TAIL}, 'UTF8') AS tail, (d.model_version_id, d.model_ref) IN ({refs}) AS known "
        "FROM decisions d LEFT JOIN ledger_entries e ON e.idx = d.ledger_index "
        f"{'WHERE ' + where if where else ''} OFFSET 0"
    )
    sizes = (
        "SELECT length(s.head) AS h, length(s.inputs) AS i, length(s.output) AS o, length(s.tail) AS z, "
        f"length(s.t) AS n, position({_INPUTS_KEY} IN substr(s.t, length(s.head) + 1)) AS p"
    )
    at_hash = "n.h + n.p + n.i"  # where the artifact's hash string starts (1-based, as substr counts)
    at_output = f"{at_hash} + {_SHA_WIDTH}"
    # substr, never get_byte: a row spelled longer than its entry must compare unequal, not stop the query
    vouched = (
        "s.known AND substr(s.t, 1, n.h) = s.head AND substr(s.t, GREATEST(n.n - n.z + 1, 1)) = s.tail "
        "AND n.n >= n.h + n.z AND n.p > 0 AND substr(s.t, n.h + n.p, n.i) = s.inputs "
        f"AND substr(s.t, {at_hash}, 1) = '\\x22'::bytea AND substr(s.t, {at_output} - 1, 1) = '\\x22'::bytea "
        f"AND substr(s.t, {at_output}, n.o) = s.output "
        f"AND (substr(s.t, {at_output} + n.o, GREATEST(n.n - n.z + 1 - ({at_output} + n.o), 0)) = 'null'::bytea) "
        "= NOT s.mismatch"
    )
    return f"SELECT s.seq FROM ({pieces}) s CROSS JOIN LATERAL ({sizes}) n WHERE NOT COALESCE({vouched}, false)"


def explanation_candidates(session: Session) -> set[str] | None:
    """Ids of explanation rows (with their jobs) the database cannot vouch for, or None."""
    q = _Sql(session.get_bind().dialect.name)
    error = f"substr(COALESCE({q.scalar('payload.error')}, ''), 1, 4000)"
    job = (
        "(x.job_id IS NULL OR (j.id IS NOT NULL AND j.state = x.status AND j.decision_id = x.decision_id "
        f"AND j.method = x.method AND j.params_hash = x.params_hash "
        f"AND j.params = {q.value('payload.requested_params')} "
        f"AND {q.same('j.target', q.scalar('payload.requested_target'))} "
        "AND (CASE WHEN x.status = 'succeeded' THEN j.explanation_id = x.id "
        f"ELSE {q.same('j.error', error)} END)))"
    )
    conditions = [
        q.index("x.ledger_index"),
        f"{q.scalar('type')} = (CASE x.status WHEN 'succeeded' THEN 'explanation.recorded' "
        "WHEN 'failed' THEN 'explanation.failed' END)",
        f"x.id = {q.scalar('payload.explanation_id')}",
        f"x.decision_id = {q.scalar('payload.decision_id')}",
        f"x.method = {q.scalar('payload.method')}",
        f"x.params_hash = {q.scalar('payload.params_hash')}",
        q.same("x.job_id", q.scalar("payload.job_id")),
        f"x.body = {q.value('payload')}",
        q.stamp("x.created_at", "recorded_at"),
        job,
    ]
    source, prefix = q.source("explanations", "x")
    query = f"SELECT x.id FROM {source} LEFT JOIN jobs j ON j.id = x.job_id WHERE {prefix}NOT {q.vouched(conditions)}"
    return _candidates(session, query, {})


def _candidates(session: Session, query: str, params: dict[str, Any]) -> set[Any] | None:
    if pin_and_check(session) is not None:
        return None  # the server's comparison may not mean what it says: compare every row in Python
    try:
        with session.begin_nested():
            return {key for (key,) in session.execute(text(query), params)}
    except SQLAlchemyError:
        return None  # bytes the JSON functions refuse: compare every row in Python instead


def page_candidates(session: Session, model_refs: dict[int, str], seqs: Sequence[int]) -> set[int] | None:
    """The decision rows of one search page the database cannot vouch for; None (compare them all in
    Python) on PostgreSQL, where checking that the server's SQL can be trusted (storage.sql_guard, ~5 ms of
    catalog reads) costs more than reading and comparing a page of entries."""
    if session.get_bind().dialect.name == "postgresql":
        return None
    return decision_candidates(session, model_refs, seqs=seqs)


def decision_seq_bounds(session: Session) -> tuple[int, int]:
    """(lowest seq, highest seq + 1) of the decisions table; (0, 0) when it is empty."""
    lo, hi = session.execute(text("SELECT min(seq), max(seq) FROM decisions")).one()
    return (0, 0) if lo is None else (int(lo), int(hi) + 1)


def iter_claimed_indexes(session: Session, table_name: str) -> Iterator[Any]:
    """The ledger_index of every row of ``table_name``, as stored."""
    for (index,) in driver_rows(session, f"SELECT ledger_index FROM {_TABLES[table_name].name}"):
        yield index


def iter_claims(session: Session, table_name: str, key_column: str) -> Iterator[tuple[Any, Any]]:
    """(``key_column``, ledger_index) of every row of ``table_name``."""
    table = _TABLES[table_name]
    yield from driver_rows(session, f"SELECT {table.c[key_column].name}, ledger_index FROM {table.name}")


def entry_column_candidates(session: Session, *, start: int = 0) -> set[int] | None:
    """Indexes (from ``start``) of ledger rows whose entry_type/recorded_at columns the database cannot vouch
    for, comparing them with the tail of the entry's bytes (RFC 8785 puts those members last); None when
    unavailable."""
    suffix = '\',"recorded_at":"\' || recorded_at || \'","type":"\' || entry_type || \'"}\''
    if session.get_bind().dialect.name == "sqlite":
        tail = f"substr(CAST(canonical AS TEXT), -length({suffix}))"
    else:
        tail = f"right(convert_from(canonical, 'UTF8'), length({suffix}))"
    query = f"SELECT idx FROM ledger_entries WHERE idx >= :start AND NOT COALESCE({tail} = {suffix}, false)"
    return _candidates(session, query, {"start": start})


def iter_indexes_of_type(session: Session, entry_type: str) -> Iterator[int]:
    """Indexes of the entries whose type column is ``entry_type``."""
    for (idx,) in driver_rows(session, "SELECT idx FROM ledger_entries WHERE entry_type = ?", [entry_type]):
        yield int(idx)


def read_head(session: Session, index: int) -> tuple[int, Any, Any, bytes] | None:
    """One ledger row's (idx, entry_type, recorded_at, canonical)."""
    row = session.execute(
        select(_ENTRIES.c.idx, _ENTRIES.c.entry_type, _ENTRIES.c.recorded_at, _ENTRIES.c.canonical).where(
            _ENTRIES.c.idx == index
        )
    ).first()
    if row is None:
        return None
    return int(row[0]), row[1], row[2], bytes(row[3]) if row[3] is not None else b""
