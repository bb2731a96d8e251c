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


class QuorumError(AuditError):
    """Fewer configured witnesses cosigned a checkpoint than the verifier requires."""


class WitnessError(AuditError):
    """An add-checkpoint request a witness refuses (C2SP tlog-witness); subclasses name the reason."""


class MalformedRequestError(WitnessError):
    """The request body is not an old-size line, proof lines, a blank line and a checkpoint (HTTP 400)."""


class UnknownLogError(WitnessError):
    """The checkpoint's origin is not a log this witness was configured with (HTTP 404)."""


class UntrustedCheckpointError(WitnessError):
    """No valid signature by a configured log key, or a known key's signature fails (HTTP 403)."""


class SizeConflictError(WitnessError):
    """The old size is not the size the witness last cosigned; carries that size (HTTP 409)."""

    def __init__(self, known_size: int) -> None:
        super().__init__(f"the witness last cosigned tree size {known_size}")
        self.known_size = known_size


class InconsistentCheckpointError(WitnessError):
    """The checkpoint is not proven consistent with what the witness cosigned before (HTTP 422)."""


class CorruptRowError(AuditError):
    """A stored ledger row holds a value no ledger writes (text where bytes belong, a wrong length, a
    non-integer index, NULL, ...). Names the table and the position so that verification can report it."""

    def __init__(self, table: str, position: int, message: str) -> None:
        super().__init__(message)
        self.table = table
        self.position = position
