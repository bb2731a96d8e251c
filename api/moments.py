"""Times as clients send them: RFC 3339 with an offset (``2026-03-01T12:00:00Z``, ``...+02:00``) or a date
alone (``2026-03-01``, midnight UTC) — nothing else: not Unix timestamps (``0.5``, which pydantic's lax
datetime would read as 1970), not a time without its offset, not a date that does not exist.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from api.errors import InvalidRequestError

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(?P<offset>[Zz]|[+-]\d{2}:\d{2}))?"
)
MOMENT_PATTERN = r"^\d{4}-\d{2}-\d{2}([Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2}))?$"
MOMENT_DESCRIPTION = "RFC 3339 date-time with an offset (2026-03-01T12:00:00Z) or a date (2026-03-01, UTC)"


def parse_moment(text: str, *, field: str) -> datetime:
    """An RFC 3339 date-time or a date as an aware UTC datetime; InvalidRequestError naming ``field``."""
    match = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidRequestError(f"{field}: {MOMENT_DESCRIPTION} expected, got {text!r}", field=field)
    try:
        if match["time"] is None:
            return datetime.combine(date.fromisoformat(match["date"]), datetime.min.time(), tzinfo=UTC)
        fraction = match["time"][9:]
        time_text = match["time"][:8] + ("." + fraction[:6] if fraction else "")  # microseconds at most
        offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
        moment = datetime.fromisoformat(f"{match['date']}T{time_text}{offset}")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequestError(f"{field}: {text!r} is not a real date and time ({exc})", field=field) from exc


def _moment_value(value: Any) -> datetime:
    if isinstance(value, datetime):  # built in Python (services, tests), not parsed from a client
        if value.tzinfo is None:
            raise ValueError("a time must carry its UTC offset")
        return value
    if not isinstance(value, str):
        raise ValueError(MOMENT_DESCRIPTION)
    try:
        return parse_moment(value, field="")
    except InvalidRequestError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from exc


Moment = Annotated[
    datetime,
    BeforeValidator(_moment_value),
    WithJsonSchema({"type": "string", "format": "date-time", "description": MOMENT_DESCRIPTION}),
]
"""A body field holding a time: RFC 3339 with an offset or a date; never a number."""
