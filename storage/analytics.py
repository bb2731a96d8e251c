"""Read-side queries for the data-scientist toolkit: deployments, and aggregates over decisions.

Every figure is computed by an aggregate query (GROUP BY in the database) or from rows streamed in chunks
(``yield_per``: a server-side cursor on PostgreSQL, a lazily fetched cursor on SQLite); nothing here loads
the decisions of a window as records. Values are read out of the JSON columns by the database itself
(``json_extract`` on SQLite, ``->>`` / ``#>>`` on PostgreSQL).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import ColumnElement, and_, cast, func, literal, not_, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from storage.tables import DecisionRow, DeploymentRow, ExplanationRow, OutcomeRow

CHUNK = 20_000
Bucket = Literal["day", "week", "month", "all"]
ATTRIBUTION_METHOD = "shap"


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    model_name: str
    version: str
    model_version_id: int
    action: str
    reason: str
    effective_at: datetime
    ledger_index: int
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Window:
    """Decisions of some versions of one model, occurred in [since, until)."""

    version_ids: tuple[int, ...]
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class VersionSpan:
    model_version_id: int
    decisions: int
    first_at: datetime | None
    last_at: datetime | None
    first_decision_id: str | None
    last_decision_id: str | None


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime | None  # None: still live


def _where(window: Window) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [DecisionRow.model_version_id.in_(list(window.version_ids) or [-1])]
    if window.since is not None:
        conditions.append(DecisionRow.occurred_at >= window.since)
    if window.until is not None:
        conditions.append(DecisionRow.occurred_at < window.until)
    return conditions


def bucket_expression(dialect: str, unit: Bucket) -> ColumnElement[Any]:
    """The start of the decision's day, ISO week (Monday) or month in UTC, as text ``YYYY-MM-DD``."""
    column = DecisionRow.occurred_at
    if unit == "all":
        return literal("all")
    if dialect == "sqlite":  # stored as naive UTC text
        if unit == "day":
            return func.strftime("%Y-%m-%d", column)
        if unit == "week":
            return func.date(column, "-6 days", "weekday 1")
        return func.strftime("%Y-%m-01", column)
    return func.to_char(func.date_trunc(unit, func.timezone("UTC", column)), "YYYY-MM-DD")


class AnalyticsQueries:
    """Queries over one session; returns plain values and numpy arrays, never ORM rows."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # deployments -------------------------------------------------------------------------------------------

    def add_deployment(self, **fields: Any) -> DeploymentRecord:
        row = DeploymentRow(**fields)
        self.session.add(row)
        self.session.flush()
        return _deployment(row)

    def deployments(self, model_name: str) -> list[DeploymentRecord]:
        rows = self.session.execute(
            select(DeploymentRow)
            .where(DeploymentRow.model_name == model_name)
            .order_by(DeploymentRow.effective_at, DeploymentRow.id)
        ).scalars()
        return [_deployment(r) for r in rows]

    # timeline ----------------------------------------------------------------------------------------------

    def version_span(self, model_version_id: int) -> VersionSpan:
        """How many decisions a version made, and its first and last (by occurred_at) — index scans only."""
        where = DecisionRow.model_version_id == model_version_id
        count, first, last = self.session.execute(
            select(func.count(), func.min(DecisionRow.occurred_at), func.max(DecisionRow.occurred_at)).where(where)
        ).one()
        first_id = last_id = None
        if count:
            first_id = self.session.execute(
                select(DecisionRow.decision_id).where(where).order_by(DecisionRow.occurred_at, DecisionRow.seq).limit(1)
            ).scalar_one()
            last_id = self.session.execute(
                select(DecisionRow.decision_id)
                .where(where)
                .order_by(DecisionRow.occurred_at.desc(), DecisionRow.seq.desc())
                .limit(1)
            ).scalar_one()
        return VersionSpan(model_version_id, int(count), _utc(first), _utc(last), first_id, last_id)

    def outside_intervals(
        self, model_version_id: int, intervals: Sequence[Interval], *, examples: int = 20
    ) -> tuple[int, list[tuple[str, datetime]]]:
        """Decisions of a version whose occurred_at lies in none of ``intervals``: count, and the first few."""
        inside = [
            and_(DecisionRow.occurred_at >= i.start, *([DecisionRow.occurred_at < i.end] if i.end else []))
            for i in intervals
        ]
        where = [DecisionRow.model_version_id == model_version_id]
        if inside:
            where.append(not_(or_(*inside)))
        count = self.session.execute(select(func.count()).where(*where)).scalar_one()
        rows = self.session.execute(
            select(DecisionRow.decision_id, DecisionRow.occurred_at)
            .where(*where)
            .order_by(DecisionRow.occurred_at, DecisionRow.seq)
            .limit(examples)
        ).all()
        return int(count), [(r[0], _utc(r[1]) or r[1]) for r in rows]

    # inputs and attributions -------------------------------------------------------------------------------

    def inputs(
        self, window: Window, numeric: Sequence[str], categorical: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
        """One scan of the window: a float array per numeric feature (missing values dropped) and the count
        of each value per categorical feature."""
        names = [*numeric, *categorical]
        if not names:
            return {}, {}
        inputs: Any = DecisionRow.inputs
        query = select().where(*_where(window))
        if self.dialect == "postgresql":
            # a decision's inputs are json text there (storage.tables.TextJson): parsed once per row into
            # jsonb in a subquery the planner keeps (OFFSET 0), not re-read at every feature's extraction
            parsed = select(cast(DecisionRow.inputs, JSONB).label("j")).where(*_where(window)).offset(0).subquery()
            inputs, query = parsed.c.j, select().select_from(parsed)
        columns = [inputs[f].as_float() for f in numeric] + [inputs[f].as_string() for f in categorical]
        parts: list[list[Any]] = [[] for _ in names]
        counts: list[Counter[Any]] = [Counter() for _ in categorical]
        for chunk in self._column_chunks(query.add_columns(*columns)):
            for k in range(len(numeric)):
                parts[k].append(np.array(chunk[k], dtype=float))
            for k in range(len(categorical)):
                counts[k].update(chunk[len(numeric) + k])
        numbers = {}
        for k, name in enumerate(numeric):
            column = np.concatenate(parts[k]) if parts[k] else np.empty(0)
            numbers[name] = column[~np.isnan(column)]
        categories = {
            name: {str(v): int(n) for v, n in counter.items() if v is not None}
            for name, counter in zip(categorical, counts, strict=True)
        }
        return numbers, categories

    def count(self, window: Window) -> int:
        return int(self.session.execute(select(func.count()).where(*_where(window))).scalar_one())

    def category_counts(self, window: Window, feature: str) -> dict[str, int]:
        value = DecisionRow.inputs[feature].as_string()
        rows = self.session.execute(select(value, func.count()).where(*_where(window)).group_by(value)).all()
        return {str(v): int(n) for v, n in rows if v is not None}

    def attributions(self, window: Window, features: Sequence[str]) -> dict[str, np.ndarray]:
        """SHAP values per feature of the window's decisions (succeeded explanations), streamed in chunks.

        Each value is extracted by the database from the stored body (SQLite keeps the parsed JSON of a
        row between the json_extract calls of one statement: 9 extractions cost 2.3 s per 100k bodies,
        one extraction of the values object 1.3 s, a materialized subquery of them 3.9 s)."""
        columns = [ExplanationRow.body[("result", "values", f)].as_float() for f in features]
        query = (
            select(*columns)
            .select_from(DecisionRow)
            .join(ExplanationRow, ExplanationRow.decision_id == DecisionRow.decision_id)
            .where(*_where(window), *_explained())
        )
        return self._stream_columns(query, features)

    def importance(self, window: Window, features: Sequence[str], unit: Bucket) -> list[tuple[Any, ...]]:
        """(version id, bucket, explanations, mean |SHAP| per feature...) per version and bucket, aggregated."""
        bucket = bucket_expression(self.dialect, unit).label("bucket")
        means = [func.avg(func.abs(ExplanationRow.body[("result", "values", f)].as_float())) for f in features]
        query = (
            select(DecisionRow.model_version_id, bucket, func.count(), *means)
            .select_from(DecisionRow)
            .join(ExplanationRow, ExplanationRow.decision_id == DecisionRow.decision_id)
            .where(*_where(window), *_explained())
            .group_by(DecisionRow.model_version_id, bucket)
            .order_by(DecisionRow.model_version_id, bucket)
        )
        return [tuple(r) for r in self._core(query)]

    def decision_page(
        self, window: Window, features: Sequence[str], *, after: int | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """(seq, decision id, model ref, occurred_at, SHAP per feature...) for the attribution listing."""
        columns = [ExplanationRow.body[("result", "values", f)].as_float() for f in features]
        query = (
            select(DecisionRow.seq, DecisionRow.decision_id, DecisionRow.model_ref, DecisionRow.occurred_at, *columns)
            .select_from(DecisionRow)
            .join(ExplanationRow, ExplanationRow.decision_id == DecisionRow.decision_id)
            .where(*_where(window), *_explained())
        )
        if after is not None:
            query = query.where(DecisionRow.seq > after)
        return [tuple(r) for r in self.session.execute(query.order_by(DecisionRow.seq).limit(limit)).all()]

    # outcomes ----------------------------------------------------------------------------------------------

    def classification_rows(
        self, window: Window, *, positive: str, unit: Bucket, scores: bool = False
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Column chunks: (version ids, buckets, predicted labels, scores of ``positive``, score dicts (None
        unless ``scores``), outcome labels or None)."""
        bucket = bucket_expression(self.dialect, unit)
        predicted = DecisionRow.output["label"].as_string()
        score = DecisionRow.output[("scores", positive)].as_float()
        query = (
            select(
                DecisionRow.model_version_id,
                bucket,
                predicted,
                score,
                DecisionRow.output["scores"] if scores else literal(None),
                OutcomeRow.label,
            )
            .outerjoin(OutcomeRow, OutcomeRow.decision_id == DecisionRow.decision_id)
            .where(*_where(window))
        )
        yield from self._column_chunks(query)

    def regression_rows(self, window: Window, *, unit: Bucket) -> Iterator[list[tuple[Any, ...]]]:
        """Column chunks: (version ids, buckets, predicted values, outcome values or None)."""
        bucket = bucket_expression(self.dialect, unit)
        query = (
            select(
                DecisionRow.model_version_id,
                bucket,
                DecisionRow.output["value"].as_float(),
                OutcomeRow.body["value"].as_float(),
            )
            .outerjoin(OutcomeRow, OutcomeRow.decision_id == DecisionRow.decision_id)
            .where(*_where(window))
        )
        yield from self._column_chunks(query)

    def group_counts(
        self, window: Window, *, group: ColumnElement[Any], positive: str
    ) -> list[tuple[str | None, bool, str | None, int]]:
        """(group value, predicted positive?, outcome label or None, decisions) — one row per combination."""
        predicted = DecisionRow.output["label"].as_string() == positive
        query = (
            select(group, predicted, OutcomeRow.label, func.count())
            .outerjoin(OutcomeRow, OutcomeRow.decision_id == DecisionRow.decision_id)
            .where(*_where(window))
            .group_by(group, predicted, OutcomeRow.label)
        )
        return [(None if g is None else str(g), bool(p), o, int(n)) for g, p, o, n in self.session.execute(query)]

    @staticmethod
    def input_value(feature: str) -> ColumnElement[Any]:
        return DecisionRow.inputs[feature].as_string()

    @staticmethod
    def context_value(key: str) -> ColumnElement[Any]:
        return DecisionRow.context[key].as_string()

    # helpers -----------------------------------------------------------------------------------------------

    def _core(self, query: Any, **options: Any) -> Any:
        """Run through the Core connection: plain rows, without the ORM's per-row loading."""
        return self.session.connection().execute(query, execution_options=options)

    def _raw_chunks(self, query: Any) -> Iterator[list[tuple[Any, ...]]]:
        """The result in chunks of ``CHUNK`` plain tuples, taken from the driver's cursor.

        SQLite's cursor steps through the result lazily. On PostgreSQL the driver receives the selected
        columns of the window (numbers and short text, ~100 bytes a decision) and Python objects are made
        a chunk at a time: a server-side cursor (``stream_results``) would bound that too, but PostgreSQL
        plans cursors without parallel workers and the attribution scan of 100k decisions took 8.3 s
        instead of 3.2 s (bench/analytics.py). Skipping SQLAlchemy's Row objects halves the Python time
        per row (2.1 s to 1.0 s for 100k rows x 9 columns); the columns read this way are numbers and text,
        which need no result processing. The fetch strategy's ``fetchmany`` returns the driver's rows
        before SQLAlchemy wraps them; the analytics tests' exact counts and figures on both back-ends keep
        it equal to ``Result.partitions``."""
        result = self._core(query)
        strategy = result.cursor_strategy
        try:
            while rows := strategy.fetchmany(result, result.cursor, CHUNK):
                yield rows
        finally:
            result.close()

    def _column_chunks(self, query: Any) -> Iterator[list[tuple[Any, ...]]]:
        """Chunks turned into one tuple per column."""
        for rows in self._raw_chunks(query):
            yield list(zip(*rows, strict=True))

    def _stream_columns(self, query: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
        parts = [np.array(rows, dtype=float).reshape(len(rows), len(names)) for rows in self._raw_chunks(query)]
        stacked = np.concatenate(parts) if parts else np.empty((0, len(names)))
        return {name: column[~np.isnan(column)] for name, column in zip(names, stacked.T, strict=True)}


def _utc(value: Any) -> datetime | None:
    """Aggregates of a UTC column come back as aware datetimes, or as text on SQLite's min/max."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _explained() -> list[ColumnElement[bool]]:
    return [ExplanationRow.method == ATTRIBUTION_METHOD, ExplanationRow.status == "succeeded"]


def _deployment(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        model_name=row.model_name,
        version=row.version,
        model_version_id=row.model_version_id,
        action=row.action,
        reason=row.reason,
        effective_at=row.effective_at,
        ledger_index=int(row.ledger_index),
        recorded_at=row.recorded_at,
    )
