"""Running explanation jobs: claim a micro-batch, explain it in one vectorised call, record exactly once.

The same code runs in the embedded thread pool and in Celery workers. The database is the source of truth:
a job is claimed with a lease, and its result is written in the same transaction that marks it done, and
only if this worker still holds the lease (fencing) — so a crashed or duplicated worker can neither lose
nor double a result.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from api.container import Services
from api.services.model_cache import LoadedModel
from api.services.pacing import Pacer
from audit.canonical import Encoded
from audit.entry import EntryDraft, parse_timestamp
from audit.payloads import ExplanationRecorded
from explain.agreement import agreement
from explain.base import Budget, Target
from explain.errors import BudgetExceededError, ExplainError
from explain.predictor import frame_from_rows
from explain.registry import create_explainer
from explain.results import ExplanationResult
from storage.records import DecisionRecord, EncodedJson, JobRecord, ModelVersionRecord

log = logging.getLogger("rationale.jobs")

# explained row by row inside the libraries (alibi AnchorTabular, DiCE): computed and recorded one by one
ROW_BY_ROW_METHODS = frozenset({"anchors", "counterfactuals"})


def derive_seed(decision_id: str, method: str, params_hash: str) -> int:
    """A seed fixed by the decision and request, so re-running an explanation reproduces it."""
    digest = hashlib.sha256(f"{decision_id}\x00{method}\x00{params_hash}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job_id: str
    ok: bool
    result: ExplanationResult | None = None
    body: Encoded | None = None  # the result's body with its bytes (Explained.body)
    error: str | None = None
    retry: bool = False
    model: str | None = None
    background_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class BatchReport:
    claimed: int
    succeeded: int
    failed: int
    fenced: int
    seconds: float
    drained: bool = False  # fewer jobs were claimable than the batch could hold: the queue was emptied


def new_owner(prefix: str = "local") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class ComputeRequest:
    """One micro-batch's computation as plain picklable values, so it can run in another process."""

    model: ModelVersionRecord
    method: str
    params: dict[str, Any]
    inputs: list[dict[str, Any]]
    seeds: list[int]
    targets: list[Target] | None
    budget: Budget


class ComputeUnavailableError(RuntimeError):
    """The process computing a batch died (killed, out of memory, a crash in native code): retry the jobs."""


@dataclass(frozen=True, slots=True)
class Explained:
    """An explanation with its body's RFC 8785 bytes, made where it was computed (an explain process), so
    the thread that records it splices them into the ledger entry instead of encoding them itself."""

    result: ExplanationResult
    body: Encoded  # result.body.to_dict() and its bytes


Compute = Callable[[ComputeRequest], list[Explained]]


def compute(request: ComputeRequest, loaded: LoadedModel) -> list[Explained]:
    """Explain a batch in one vectorised call; the explainer is built here, so it is never shared."""
    rows = frame_from_rows(loaded.spec, request.inputs)
    explainer = create_explainer(
        request.method, predictor=loaded.predictor, background=loaded.background, params=request.params
    )
    results = explainer.explain(rows, seeds=request.seeds, targets=request.targets, budget=request.budget)
    return [Explained(r, Encoded.of(r.body.to_dict())) for r in results]


class JobRunner:
    """Claims and runs batches of jobs for one worker identity (``owner``).

    ``compute`` runs a batch's computation elsewhere (the embedded pool's child processes); by default it
    runs in the calling thread. ``parallel`` is how many computations ``compute`` can run at once: a claimed
    batch is cut into chunks (sized by ``pacer``) that run side by side. Claiming, fencing and recording
    always happen in the calling thread, each chunk as soon as it is computed.
    """

    def __init__(
        self,
        services: Services,
        *,
        owner: str,
        compute: Compute | None = None,
        parallel: int = 1,
        pacer: Pacer | None = None,
    ) -> None:
        self.services = services
        self.owner = owner
        self.compute = compute
        self.parallel = max(1, parallel)
        self.pacer = pacer or Pacer()
        self.in_flight: tuple[str, ...] = ()  # read by the lease heartbeat
        self._chunk_threads: ThreadPoolExecutor | None = None

    def run_batch(self, *, limit: int | None = None, job_ids: Sequence[str] | None = None) -> BatchReport:
        """Claim up to ``limit`` jobs of one model version and method, explain them, record the results."""
        started = time.monotonic()
        settings = self.services.settings
        now = self.services.clock()
        most = limit or max([settings.batch_size, *settings.method_batch_sizes.values()])
        limits: list[int] = []

        def limit_for(model_version_id: int, method: str) -> int:
            limits.append(self._claim_limit(model_version_id, method))
            return limits[-1]

        with self.services.db.unit_of_work(background=True) as uow:
            jobs = uow.jobs.claim(
                owner=self.owner,
                now=now,
                lease_seconds=settings.lease_seconds,
                limit=most,
                limit_for=None if limit else limit_for,
            )
        if not jobs:
            return BatchReport(0, 0, 0, 0, time.monotonic() - started)
        self.in_flight = tuple(j.id for j in jobs)
        try:
            succeeded, failed, fenced = self._run_in_chunks(jobs)
        finally:
            self.in_flight = ()
        seconds = time.monotonic() - started
        metrics = self.services.metrics
        metrics.batch_size.labels(jobs[0].method).observe(len(jobs))
        metrics.batch_seconds.labels(jobs[0].method).observe(seconds)
        drained = len(jobs) < min([most, *limits])
        return BatchReport(len(jobs), succeeded, failed, fenced, seconds, drained)

    def close(self) -> None:
        if self._chunk_threads is not None:
            self._chunk_threads.shutdown(wait=False, cancel_futures=True)

    def _claim_limit(self, model_version_id: int, method: str) -> int:
        cap = self.services.settings.batch_size_for(method)
        return self.pacer.claim_limit((model_version_id, method), cap=cap, parallel=self.parallel)

    def _run_in_chunks(self, jobs: Sequence[JobRecord]) -> tuple[int, int, int]:
        """Explain a claimed batch in chunks, ``parallel`` at a time, recording each as soon as it returns.

        Methods explained row by row inside their libraries (anchors, counterfactuals) gain nothing from a
        shared call, so their chunks are single rows. The next chunk is sized when a slot frees, from what
        the pacer has learned by then."""
        key = (jobs[0].model_version_id, jobs[0].method)
        row_by_row = jobs[0].method in ROW_BY_ROW_METHODS
        remaining = deque(jobs)
        running: dict[Future[list[JobOutcome]], list[JobRecord]] = {}
        totals = [0, 0, 0]

        def next_chunk() -> list[JobRecord]:
            size = 1 if row_by_row else self.pacer.chunk_size(key, remaining=len(remaining), parallel=self.parallel)
            return [remaining.popleft() for _ in range(min(size, len(remaining)))]

        def timed(chunk: list[JobRecord]) -> list[JobOutcome]:
            started = time.monotonic()
            outcomes = self.explain_jobs(chunk)
            if all(o.ok for o in outcomes):  # a failed or retried chunk says nothing of the method's speed
                self.pacer.observe(key, len(chunk), time.monotonic() - started)
            return outcomes

        def record(chunk: list[JobRecord], outcomes: list[JobOutcome]) -> None:
            counts = self.record(chunk, outcomes)
            for i in range(3):
                totals[i] += counts[i]
            done = {j.id for j in chunk}
            self.in_flight = tuple(j for j in self.in_flight if j not in done)  # renew only what is left

        if self.parallel == 1:
            while remaining:
                chunk = next_chunk()
                record(chunk, timed(chunk))
            return totals[0], totals[1], totals[2]
        if self._chunk_threads is None:
            self._chunk_threads = ThreadPoolExecutor(self.parallel, thread_name_prefix=f"{self.owner}-chunk")
        pool = self._chunk_threads

        def fill() -> None:
            while remaining and len(running) < self.parallel:
                chunk = next_chunk()
                running[pool.submit(timed, chunk)] = chunk

        fill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            done = [(running.pop(future), future) for future in finished]
            fill()  # a freed process starts its next chunk while this thread records the finished one
            for chunk, future in done:
                record(chunk, future.result())
        return totals[0], totals[1], totals[2]

    def explain_jobs(self, jobs: Sequence[JobRecord]) -> list[JobOutcome]:
        """Explain claimed jobs (all of one model version and method) — in one call when possible."""
        with self.services.db.unit_of_work(write=False) as uow:
            model = uow.models.get_by_id(jobs[0].model_version_id)
            decisions = {d.decision_id: d for d in uow.decisions.get_many([j.decision_id for j in jobs])}
        if model is None:
            return [JobOutcome(j.id, False, error="model version not found") for j in jobs]
        loaded = self.services.models.get(model)
        ref, background_sha = model.ref, loaded.background.sha256
        groups: dict[str, list[JobRecord]] = {}
        for job in jobs:  # one explainer per parameter set; usually a single group
            groups.setdefault(job.params_hash if job.params else "", []).append(job)
        outcomes: list[JobOutcome] = []
        for group in groups.values():
            outcomes.extend(self._explain_group(loaded, group, decisions))
        return [replace(o, model=ref, background_sha256=background_sha) for o in outcomes]

    def _explain_group(
        self, loaded: LoadedModel, jobs: list[JobRecord], decisions: dict[str, DecisionRecord]
    ) -> list[JobOutcome]:
        try:
            return self._explain_together(loaded, jobs, decisions)
        except ComputeUnavailableError as exc:  # not the jobs' fault: back to the queue, attempt counted
            log.warning("%d %s jobs go back to the queue: %s", len(jobs), jobs[0].method, exc)
            return [JobOutcome(j.id, False, error=str(exc), retry=True) for j in jobs]
        except ExplainError as exc:
            if len(jobs) == 1:
                return [JobOutcome(jobs[0].id, False, error=str(exc), retry=False)]
            log.info("batch of %d %s jobs failed (%s); explaining one by one", len(jobs), jobs[0].method, exc)
        outcomes = []
        for job in jobs:  # isolate the row at fault; the others still succeed
            try:
                outcomes.extend(self._explain_together(loaded, [job], decisions))
            except ComputeUnavailableError as exc:
                outcomes.append(JobOutcome(job.id, False, error=str(exc), retry=True))
            except ExplainError as exc:
                outcomes.append(JobOutcome(job.id, False, error=str(exc), retry=False))
        return outcomes

    def _explain_together(
        self, loaded: LoadedModel, jobs: list[JobRecord], decisions: dict[str, DecisionRecord]
    ) -> list[JobOutcome]:
        method = jobs[0].method
        request = ComputeRequest(
            model=loaded.record,
            method=method,
            params=jobs[0].params,
            inputs=[decisions[j.decision_id].inputs for j in jobs],
            seeds=[derive_seed(j.decision_id, j.method, j.params_hash) for j in jobs],
            targets=_targets(loaded, jobs, decisions),
            budget=loaded.budget_for(method, self.services.default_budget),
        )
        results = self.compute(request) if self.compute is not None else compute(request, loaded)
        return [JobOutcome(j.id, True, result=e.result, body=e.body) for j, e in zip(jobs, results, strict=True)]

    def record(self, jobs: Sequence[JobRecord], outcomes: Sequence[JobOutcome]) -> tuple[int, int, int]:
        """Write results and failures in one transaction, each only if this worker still holds the job."""
        by_id = {j.id: j for j in jobs}
        succeeded = failed = fenced = 0
        now = self.services.clock()
        pending: list[tuple[JobRecord, JobOutcome, str]] = []
        with self.services.db.unit_of_work(background=True) as uow:
            done: dict[str, str] = {}
            for outcome in outcomes:
                job = by_id[outcome.job_id]
                if not outcome.ok and outcome.retry and job.attempts < job.max_attempts:
                    uow.jobs.fail(job_id=job.id, owner=self.owner, error=outcome.error or "", now=now, retry=True)
                    continue
                explanation_id = uuid.uuid4().hex
                if outcome.ok:
                    done[job.id] = explanation_id
                elif not uow.jobs.fail(
                    job_id=job.id, owner=self.owner, error=outcome.error or "", now=now, retry=False
                ):
                    fenced += 1
                    continue
                pending.append((job, outcome, explanation_id))
            held = uow.jobs.complete_many(owner=self.owner, explanations=done, now=now)
            fenced += len(done) - len(held)
            pending = [p for p in pending if not p[1].ok or p[0].id in held]
            agreements = _agreements(uow, [(job, outcome) for job, outcome, _ in pending])
            drafts = [self._draft(job, outcome, eid, agreements.get(job.id)) for job, outcome, eid in pending]
            entries = self.services.ledger.append(uow.ledger, drafts) if drafts else []
            rows = []
            for (job, outcome, explanation_id), draft, entry in zip(pending, drafts, entries, strict=True):
                rows.append(
                    {
                        "id": explanation_id,
                        "decision_id": job.decision_id,
                        "method": job.method,
                        "params_hash": job.params_hash,
                        "status": "succeeded" if outcome.ok else "failed",
                        # what the entry's bytes encode, spelled with the entry's own bytes (no second encoding)
                        "body": EncodedJson(draft.payload, draft.canonical_payload.decode("utf-8")),
                        "ledger_index": entry.index,
                        "created_at": parse_timestamp(entry.recorded_at),  # the entry's time: checkable
                        "job_id": job.id,
                    }
                )
                if outcome.ok:
                    succeeded += 1
                else:
                    failed += 1
            uow.explanations.add_many(rows)
        metrics = self.services.metrics
        for job, outcome, _ in pending:
            metrics.explanations.labels(job.method, "succeeded" if outcome.ok else "failed").inc()
            metrics.job_latency.labels(job.method).observe(max(0.0, (now - job.created_at).total_seconds()))
        return succeeded, failed, fenced

    def _draft(
        self, job: JobRecord, outcome: JobOutcome, explanation_id: str, agreement: dict[str, Any] | None
    ) -> EntryDraft:
        """The entry of an outcome, its result's body spliced in with the bytes made where it was computed."""
        entry = self._entry(job, outcome, explanation_id, agreement)
        return entry.draft({"result": outcome.body} if outcome.ok and outcome.body is not None else None)

    def _entry(
        self, job: JobRecord, outcome: JobOutcome, explanation_id: str, agreement: dict[str, Any] | None = None
    ) -> ExplanationRecorded:
        ok = outcome.ok and outcome.result is not None
        result = {k: v for k, v in outcome.result.to_dict().items() if k != "method"} if outcome.result else {}
        if outcome.body is not None and "result" in result:  # the body as encoded where it was computed
            result["result"] = outcome.body.value
        if ok and agreement is not None:  # flat beside the explainer's members, as explain/agreement.py reads it
            result["agreement"] = agreement
        return ExplanationRecorded(
            explanation_id=explanation_id,
            decision_id=job.decision_id,
            job_id=job.id,
            method=job.method,
            params_hash=job.params_hash,
            requested_params=job.params,
            requested_target=job.target,
            attempt=job.attempts,
            model=outcome.model,
            background_sha256=outcome.background_sha256,
            result=result if ok else {},
            failed=not ok,
            error=None if ok else outcome.error,
        )

    def renew(self, job_ids: Sequence[str]) -> None:
        until = self.services.clock() + timedelta(seconds=self.services.settings.lease_seconds)
        with self.services.db.unit_of_work(background=True) as uow:
            uow.jobs.renew(owner=self.owner, job_ids=list(job_ids), until=until)


def _agreements(uow: Any, done: Sequence[tuple[JobRecord, JobOutcome]]) -> dict[str, dict[str, Any]]:
    """Per succeeded job, how its decision's explanations agree once it is recorded (explain/agreement.py):
    its result against the latest recorded result of every other method. Stored in the explanation's
    entry, so the newest explanation of a decision carries the current verdict (search filters on it)."""
    out: dict[str, dict[str, Any]] = {}
    succeeded = [(job, o.result) for job, o in done if o.ok and o.result is not None]
    earlier = uow.explanations.for_decisions([job.decision_id for job, _ in succeeded]) if succeeded else {}
    for job, result in succeeded:
        latest: dict[str, ExplanationResult] = {}
        for record in earlier[job.decision_id]:  # ledger order: later supersedes
            if record.status == "succeeded" and record.method != job.method:
                try:
                    latest[record.method] = ExplanationResult.from_dict(record.body)
                except (KeyError, TypeError, ValueError):
                    continue
        latest[job.method] = result
        verdict = agreement(latest)
        if verdict.agrees is not None:
            out[job.id] = verdict.to_dict()
    return out


def _targets(
    loaded: LoadedModel, jobs: Sequence[JobRecord], decisions: dict[str, DecisionRecord]
) -> list[Target] | None:
    """The requested class, else the class the model gave when the decision was recorded (same model
    version, so the same as predicting again, without paying for it)."""
    if not loaded.spec.is_classifier:
        return None
    labels = list(loaded.spec.class_labels)
    targets = []
    for job in jobs:
        label = job.target or decisions[job.decision_id].output.get("label")
        if label not in labels:
            return None  # not a label we know: let the explainer predict
        targets.append(Target(labels.index(label)))
    return targets


__all__ = [
    "BatchReport",
    "BudgetExceededError",
    "Compute",
    "ComputeRequest",
    "ComputeUnavailableError",
    "Explained",
    "JobOutcome",
    "JobRunner",
    "compute",
    "derive_seed",
    "new_owner",
]
