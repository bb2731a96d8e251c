"""`rationale verify`: the whole ledger from its stored bytes, or an export bundle.

The ledger is checked against trust anchors configured out of band (``api.services.trust``): the keys in
the database are data to check, never the root of trust.

The ledger walk (hashes, tree, checkpoints: Python-bound) and the row check (every row against its entry:
mostly the database's work) are independent reads, so on a large ledger they run at once, the row check
in a forked process with its own connection. The row check is the longer of the two, so once the walk is
done the verifying process takes pieces of its decision prefilter (SharedPrefilter): on 2 cores the whole
check takes about half the work of both instead of their sum.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from sqlalchemy.orm import Session
from tqdm import tqdm

from api.container import Services
from api.services.rowbinding import print_row_failures, verify_rows
from api.services.trust import configured_anchors
from audit.trust import VerifierKey
from audit.verify import Failure, VerificationReport, verify_ledger
from storage.db import Database
from storage.rowscan import decision_candidates, decision_seq_bounds

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
    share_piece: int = 10_000,
) -> WholeCheck:
    """Ledger and rows, at once in two processes when the ledger has ``parallel_from`` entries or more and the
    database can be opened from another process; one after the other otherwise. ``exact``: every row is
    compared in Python (api.services.rowbinding), none vouched for by the database. ``share_piece``: decision
    seqs in each piece of the shared prefilter (SharedPrefilter)."""
    started = time.perf_counter()
    with db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        rows = shared = None
        if size >= parallel_from and db.shared_with_other_processes and os.name == "posix":
            shared = None if exact else SharedPrefilter(multiprocessing.get_context("fork"), piece=share_piece)
            rows = _start_row_check(db, columns_checked_below=size, exact=exact, shared=shared)
        try:
            report = verify_ledger(uow.ledger, anchors=anchors, progress=progress)
        finally:
            if shared is not None and rows is not None:
                shared.help(uow.session, rows.alive)  # the walk is done: take pieces of the decision prefilter
        found = _child_result(rows) if rows is not None else None
        if found is None or not report.ok:  # no child, or the walk did not vouch for the entries' columns
            found = verify_rows(uow, columns_checked_below=size if report.ok else 0, exact=exact)
        row_count, row_failures = found
    return WholeCheck(report, row_count, row_failures, time.perf_counter() - started)


class SharedPrefilter:
    """The decision prefilter, the row check's longest step, cut into seq ranges that two processes take
    from one counter: the row check process from when it reaches the decisions, the verifying process once
    its ledger walk is done. On 2 cores neither then idles while the other works. The row check process
    sends the model references and seq bounds it found; the verifying process answers with the candidates
    of the pieces it took (or that it could not compare, which sends every decision to Python)."""

    def __init__(self, context: BaseContext, *, piece: int) -> None:
        self.piece = piece
        self.counter = context.Value("q", 0)
        self.child_end, self.parent_end = context.Pipe()
        self.parent_pid = os.getpid()

    def _take(self, session: Session, refs: dict[int, str], lo: int, hi: int) -> tuple[bool, set[int]]:
        found: set[int] = set()
        while True:
            with self.counter.get_lock():
                piece = self.counter.value
                self.counter.value = piece + 1
            start = lo + piece * self.piece
            if start >= hi:
                return True, found
            part = decision_candidates(session, refs, seq_range=(start, start + self.piece))
            if part is None:
                return False, found
            found |= part

    def in_child(self, session: Session, refs: dict[int, str]) -> set[int] | None:
        """The row check's prefilter: its pieces, then the verifying process's."""
        lo, hi = decision_seq_bounds(session)
        self.child_end.send((refs, lo, hi))
        ok, found = self._take(session, refs, lo, hi)
        while not self.child_end.poll(0.05):
            if os.getppid() != self.parent_pid:
                return None  # the verifying process is gone: no answer will come
        helped, extra = self.child_end.recv()
        return found | extra if ok and helped else None

    def help(self, session: Session, child_alive: Callable[[], bool]) -> None:
        """In the verifying process, after its walk: take the pieces left, then answer the row check."""
        ok, found = False, set[int]()
        try:
            while not self.parent_end.poll(0.05):
                if not child_alive():
                    return  # it never reached the decisions: nobody waits for an answer
            refs, lo, hi = self.parent_end.recv()
            ok, found = self._take(session, refs, lo, hi)
        except Exception as exc:  # the row check then compares every decision in Python
            log.warning("sharing the decision prefilter failed (%s)", exc)
            ok = False
        finally:
            with suppress(OSError):
                self.parent_end.send((ok, found))


class _RowCheck:
    """The forked row check: ``alive`` while it runs; calling it waits for (count, failures) or raises."""

    def __init__(self, child: BaseProcess, receiving: Connection) -> None:
        self.child = child
        self.receiving = receiving

    def alive(self) -> bool:
        return self.child.is_alive()

    def __call__(self) -> tuple[int, list[Failure]]:
        try:
            outcome = self.receiving.recv()
        except EOFError:
            outcome = RuntimeError(f"the row check process ended without a result (exit code {self.child.exitcode})")
        finally:
            self.receiving.close()
            self.child.join()
        if isinstance(outcome, BaseException):
            raise outcome
        count, failures = outcome
        return count, failures


def _child_result(rows: Callable[[], tuple[int, list[Failure]]]) -> tuple[int, list[Failure]] | None:
    """The forked row check's findings, or None when the child failed (killed, out of memory, a database
    error): the caller then checks the rows itself, so a failed helper never fails or skips the check."""
    try:
        return rows()
    except Exception as exc:
        log.warning("the parallel row check failed (%s); checking the rows in this process", exc)
        return None


def _start_row_check(
    db: Database, *, columns_checked_below: int, exact: bool, shared: SharedPrefilter | None = None
) -> _RowCheck:
    """The row check in a forked child. The child skips the ledger columns of the entries below
    ``columns_checked_below``: the walk running meanwhile checks those; when it fails, its caller runs the
    whole row check again."""
    context = multiprocessing.get_context("fork")  # spawn would re-import the service: ~1 s per run
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(
        target=_row_check_child,
        args=(db, sending, columns_checked_below, exact, shared),
        daemon=True,
        name="rationale-rows",
    )
    child.start()
    sending.close()
    if shared is not None:
        shared.child_end.close()  # so that an answer to a dead row check fails instead of filling the pipe
    return _RowCheck(child, receiving)


def _row_check_child(
    db: Database, sending: Connection, columns_checked_below: int, exact: bool, shared: SharedPrefilter | None
) -> None:
    db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    if shared is not None:
        shared.parent_end.close()
    try:
        with db.unit_of_work(write=False) as uow:
            prefilter = shared.in_child if shared is not None else None
            sending.send(
                verify_rows(uow, columns_checked_below=columns_checked_below, exact=exact, prefilter=prefilter)
            )
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
