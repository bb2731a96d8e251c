"""Errors raised by the ledger. Messages are safe to show a client."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every ledger error."""


class NonCanonicalValueError(AuditError, ValueError):
    """A value cannot be encoded as RFC 8785 JSON (NaN, infinity, a non-string key, ...)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class LedgerGapError(AuditError):
    """An append would leave a gap or reuse an index: the ledger is strictly sequential."""


class EntryNotFoundError(AuditError, LookupError):
    """No ledger entry (or checkpoint) at the requested index or size."""


class ProofError(AuditError):
    """A proof cannot be produced for the requested sizes, or does not verify."""


class SignatureError(AuditError):
    """A signed note or checkpoint does not carry a valid signature by a known key."""


class VerificationError(AuditError):
    """The stored ledger does not match what its bytes say; names the first bad place."""

    def __init__(self, message: str, *, index: int | None = None, what: str = "entry") -> None:
        super().__init__(message)
        self.index = index
        self.what = what


class LogSplitError(AuditError):
    """A new checkpoint would not extend the last published one: publishing it would split the log."""


class CorruptRowError(AuditError):
    """A stored ledger row holds a value no ledger writes (text where bytes belong, a wrong length, a
    non-integer index, NULL, ...). Names the table and the position so that verification can report it."""

    def __init__(self, table: str, position: int, message: str) -> None:
        super().__init__(message)
        self.table = table
        self.position = position
