"""Repositories: typed reads and writes over one session, returning plain records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from storage.bulk import insert_rows
from storage.driver import driver_rows
from storage.records import DecisionRecord, EncodedJson, ExplanationRecord, JobRecord, ModelVersionRecord, NewJob
from storage.tables import DecisionRow, ExplanationRow, JobRow, ModelVersionRow, OutcomeRow


class ModelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> ModelVersionRecord:
        row = ModelVersionRow(**fields)
        self.session.add(row)
        self.session.flush()
        return _model(row)

    def get(self, name: str, version: str) -> ModelVersionRecord | None:
        row = self.session.execute(
            select(ModelVersionRow).where(ModelVersionRow.name == name, ModelVersionRow.version == version)
        ).scalar_one_or_none()
        return _model(row) if row else None

    def get_by_id(self, model_version_id: int) -> ModelVersionRecord | None:
        row = self.session.get(ModelVersionRow, model_version_id)
        return _model(row) if row else None

    def list(self, *, name: str | None = None) -> list[ModelVersionRecord]:
        query = select(ModelVersionRow).order_by(ModelVersionRow.id)
        if name is not None:
            query = query.where(ModelVersionRow.name == name)
        return [_model(r) for r in self.session.execute(query).scalars()]


class DecisionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> DecisionRecord:
        row = DecisionRow(**fields)
        self.session.add(row)
        self.session.flush()
        return _decision(row, None)

    def add_many(self, rows: Sequence[dict[str, Any]]) -> list[DecisionRecord]:
        """Insert many decisions in one statement (seq is assigned by the database, read by get/search)."""
        if rows:
            insert_rows(self.session, DecisionRow, rows)
        return [DecisionRecord(**{k: _plain(v) for k, v in r.items()}, seq=0) for r in rows]

    def get(self, decision_id: str) -> DecisionRecord | None:
        row = self.session.execute(
            select(DecisionRow, OutcomeRow.body)
            .outerjoin(OutcomeRow, OutcomeRow.decision_id == DecisionRow.decision_id)
            .where(DecisionRow.decision_id == decision_id)
        ).first()
        return _decision(row[0], row[1]) if row else None

    def body_hashes(self, decision_ids: Sequence[str]) -> dict[str, str]:
        """decision_id -> body_sha256 of those already recorded: intake's idempotency check, which for a new
        decision (nearly always) needs to know only that it is absent, not the row's JSON columns."""
        ids = list(dict.fromkeys(decision_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            sql = f"SELECT decision_id, body_sha256 FROM decisions WHERE decision_id IN ({marks})"
            found.update({str(d): str(h) for d, h in driver_rows(self.session, sql, part)})
        return found

    def get_many(self, decision_ids: Sequence[str]) -> list[DecisionRecord]:
        found: list[DecisionRecord] = []
        ids = list(dict.fromkeys(decision_ids))
        decisions = cast(Table, DecisionRow.__table__)  # plain rows: read per batch by workers and recording
        for start in range(0, len(ids), 500):
            rows = self.session.execute(select(decisions).where(decisions.c.decision_id.in_(ids[start : start + 500])))
            found.extend(_decision(r, None) for r in rows)
        return found

    def search(
        self,
        *,
        model_version_ids: Sequence[int] | None = None,
        subject_ref: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: int | None = None,
        limit: int = 100,
        decision_ids: Sequence[str] | None = None,
        agreement: bool | None = None,
    ) -> tuple[list[DecisionRecord], int | None]:
        """Keyset pagination on the storage sequence: stable under concurrent inserts.

        ``agreement`` keeps decisions whose newest explanation says its methods agree (True) or disagree
        (False); that entry's ``agreement`` is the verdict over every method recorded until then."""
        query = select(DecisionRow, OutcomeRow.body).outerjoin(
            OutcomeRow, OutcomeRow.decision_id == DecisionRow.decision_id
        )
        if decision_ids is not None:
            query = query.where(DecisionRow.decision_id.in_(list(decision_ids)))
        if model_version_ids is not None:
            query = query.where(DecisionRow.model_version_id.in_(list(model_version_ids) or [-1]))
        if subject_ref is not None:
            query = query.where(DecisionRow.subject_ref == subject_ref)
        if outcome is not None:
            query = query.where(OutcomeRow.label == outcome)
        if since is not None:
            query = query.where(DecisionRow.occurred_at >= since)
        if until is not None:
            query = query.where(DecisionRow.occurred_at < until)
        if agreement is not None:
            query = query.where(_agreement_is(agreement))
        if cursor is not None:
            query = query.where(DecisionRow.seq > cursor)
        rows = self.session.execute(query.order_by(DecisionRow.seq).limit(limit + 1)).all()
        records = [_decision(r[0], r[1]) for r in rows[:limit]]
        next_cursor = records[-1].seq if len(rows) > limit else None
        return records, next_cursor

    def count(self) -> int:
        return int(self.session.execute(select(func.count()).select_from(DecisionRow)).scalar_one())


def _agreement_is(value: bool) -> Any:
    newer = aliased(ExplanationRow)
    newest = (
        select(func.max(newer.ledger_index))
        .where(newer.decision_id == ExplanationRow.decision_id, newer.status == "succeeded")
        .scalar_subquery()
    )
    verdict = ExplanationRow.body["agreement"]["agrees"].as_boolean()
    return exists(
        select(ExplanationRow.id).where(
            ExplanationRow.decision_id == DecisionRow.decision_id,
            ExplanationRow.ledger_index == newest,
            verdict == value,
        )
    )


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, jobs: Sequence[NewJob], *, decisions_are_new: bool = False) -> list[JobRecord]:
        """Insert new jobs; a job whose (decision, method, params) exists is returned as it is.

        ``decisions_are_new``: the decisions were inserted in this transaction, so none has a job yet and
        the look-up is skipped."""
        out: list[JobRecord] = []
        now = _now_like(self.session)
        existing_rows: dict[tuple[str, str, str], JobRow] = {}
        decision_ids = [] if decisions_are_new else list({j.decision_id for j in jobs})
        for start in range(0, len(decision_ids), 500):
            for row in self.session.execute(
                select(JobRow).where(JobRow.decision_id.in_(decision_ids[start : start + 500]))
            ).scalars():
                existing_rows[(row.decision_id, row.method, row.params_hash)] = row
        fresh: list[dict[str, Any]] = []
        for position, job in enumerate(jobs):
            existing = existing_rows.get((job.decision_id, job.method, job.params_hash))
            if existing is not None:
                out.append(_job(existing))
                continue
            fields: dict[str, Any] = {
                "id": job.id,
                "decision_id": job.decision_id,
                "model_version_id": job.model_version_id,
                "method": job.method,
                "params": job.params,
                "params_hash": job.params_hash,
                "target": job.target,
                "state": "queued",
                "attempts": 0,
                "max_attempts": 3,
                "created_at": now + timedelta(microseconds=position),  # keeps FIFO order within a batch
                "updated_at": now,
            }
            fresh.append(fields)
            out.append(JobRecord(**fields, error=None, lease_owner=None, lease_expires_at=None, explanation_id=None))
        if fresh:
            insert_rows(self.session, JobRow, fresh)  # one statement, not a flush per row
        return out

    def get(self, job_id: str) -> JobRecord | None:
        row = self.session.get(JobRow, job_id)
        return _job(row) if row else None

    def for_decision(self, decision_id: str) -> list[JobRecord]:
        rows = self.session.execute(
            select(JobRow).where(JobRow.decision_id == decision_id).order_by(JobRow.created_at, JobRow.id)
        ).scalars()
        return [_job(r) for r in rows]

    def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        method: str | None = None,
        model_version_id: int | None = None,
        job_ids: Sequence[str] | None = None,
        limit_for: Callable[[int, str], int] | None = None,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` claimable jobs sharing one model version and method (a micro-batch).

        Claimable: queued, or running with a lapsed lease (its worker died). PostgreSQL skips rows other
        workers are claiming right now; SQLite writers are serialized by BEGIN IMMEDIATE.
        ``limit_for(model_version_id, method)`` lowers the limit once the batch's kind is known (per-method
        batch sizes, paced by how long the kind takes).
        """
        claimable = or_(JobRow.state == "queued", and_(JobRow.state == "running", JobRow.lease_expires_at < now))
        postgres = self.session.get_bind().dialect.name == "postgresql"
        query = select(JobRow.id, JobRow.model_version_id, JobRow.method).where(claimable)
        if job_ids is not None:
            query = query.where(JobRow.id.in_(list(job_ids)))
        if method is not None:
            query = query.where(JobRow.method == method)
        if model_version_id is not None:
            query = query.where(JobRow.model_version_id == model_version_id)
        first_query = query.order_by(JobRow.created_at, JobRow.id).limit(1)
        if postgres:
            first_query = first_query.with_for_update(skip_locked=True)
        first = self.session.execute(first_query).first()
        if first is None:
            return []
        group = (
            query.where(JobRow.model_version_id == first.model_version_id, JobRow.method == first.method)
            .order_by(JobRow.created_at, JobRow.id)
            .limit(min(limit, limit_for(first.model_version_id, first.method)) if limit_for is not None else limit)
        )
        if postgres:
            group = group.with_for_update(skip_locked=True)
        ids = [r.id for r in self.session.execute(group)]
        until = now + timedelta(seconds=lease_seconds)
        self.session.execute(
            update(JobRow)
            .where(JobRow.id.in_(ids))
            .values(
                state="running",
                lease_owner=owner,
                lease_expires_at=until,
                attempts=JobRow.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        jobs = cast(Table, JobRow.__table__)  # plain rows, not ORM objects: this is the workers' hot path
        rows = self.session.execute(select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.created_at, jobs.c.id))
        return [_job(r) for r in rows]

    def _fenced_update(self, job_id: str, owner: str, **values: Any) -> bool:
        result = self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state == "running", JobRow.lease_owner == owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def complete(self, *, job_id: str, owner: str, explanation_id: str, now: datetime) -> bool:
        """Mark done only if ``owner`` still holds the job; False means another worker took it over."""
        return job_id in self.complete_many(owner=owner, explanations={job_id: explanation_id}, now=now)

    def complete_many(self, *, owner: str, explanations: Mapping[str, str], now: datetime) -> set[str]:
        """Mark a batch done (job id -> explanation id) in two statements; returns the ids ``owner`` still
        held, which are the only ones marked. The held rows are locked first (PostgreSQL), so no other
        worker can reclaim one between the check and the write."""
        if not explanations:
            return set()
        held_query = select(JobRow.id).where(
            JobRow.id.in_(list(explanations)), JobRow.state == "running", JobRow.lease_owner == owner
        )
        if self.session.get_bind().dialect.name == "postgresql":
            held_query = held_query.with_for_update()
        held = set(self.session.execute(held_query).scalars())
        if held:
            table = cast(Table, JobRow.__table__)
            self.session.execute(
                update(table)
                .where(table.c.id == bindparam("held_id"), table.c.state == "running", table.c.lease_owner == owner)
                .values(state="succeeded", explanation_id=bindparam("new_explanation_id"), updated_at=now)
                .values(lease_expires_at=None),
                [{"held_id": job_id, "new_explanation_id": explanations[job_id]} for job_id in held],
            )
        return held

    def fail(self, *, job_id: str, owner: str, error: str, now: datetime, retry: bool) -> bool:
        job = self.session.get(JobRow, job_id)
        again = retry and job is not None and job.attempts < job.max_attempts
        return self._fenced_update(
            job_id,
            owner,
            state="queued" if again else "failed",
            error=error[:4000],
            updated_at=now,
            lease_owner=None if again else owner,
            lease_expires_at=None,
        )

    def renew(self, *, owner: str, job_ids: Sequence[str], until: datetime) -> int:
        result = self.session.execute(
            update(JobRow)
            .where(JobRow.id.in_(list(job_ids)), JobRow.lease_owner == owner, JobRow.state == "running")
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def depth(self) -> int:
        # read in every intake group's transaction: straight to the driver (SQLAlchemy's statement handling
        # cost more than this indexed count)
        [(count,)] = driver_rows(self.session, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
        return int(count)

    def counts_by_state(self) -> dict[str, int]:
        rows = self.session.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all()
        return {state: int(n) for state, n in rows}


class ExplanationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **fields: Any) -> ExplanationRecord:
        return self.add_many([fields])[0]

    def add_many(self, rows: Sequence[dict[str, Any]]) -> list[ExplanationRecord]:
        """Insert a batch in one statement (storage/bulk.py)."""
        if rows:
            insert_rows(self.session, ExplanationRow, rows)
        return [
            ExplanationRecord(**{k: _plain(v) for k, v in r.items() if k in ExplanationRecord.__slots__}) for r in rows
        ]

    def find(self, decision_id: str, method: str, params_hash: str) -> ExplanationRecord | None:
        row = self.session.execute(
            select(ExplanationRow).where(
                ExplanationRow.decision_id == decision_id,
                ExplanationRow.method == method,
                ExplanationRow.params_hash == params_hash,
            )
        ).scalar_one_or_none()
        return _explanation(row) if row else None

    def for_decision(self, decision_id: str) -> list[ExplanationRecord]:
        rows = self.session.execute(
            select(ExplanationRow)
            .where(ExplanationRow.decision_id == decision_id)
            .order_by(ExplanationRow.ledger_index)
        ).scalars()
        return [_explanation(r) for r in rows]

    def for_decisions(self, decision_ids: Sequence[str]) -> dict[str, list[ExplanationRecord]]:
        """``for_decision`` for many decisions in a few queries (a recorded batch's agreement check)."""
        out: dict[str, list[ExplanationRecord]] = {d: [] for d in decision_ids}
        unique = list(out)
        for start in range(0, len(unique), 500):
            rows = self.session.execute(
                select(ExplanationRow)
                .where(ExplanationRow.decision_id.in_(unique[start : start + 500]))
                .order_by(ExplanationRow.ledger_index)
            ).scalars()
            for row in rows:
                out[row.decision_id].append(_explanation(row))
        return out

    def count(self) -> int:
        return int(self.session.execute(select(func.count()).select_from(ExplanationRow)).scalar_one())


class OutcomeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, decision_id: str, body: dict[str, Any], ledger_index: int, recorded_at: datetime) -> None:
        self.session.add(
            OutcomeRow(
                decision_id=decision_id,
                label=body.get("label"),
                body=body,
                ledger_index=ledger_index,
                recorded_at=recorded_at,
            )
        )
        self.session.flush()

    def get(self, decision_id: str) -> dict[str, Any] | None:
        row = self.session.get(OutcomeRow, decision_id)
        if row is None:
            return None
        return {
            "body": row.body,
            "label": row.label,
            "ledger_index": int(row.ledger_index),
            "recorded_at": row.recorded_at,
        }


def _now_like(session: Session) -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def _model(row: ModelVersionRow) -> ModelVersionRecord:
    return ModelVersionRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        task=row.task,
        manifest=row.manifest,
        artifact_sha256=row.artifact_sha256,
        artifact_format=row.artifact_format,
        background_sha256=row.background_sha256,
        trusted_pickle=row.trusted_pickle,
        ledger_index=int(row.ledger_index),
        registered_at=row.registered_at,
    )


def _decision(row: DecisionRow | Row[Any], outcome: dict[str, Any] | None) -> DecisionRecord:
    return DecisionRecord(
        decision_id=row.decision_id,
        model_version_id=row.model_version_id,
        model_ref=row.model_ref,
        inputs=row.inputs,
        output=row.output,
        client_output=row.client_output,
        output_mismatch=row.output_mismatch,
        subject_ref=row.subject_ref,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        context=row.context,
        body_sha256=row.body_sha256,
        ledger_index=int(row.ledger_index),
        seq=int(row.seq),
        outcome=outcome,
    )


def _job(row: JobRow | Row[Any]) -> JobRecord:
    return JobRecord(
        id=row.id,
        decision_id=row.decision_id,
        model_version_id=row.model_version_id,
        method=row.method,
        params=row.params,
        params_hash=row.params_hash,
        target=row.target,
        state=row.state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        error=row.error,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        explanation_id=row.explanation_id,
    )


def _explanation(row: ExplanationRow) -> ExplanationRecord:
    return ExplanationRecord(
        id=row.id,
        decision_id=row.decision_id,
        method=row.method,
        params_hash=row.params_hash,
        status=row.status,
        body=row.body,
        ledger_index=int(row.ledger_index),
        created_at=row.created_at,
        job_id=row.job_id,
    )


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, EncodedJson) else value
