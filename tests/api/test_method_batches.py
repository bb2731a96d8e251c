"""Per-method micro-batch sizes, batches paced by how long their method takes and computed in chunks on
every process, and each chunk recorded as soon as it is computed."""

from __future__ import annotations

import threading
import time

from api.services.explaining import ComputeRequest, JobRunner, compute
from api.services.pacing import PROBE_ROWS, Pacer
from api.services.verification import verify_whole_ledger
from api.settings import Settings
from explain.results import ExplanationResult
from tests.api.helpers import applicant_rows


def test_batch_size_is_chosen_per_method():
    settings = Settings(batch_size=64, method_batch_sizes={"anchors": 2, "counterfactuals": 3})
    assert settings.batch_size_for("anchors") == 2
    assert settings.batch_size_for("counterfactuals") == 3
    assert settings.batch_size_for("shap") == 64
    assert Settings().batch_size_for("anchors") < Settings().batch_size_for("shap")  # the defaults


def test_anchors_are_claimed_in_small_batches_and_recorded_as_each_is_computed(client, services, registered):
    rows = applicant_rows(3)
    decisions = [
        {"decision_id": f"a-{i}", "model": "credit@1", "inputs": r, "explain": ["anchors"]} for i, r in enumerate(rows)
    ]
    resp = client.post("/v1/decisions", json={"decisions": decisions})
    assert resp.status_code == 201, resp.text

    succeeded_when_computing: list[int] = []

    def observed(request: ComputeRequest) -> list[ExplanationResult]:
        """The real computation; first notes how many explanations the ledger already holds."""
        with services.db.unit_of_work(write=False) as uow:
            succeeded_when_computing.append(uow.jobs.counts_by_state().get("succeeded", 0))
        return compute(request, services.models.get(request.model))

    runner = JobRunner(services, owner="test-row-by-row", compute=observed)
    first = runner.run_batch()
    assert first.claimed == services.settings.batch_size_for("anchors") == 2  # the third is left for others
    assert first.succeeded == 2
    assert succeeded_when_computing == [0, 1]  # the first anchor was recorded before the second was computed
    second = runner.run_batch()
    assert (second.claimed, second.succeeded) == (1, 1)
    for d in decisions:
        body = client.get(f"/v1/decisions/{d['decision_id']}").json()
        [explanation] = body["explanations"]
        assert explanation["status"] == "succeeded" and explanation["body"]["result"]["rule"]


def test_the_pacer_sizes_claims_and_chunks_from_the_seconds_an_explanation_takes():
    pacer = Pacer(chunk_seconds=0.5, claim_seconds=4.0)
    key = (1, "shap")
    assert pacer.claim_limit(key, cap=256, parallel=2) == 256  # unknown: the configured size
    assert pacer.chunk_size(key, remaining=256, parallel=2) == PROBE_ROWS  # unknown: a small probe first
    pacer.observe(key, 4, 4 * 0.080)  # KernelSHAP-like: 80 ms a row
    assert pacer.claim_limit(key, cap=256, parallel=2) == 100  # 8 s of work for two processes
    assert pacer.chunk_size(key, remaining=100, parallel=2) == 6  # about 0.5 s
    assert pacer.chunk_size(key, remaining=3, parallel=2) == 2  # the last rows are still shared out
    fast = (1, "lime")
    pacer.observe(fast, 4, 0.2)  # a first call pays for building the explainer: 50 ms a row
    pacer.observe(fast, 200, 0.2)  # a large chunk of 1 ms rows outweighs the small probe
    assert pacer.seconds_per_row(fast) < 0.003
    assert pacer.chunk_size(fast, remaining=256, parallel=2) == 128  # halves, one per process


def test_a_batch_is_computed_in_chunks_side_by_side_and_each_chunk_is_recorded_when_it_returns(
    client, services, registered
):
    rows = applicant_rows(6)
    decisions = [
        {"decision_id": f"p-{i}", "model": "credit@1", "inputs": r, "explain": ["shap"]} for i, r in enumerate(rows)
    ]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201

    lock = threading.Lock()
    computing = [0]
    most_at_once = [0]
    recorded_when_starting: list[int] = []
    first_started = threading.Event()

    def succeeded() -> int:
        with services.db.unit_of_work(write=False) as uow:
            return uow.jobs.counts_by_state().get("succeeded", 0)

    held: list[str] = []

    def observed(request: ComputeRequest) -> list[ExplanationResult]:
        """The real computation; the chunk that starts first holds its process until the other rows are recorded.

        It is whichever chunk's thread gets there first, not necessarily the first submitted (on a loaded
        machine the second thread often wins), so the held decision is noted here and checked below. Waiting
        on that condition, not on a fixed sleep, keeps the test true on a slow machine."""
        done = succeeded()
        with lock:
            computing[0] += 1
            most_at_once[0] = max(most_at_once[0], computing[0])
            recorded_when_starting.append(done)
            first = not first_started.is_set()
            first_started.set()
            if first:
                held.extend(d["decision_id"] for d, r in zip(decisions, rows, strict=True) if r in request.inputs)
        try:
            deadline = time.monotonic() + 60
            while first and succeeded() < 6 - len(request.inputs) and time.monotonic() < deadline:  # a runner
                time.sleep(0.05)  # that waits for the held chunk before recording the others fails below
            return compute(request, services.models.get(request.model))
        finally:
            with lock:
                computing[0] -= 1

    pacer = Pacer()
    model_id = _model_version_id(services)
    pacer.observe((model_id, "shap"), 1, 0.5)  # learned: one row per 0.5 s chunk
    runner = JobRunner(services, owner="test-chunks", compute=observed, parallel=2, pacer=pacer)
    try:
        report = runner.run_batch()
    finally:
        runner.close()
    assert (report.claimed, report.succeeded, report.failed, report.fenced) == (6, 6, 0, 0)
    assert len(recorded_when_starting) >= 3  # one row first; later chunks grow as the pacer learns
    assert most_at_once[0] == 2  # two at a time, as many as the processes
    assert max(recorded_when_starting) >= 2  # later chunks began after others were recorded...
    with services.db.unit_of_work(write=False) as uow:
        explanations = [e for i in range(6) for e in uow.explanations.for_decision(f"p-{i}")]
    assert len(explanations) == 6 and all(e.status == "succeeded" for e in explanations)
    assert len(held) == 1  # the first chunk is a one-row probe
    slow = next(e for e in explanations if e.decision_id == held[0])
    assert slow.ledger_index == max(e.ledger_index for e in explanations)  # ...the held one last
    assert verify_whole_ledger(services, quiet=True) == 0


def _model_version_id(services) -> int:
    with services.db.unit_of_work(write=False) as uow:
        [job] = uow.jobs.for_decision("p-0")
    return job.model_version_id


def test_a_batch_that_empties_the_queue_says_so_and_a_full_one_does_not(client, services, registered):
    """The local pool waits the batch window after a batch that emptied the queue (decisions arriving one by
    one then share the next claim) and claims again at once after a full one (a backlog is drained)."""
    decisions = [
        {"decision_id": f"d-{i}", "model": "credit@1", "inputs": r, "explain": ["shap"]}
        for i, r in enumerate(applicant_rows(5))
    ]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
    runner = JobRunner(services, owner="test-drained")
    full = runner.run_batch(limit=2)
    assert (full.claimed, full.drained) == (2, False)
    rest = runner.run_batch()
    assert (rest.claimed, rest.drained) == (3, True)
    assert runner.run_batch().claimed == 0
