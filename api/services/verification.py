"""`rationale verify`: the whole ledger from its stored bytes, or an export bundle.

The ledger is checked against trust anchors configured out of band (``api.services.trust``): the keys in
the database are data to check, never the root of trust.

The ledger walk (hashes, tree, checkpoints: Python-bound) and the row check (every row against its entry:
mostly the database's work) are independent reads, so on a large ledger they run at once, the row check
in a forked process with its own connection: on 2 cores the whole check then takes about as long as the
longer of the two instead of their sum.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

from tqdm import tqdm

from api.container import Services
from api.services.rowbinding import print_row_failures, verify_rows
from api.services.trust import configured_anchors
from audit.trust import VerifierKey
from audit.verify import Failure, VerificationReport, verify_ledger
from storage.db import Database

log = logging.getLogger("rationale.verify")
PARALLEL_FROM = 20_000  # entries; below this a second process costs more than it saves


@dataclass(frozen=True)
class WholeCheck:
    """The ledger walk's report and the row check's findings (their count, the first 50)."""

    report: VerificationReport
    row_count: int
    row_failures: list[Failure]
    seconds: float


def check_everything(
    db: Database,
    *,
    anchors: Sequence[VerifierKey],
    progress: Callable[[int, int], None] | None = None,
    parallel_from: int = PARALLEL_FROM,
    exact: bool = False,
) -> WholeCheck:
    """Ledger and rows, at once in two processes when the ledger has ``parallel_from`` entries or more and the
    database can be opened from another process; one after the other otherwise. ``exact``: every row is
    compared in Python (api.services.rowbinding), none vouched for by the database."""
    started = time.perf_counter()
    with db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        rows = None
        if size >= parallel_from and db.shared_with_other_processes and os.name == "posix":
            rows = _start_row_check(db, columns_checked_below=size, exact=exact)
        report = verify_ledger(uow.ledger, anchors=anchors, progress=progress)
        found = _child_result(rows) if rows is not None else None
        if found is None or not report.ok:  # no child, or the walk did not vouch for the entries' columns
            found = verify_rows(uow, columns_checked_below=size if report.ok else 0, exact=exact)
        row_count, row_failures = found
    return WholeCheck(report, row_count, row_failures, time.perf_counter() - started)


def _child_result(
    rows: Callable[[], tuple[int, list[Failure]]],
) -> tuple[int, list[Failure]] | None:
    """The forked row check's findings, or None when the child failed (killed, out of memory, a database
    error): the caller then checks the rows itself, so a failed helper never fails or skips the check."""
    try:
        return rows()
    except Exception as exc:
        log.warning("the parallel row check failed (%s); checking the rows in this process", exc)
        return None


def _start_row_check(
    db: Database, *, columns_checked_below: int, exact: bool
) -> Callable[[], tuple[int, list[Failure]]]:
    """The row check in a forked child; returns the function that waits for its result. The child skips the
    ledger columns of the entries below ``columns_checked_below``: the walk running meanwhile checks those;
    when it fails, its caller runs the whole row check again."""
    context = multiprocessing.get_context("fork")  # spawn would re-import the service: ~1 s per run
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(
        target=_row_check_child, args=(db, sending, columns_checked_below, exact), daemon=True, name="rationale-rows"
    )
    child.start()
    sending.close()

    def result() -> tuple[int, list[Failure]]:
        try:
            outcome = receiving.recv()
        except EOFError:
            outcome = RuntimeError(f"the row check process ended without a result (exit code {child.exitcode})")
        finally:
            receiving.close()
            child.join()
        if isinstance(outcome, BaseException):
            raise outcome
        count, failures = outcome
        return count, failures

    return result


def _row_check_child(db: Database, sending: Connection, columns_checked_below: int, exact: bool) -> None:
    db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    try:
        with db.unit_of_work(write=False) as uow:
            sending.send(verify_rows(uow, columns_checked_below=columns_checked_below, exact=exact))
    except BaseException as exc:  # the parent re-raises it; an unpicklable one travels as its text
        sending.send(RuntimeError(f"row check failed: {type(exc).__name__}: {exc}"))
    finally:
        sending.close()


def verify_whole_ledger(
    services: Services, *, quiet: bool = False, anchors: Sequence[VerifierKey] | None = None, exact: bool = False
) -> int:
    """Exit status 0 when every entry, tree node, checkpoint, stored key and row verifies; 1 naming the first
    bad place (table and position). ``anchors``, when given, are the only trusted keys (``verify --key``)."""
    trusted = configured_anchors(services, only=anchors)
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
    bar = tqdm(total=size, unit="entry", disable=quiet or size == 0, file=sys.stderr, desc="verifying")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    whole = check_everything(services.db, anchors=trusted, progress=progress, exact=exact)
    bar.close()
    report = whole.report
    source = "given with --key" if anchors else "keyring and RATIONALE_TRUSTED_KEYS"
    if not quiet:
        print(f"trust anchors ({source}):")
        for key in trusted:
            print(f"  {key.text}")
        for text in report.trusted_keys[len(trusted) :]:
            print(f"  {text}  (introduced by a key rotation entry)")
    if not report.ok:  # the ledger's own failure first: rows are only an index of it
        failure = report.failure
        assert failure is not None
        where = f"{failure.table} at {failure.position}" if failure.position >= 0 else failure.table
        print(f"FAILED ({where}): {failure.message}", file=sys.stderr)
    print_row_failures(whole.row_count, whole.row_failures)
    if not report.ok or whole.row_count:
        return 1
    rate = report.entries_checked / whole.seconds if whole.seconds > 0 else float("inf")
    print(
        f"OK: {report.entries_checked} entries and {report.checkpoints_checked} checkpoints verify; "
        f"root {report.root_hex or '(empty ledger)'} ({rate:,.0f} entries/s)"
    )
    return 0
