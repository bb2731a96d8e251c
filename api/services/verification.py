"""`rationale verify`: the whole ledger from its stored bytes, or an export bundle."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from api.container import Services
from api.services.rowbinding import print_row_failures, verify_rows
from audit.verify import verify_ledger


def verify_whole_ledger(services: Services, *, quiet: bool = False) -> int:
    """Exit status 0 when every entry, tree node and checkpoint verifies; 1 naming the first bad place."""
    started = time.monotonic()
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        keys = uow.ledger.keys()
        bar = tqdm(total=size, unit="entry", disable=quiet or size == 0, file=sys.stderr, desc="verifying")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = verify_ledger(uow.ledger, keys=keys, progress=progress)
        bar.close()
        row_count, row_failures = verify_rows(uow)  # every row against its entry (api/services/rowbinding.py)
    seconds = time.monotonic() - started
    print_row_failures(row_count, row_failures)
    if report.ok and row_count:
        return 1
    if report.ok:
        rate = report.entries_checked / seconds if seconds > 0 else float("inf")
        print(
            f"OK: {report.entries_checked} entries and {report.checkpoints_checked} checkpoints verify; "
            f"root {report.root_hex or '(empty ledger)'} ({rate:,.0f} entries/s)"
        )
        return 0
    failure = report.failure
    assert failure is not None
    print(f"FAILED: {failure.message}", file=sys.stderr)
    return 1


def verify_bundle_file(path: Path, *, quiet: bool = False) -> int:
    from audit.bundle.reader import verify_bundle

    report = verify_bundle(path)
    if not quiet:
        for line in report.lines():
            print(line)
    if report.ok:
        print(f"OK: bundle {path} verifies")
        return 0
    print(f"FAILED: {report.failure}", file=sys.stderr)
    return 1
