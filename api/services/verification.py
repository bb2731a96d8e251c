"""`rationale verify`: the whole ledger from its stored bytes, or an export bundle.

The ledger is checked against trust anchors configured out of band (``api.services.trust``): the keys in
the database are data to check, never the root of trust.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from api.container import Services
from api.services.rowbinding import print_row_failures, verify_rows
from api.services.trust import configured_anchors
from audit.trust import VerifierKey
from audit.verify import verify_ledger


def verify_whole_ledger(
    services: Services, *, quiet: bool = False, anchors: Sequence[VerifierKey] | None = None
) -> int:
    """Exit status 0 when every entry, tree node, checkpoint and stored key verifies; 1 naming the first bad
    place (table and position). ``anchors``, when given, are the only trusted keys (``verify --key``)."""
    started = time.monotonic()
    trusted = configured_anchors(services, only=anchors)
    with services.db.unit_of_work(write=False) as uow:
        size = uow.ledger.size()
        bar = tqdm(total=size, unit="entry", disable=quiet or size == 0, file=sys.stderr, desc="verifying")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = verify_ledger(uow.ledger, anchors=trusted, progress=progress)
        bar.close()
        row_count, row_failures = verify_rows(uow)  # every row against its entry (api/services/rowbinding.py)
    seconds = time.monotonic() - started
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
    print_row_failures(row_count, row_failures)
    if not report.ok or row_count:
        return 1
    rate = report.entries_checked / seconds if seconds > 0 else float("inf")
    print(
        f"OK: {report.entries_checked} entries and {report.checkpoints_checked} checkpoints verify; "
        f"root {report.root_hex or '(empty ledger)'} ({rate:,.0f} entries/s)"
    )
    return 0
