"""Request parameters checked before anything reaches the database: ids, ledger indices, times, cursors.

Each is an ``Annotated`` alias, so a route states a parameter's rule in its signature and the OpenAPI
document carries it (pattern, bounds, format). A violation is the API's 422 naming the parameter.

Times follow ``api.moments``: RFC 3339 with an offset, or a date alone.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from typing import Annotated

from fastapi import Path, Query

from api.errors import InvalidRequestError
from api.moments import MOMENT_DESCRIPTION, MOMENT_PATTERN, Moment, parse_moment
from api.schemas import ID_PATTERN, NAME_PATTERN

__all__ = ["Moment", "parse_moment"]

MAX_LEDGER_INDEX = 2**53 - 1
"""Indices and tree sizes above this are refused (I-JSON safe integers; far beyond any real ledger)."""


def ordered(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since > until:
        raise InvalidRequestError("until must not be earlier than since", field="until")


MomentQuery = Annotated[str | None, Query(max_length=64, pattern=MOMENT_PATTERN, description=MOMENT_DESCRIPTION)]
DecisionIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=200, description="the client's decision id")]
OpaqueIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="an id this API returned")]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=128)]
LedgerIndexPath = Annotated[int, Path(ge=0, le=MAX_LEDGER_INDEX, description="0-based ledger index")]


# --- cursors -----------------------------------------------------------------------------------------------

_CURSOR_PREFIX = "c1."
_CURSOR_TAG = b"rationale search cursor v1\n"
CURSOR_PATTERN = r"^c1\.[A-Za-z0-9_-]{19}$"


def encode_cursor(position: int) -> str:
    """An opaque cursor for a storage position: version, position and a checksum (so a hand-edited or
    truncated cursor is refused rather than silently paging from elsewhere)."""
    raw = position.to_bytes(8, "big")
    check = hashlib.sha256(_CURSOR_TAG + raw).digest()[:6]
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw + check).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *, field: str = "cursor") -> int:
    """The storage position of a cursor from ``encode_cursor``; InvalidRequestError for anything else."""
    refused = InvalidRequestError("cursor must be a value returned as next_cursor", field=field)
    if not isinstance(cursor, str) or not re.fullmatch(CURSOR_PATTERN, cursor):
        raise refused
    try:
        blob = base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX) :] + "=")
    except ValueError as exc:
        raise refused from exc
    raw, check = blob[:8], blob[8:]
    if len(blob) != 14 or hashlib.sha256(_CURSOR_TAG + raw).digest()[:6] != check:
        raise refused
    position = int.from_bytes(raw, "big")
    if position > 2**63 - 1:
        raise refused
    return position
