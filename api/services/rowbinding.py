"""Every row against its ledger entry, for ``rationale verify`` (the read path checks the rows it serves in
``api.services.reading``). The comparison is ``audit.rowcheck``; the streaming is ``storage.rowscan``.

Finds: rows that differ from their entry (naming table, row key, entry index and fields), rows that point
at no entry or at another type's entry, two rows claiming one entry, entries of a row-backed type with no
row (a deleted row), ledger rows whose ``entry_type``/``recorded_at`` columns contradict their bytes, and
finished jobs that disagree with, or lack, the explanation entry recording their result.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from audit.rowcheck import (
    ENTRY_TABLES,
    RowMismatch,
    check_decision,
    check_explanation,
    check_job,
    check_model,
    check_outcome,
    describe,
    entry_columns_match,
    parse_entry,
)
from audit.verify import Failure
from storage.db import UnitOfWork
from storage.rowscan import (
    decision_candidates,
    entry_column_candidates,
    explanation_candidates,
    finished_jobs_without_explanation,
    iter_claimed_indexes,
    iter_claims,
    iter_entry_heads,
    iter_indexes_of_type,
    iter_rows_with_entries,
    read_head,
)

_ROW_KEYS = {"model_versions": "id", "decisions": "decision_id", "explanations": "id", "outcomes": "decision_id"}


def _key(table: str, row: dict[str, object]) -> str:
    name = _ROW_KEYS[table]
    return f"{name}={row.get(name)!r}"


DecisionPrefilter = Callable[[Session, dict[int, str]], "set[int] | None"]


def check_all_rows(
    uow: UnitOfWork,
    *,
    columns_checked_below: int = 0,
    exact: bool = False,
    prefilter: DecisionPrefilter | None = None,
) -> Iterator[RowMismatch]:
    """Stream every row-backed table and the ledger once each; yields each mismatch as it is found.

    ``columns_checked_below``: entries below this index had their entry_type and recorded_at columns checked
    against their bytes already (a ledger walk that passed does that for every entry), so are not read again.
    ``exact``: the database vouches for nothing (no prefilter); every row and entry head is compared here.
    ``prefilter``: how the decision rows the database vouches for are found (default
    storage.rowscan.decision_candidates; `verify` shares that work between two processes).
    """
    size = uow.ledger.size()
    claimed = bytearray(size)
    model_refs: dict[object, str] = {}
    session = uow.session

    def claims(table: str) -> Iterator[RowMismatch]:
        """Every row's ledger_index: two rows claiming one entry; the claimed set, for deleted rows."""
        label = _ROW_KEYS[table]
        for primary, index in iter_claims(session, table, label):
            if type(index) is not int or not 0 <= index < size:
                continue  # the row's own check names where it points
            if claimed[index]:
                key = f"{label}={primary!r}"
                message = f"{table} row {key} claims ledger entry {index}, which another row already records"
                yield RowMismatch(table, key, index, ("ledger_index",), message)
            claimed[index] = 1

    def rows(
        table: str,
        check: Callable[[dict[str, object], object], tuple[str, ...]],
        candidates: set[object] | None = None,
    ) -> Iterator[RowMismatch]:
        for row in iter_rows_with_entries(session, table, keys=candidates):
            key, index = _key(table, row), row.get("ledger_index")
            if type(index) is not int:
                yield RowMismatch(table, key, None, ("ledger_index",), describe(table, key, None, (), None))
                continue
            if not 0 <= index < size:
                message = f"{table} row {key} points at ledger entry {index}, which the ledger does not have"
                yield RowMismatch(table, key, index, ("ledger_index",), message)
                continue
            entry = parse_entry(index, row["entry.canonical"])  # type: ignore[arg-type]
            fields = check(row, entry)
            if fields:
                yield RowMismatch(table, key, index, fields, describe(table, key, index, fields, entry))
            if table == "explanations" and entry is not None and not fields:
                job_id = entry.payload.get("job_id")
                if job_id is not None:
                    job = {k[4:]: v for k, v in row.items() if k.startswith("job.")}
                    bad = check_job(job if job.get("id") is not None else None, entry)
                    if bad:
                        job_key = f"id={job_id!r}"
                        message = (
                            f"jobs row {job_key} is missing; ledger entry {index} records its result"
                            if bad == ("id",)
                            else f"jobs row {job_key} differs from ledger entry {index} in: {', '.join(bad)}"
                        )
                        yield RowMismatch("jobs", job_key, index, bad, message)

    def model_check(row: dict[str, object], entry: object) -> tuple[str, ...]:
        fields = check_model(row, entry)  # type: ignore[arg-type]
        payload = getattr(entry, "payload", None)
        if "ledger_index" not in fields and isinstance(payload, dict):  # the entry says which model this is
            model_refs[row.get("id")] = str(payload.get("model"))
        return fields

    if not _claims_unique(session, claimed):  # a doubled claim: read the keys, to name the rows
        claimed[:] = bytes(size)
        for table in ("model_versions", "decisions", "explanations", "outcomes"):
            yield from claims(table)
    yield from rows("model_versions", model_check)
    explained = None if exact else explanation_candidates(session)
    yield from rows("explanations", check_explanation, explained)  # type: ignore[arg-type]
    yield from rows("outcomes", check_outcome)  # type: ignore[arg-type]

    for job_id, state in finished_jobs_without_explanation(session):
        message = f"jobs row id={job_id!r} is marked {state} but no explanation entry records its result"
        yield RowMismatch("jobs", f"id={job_id!r}", None, ("state",), message)

    suspects = None if exact else entry_column_candidates(session, start=columns_checked_below)
    # the database compares each ledger row's columns with its bytes; if it cannot, every entry in Python
    heads = iter_entry_heads(session) if suspects is None else _heads_of(session, suspects)
    corrected: dict[int, str] = {}
    for index, entry_type, recorded_at, canonical in heads:
        if entry_columns_match(canonical, entry_type, recorded_at):
            continue
        parsed = parse_entry(index, canonical)
        if parsed is None:
            fields: tuple[str, ...] = ("canonical",)
        else:
            actual = {"entry_type": (entry_type, parsed.type), "recorded_at": (recorded_at, parsed.recorded_at)}
            fields = tuple(name for name, (column, real) in actual.items() if column != real)
            corrected[index] = parsed.type
        message = f"ledger_entries row idx={index} differs from its own bytes in: {', '.join(fields)}"
        yield RowMismatch("ledger_entries", f"idx={index}", index, fields, message)
        if parsed is None:
            corrected[index] = ""
    typed = [
        (i, t)
        for t in ENTRY_TABLES
        for i in iter_indexes_of_type(session, t)
        if i < size and not claimed[i] and i not in corrected
    ]  # only the unclaimed: reading every typed entry as (index, type) was a tenth of the row check
    typed += [(i, t) for i, t in corrected.items() if t in ENTRY_TABLES]
    for index, entry_type in sorted(typed):
        owner = ENTRY_TABLES[entry_type]
        if index < size and not claimed[index]:
            message = f"ledger entry {index} ({entry_type}) has no row in {owner} (the row was removed)"
            yield RowMismatch(owner, f"ledger_index={index}", index, ("missing",), message)

    # the decisions last: the shared prefilter may wait for the verifying process's pieces (after its walk),
    # so everything else is done first
    refs = {k: v for k, v in model_refs.items() if type(k) is int}
    yield from rows(
        "decisions",
        lambda row, entry: check_decision(row, entry, model_ref=model_refs.get(row.get("model_version_id"))),  # type: ignore[arg-type]
        None if exact else (prefilter or decision_candidates)(session, refs),  # type: ignore[arg-type]
    )


def _claims_unique(session: Session, claimed: bytearray) -> bool:
    """Mark every in-range ledger_index of the four row tables in ``claimed``; False at the first entry two
    rows claim (indexes only: the common case never decodes a row key)."""
    size = len(claimed)
    for table in ("model_versions", "decisions", "explanations", "outcomes"):
        for index in iter_claimed_indexes(session, table):
            if type(index) is not int or not 0 <= index < size:
                continue
            if claimed[index]:
                return False
            claimed[index] = 1
    return True


def _heads_of(session: Session, indexes: set[int]) -> Iterator[tuple[int, Any, Any, bytes]]:
    for index in sorted(indexes):
        head = read_head(session, index)
        if head is not None:
            yield head


def row_failure(mismatch: RowMismatch) -> Failure:
    """A row finding in the verifier's terms (the table is named in the message)."""
    position = mismatch.index if mismatch.index is not None else -1
    return Failure(what="row", position=position, message=mismatch.message)


def verify_rows(
    uow: UnitOfWork,
    *,
    limit: int = 50,
    columns_checked_below: int = 0,
    exact: bool = False,
    prefilter: DecisionPrefilter | None = None,
) -> tuple[int, list[Failure]]:
    """(number of row findings, the first ``limit`` of them as Failures), printing nothing."""
    shown: list[Failure] = []
    count = 0
    found = check_all_rows(uow, columns_checked_below=columns_checked_below, exact=exact, prefilter=prefilter)
    for mismatch in found:
        count += 1
        if len(shown) < limit:
            shown.append(row_failure(mismatch))
    return count, shown


def print_row_failures(count: int, failures: list[Failure]) -> None:
    for failure in failures:
        print(f"FAILED: {failure.message}", file=sys.stderr)
    if count > len(failures):
        print(f"FAILED: ... and {count - len(failures)} more rows that differ from the ledger", file=sys.stderr)
