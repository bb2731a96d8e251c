"""The search form: raw text fields in, a DecisionQuery (or errors per field) out.

Browsers send every field, empty ones as ``""``, so parsing is done here rather than by FastAPI, whose
errors would be a JSON body instead of a message next to the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from pydantic import TypeAdapter, ValidationError

from api.services.searching import DecisionQuery

FIELDS = ("decision_id", "subject_ref", "model", "outcome", "since", "until")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_MOMENT = TypeAdapter(datetime)


@dataclass(frozen=True, slots=True)
class SearchForm:
    values: dict[str, str]
    cursor: str | None = None
    limit: int = PAGE_SIZE
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def filtered(self) -> bool:
        return any(self.values[name] for name in FIELDS)

    def query(self) -> DecisionQuery:
        """The service query; call only when ``errors`` is empty."""
        return DecisionQuery(
            model=self.values["model"] or None,
            subject_ref=self.values["subject_ref"] or None,
            outcome=self.values["outcome"] or None,
            since=_moment(self.values["since"], end_of_day=False),
            until=_moment(self.values["until"], end_of_day=True),
            cursor=self.cursor,
            limit=self.limit,
        )

    def page_link(self, cursor: str) -> str:
        """The same search, one page on."""
        params = {k: v for k, v in self.values.items() if v}
        if self.limit != PAGE_SIZE:
            params["limit"] = str(self.limit)
        return "/review?" + urlencode({**params, "cursor": cursor})


def parse_form(raw: dict[str, str | None], *, cursor: str | None, limit: str | None) -> SearchForm:
    values = {name: (raw.get(name) or "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    for name in ("since", "until"):
        try:
            _moment(values[name], end_of_day=name == "until")
        except ValueError as exc:
            errors[name] = str(exc)
    size = PAGE_SIZE
    if limit:
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE_SIZE:
            errors["limit"] = f"page size must be a whole number from 1 to {MAX_PAGE_SIZE}"
        else:
            size = int(limit)
    return SearchForm(values=values, cursor=cursor or None, limit=size, errors=errors)


def _moment(text: str, *, end_of_day: bool) -> datetime | None:
    """A date means the whole day in UTC (``until`` includes it); a time must carry its timezone.

    Raises ValueError with a message for the reviewer.
    """
    if not text:
        return None
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
    try:
        moment = _MOMENT.validate_python(text)
    except ValidationError:
        raise ValueError(f"{text!r} is not a date or time: use 2026-03-01 or 2026-03-01T09:30:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("a time needs its timezone, e.g. 2026-03-01T09:30:00Z or +01:00")
    return moment
