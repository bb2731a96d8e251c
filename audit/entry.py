"""Ledger entries: what is hashed, and what is stored.

An entry's canonical bytes are RFC 8785 of
``{"index": n, "type": "...", "recorded_at": "<RFC 3339 UTC>", "payload": {...}}``.
Stored bytes are the record; they are parsed to read an entry and never re-serialized to check a hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit.canonical import Encoded, canonical_bytes, canonical_object, check_json_value, plain_members
from audit.errors import NonCanonicalValueError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(entry_bytes: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || entry)."""
    return hashlib.sha256(LEAF_PREFIX + entry_bytes).digest()


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z`` suffix, the only form the ledger stores."""
    if moment.tzinfo is None:
        raise ValueError("ledger timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def parse_timestamp(text: str) -> datetime:
    """The inverse of format_timestamp. Its own spelling is read by the C ISO parser (strptime costs ~40 us,
    twice per decision recorded); anything else by strptime, which says what is wrong with it."""
    if isinstance(text, str) and _STAMP.fullmatch(text):
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """An entry before the ledger gives it an index: its type and JSON payload. A payload member may be given
    as ``Encoded`` (its bytes made already): they are spliced in, and ``payload`` holds the plain value."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    canonical_payload: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.type or not isinstance(self.type, str):
            raise ValueError("entry type must be a non-empty string")
        try:  # encoding checks the payload too, and the bytes are reused by StoredEntry.build
            if any(isinstance(v, Encoded) for v in self.payload.values()):  # members encoded already: spliced
                encoded = canonical_object(self.payload)
                object.__setattr__(self, "payload", plain_members(self.payload))
            else:
                encoded = canonical_bytes(self.payload)
        except NonCanonicalValueError:
            object.__setattr__(self, "payload", plain_members(self.payload))
            check_json_value(self.payload, "payload")  # raises naming the field at fault
            raise
        object.__setattr__(self, "canonical_payload", encoded)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as it sits in the ledger: its canonical bytes and leaf hash are authoritative."""

    index: int
    type: str
    recorded_at: str
    canonical: bytes
    leaf_hash: bytes

    @classmethod
    def build(cls, *, index: int, draft: EntryDraft, recorded_at: datetime) -> StoredEntry:
        stamp = format_timestamp(recorded_at)
        # RFC 8785 orders the members index < payload < recorded_at < type; the payload's bytes are the
        # draft's own canonical encoding, so the document is assembled rather than encoded again
        data = b"".join(
            (
                b'{"index":',
                canonical_bytes(index),
                b',"payload":',
                draft.canonical_payload,
                b',"recorded_at":',
                canonical_bytes(stamp),
                b',"type":',
                canonical_bytes(draft.type),
                b"}",
            )
        )
        return cls(index=index, type=draft.type, recorded_at=stamp, canonical=data, leaf_hash=leaf_hash(data))

    def document(self) -> dict[str, Any]:
        """The parsed entry (index, type, recorded_at, payload) read from the stored bytes."""
        parsed: dict[str, Any] = json.loads(self.canonical)
        return parsed

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.document()["payload"]
        return payload
