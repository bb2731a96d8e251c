"""Storage errors. Database exceptions are translated into these at one choke point (``storage.db``)."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error."""


class ConflictError(StorageError):
    """A write contradicts what is stored (same key, different content)."""


class NotFoundError(StorageError, LookupError):
    """The requested record does not exist."""


class UnavailableError(StorageError):
    """The database cannot be reached; the caller may retry later."""


class SchemaOutdatedError(StorageError):
    """The database schema is not at the revision this code expects."""


class BlobIntegrityError(StorageError):
    """A stored blob no longer hashes to its address."""
