"""Per-method micro-batch sizes, and row-by-row methods recorded as each explanation is computed."""

from __future__ import annotations

from api.services.explaining import ComputeRequest, JobRunner, compute
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
