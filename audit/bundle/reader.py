"""`rationale verify --bundle`: the checks of the bundle's own verify.py, run from the installed copy.

One core, two front-ends: this module calls the very functions of ``assets/verify.py`` (see core.py), so
the two verifiers give the same answer — exit status and lines — on every bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from audit.bundle.core import core

VERIFIED, FAILED, USAGE, UNANCHORED = 0, 1, 2, 3


@dataclass
class BundleReport:
    """What the core printed, and its exit status (0 verified, 1 failed, 2 usage, 3 key not anchored)."""

    code: int = FAILED
    output: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == VERIFIED

    @property
    def failure(self) -> str | None:
        return None if self.ok else (self.output[-1] if self.output else "no verdict")

    @property
    def checks(self) -> list[str]:
        return [line for line in self.output if line.startswith("ok  ")]

    def lines(self) -> list[str]:
        return list(self.output)


def verify_bundle(
    path: Path, keys: Sequence[str] = (), *, witnesses: Sequence[str] = (), quorum: int | None = None
) -> BundleReport:
    """Verify ``path`` against the pinned verifier keys ``keys`` (C2SP verifier-key strings), and require
    cosignatures by ``quorum`` (default: all) of the pinned ``witnesses`` keys."""
    report = BundleReport()
    report.code = core().verify(
        str(path), list(keys), out=report.output.append, witnesses=list(witnesses), quorum=quorum
    )
    return report


def read_key_files(paths: Sequence[str]) -> list[str]:
    """Verifier keys from pinned key files (one per line, # comments), as verify.py --key-file reads them."""
    keys: list[str] = []
    for path in paths:
        keys.extend(core().read_key_file(path))
    return keys


def run(
    path: Path,
    *,
    keys: Sequence[str],
    quiet: bool = False,
    witnesses: Sequence[str] = (),
    quorum: int | None = None,
) -> int:
    """Print the core's lines (only the verdict when quiet) and return its exit status."""
    report = verify_bundle(path, keys, witnesses=witnesses, quorum=quorum)
    for line in report.output if not quiet else report.output[-1:]:
        print(line)
    return report.code
