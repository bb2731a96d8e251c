"""A model with two versions, drifted inputs, SHAP explanations, late outcomes and deployments: the data
the toolkit's tests (analytics, client, model page, report) read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from api.container import Services
from api.schemas import DecisionCreate, ManifestIn, OutcomeCreate
from api.services.analytics.timeline import record_deployment
from api.services.decisions import record_decisions
from api.services.models import register_model
from api.services.outcomes import record_outcome
from api.workers.local_pool import drain
from explain.samples import make_credit_frame
from tests.api.helpers import credit_manifest

START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday
REGIONS = ("north", "south", "east")


@dataclass(frozen=True)
class Scenario:
    per_version: int
    outcomes: dict[str, str]  # decision id -> true label, for those whose outcome arrived


def build_scenario(services: Services, gbm: bytes, linear: bytes, *, per_version: int = 120) -> Scenario:
    """v1 (GBM) serves days 0-13, v2 (logistic) days 14-27 on applicants with 40 % more income."""
    for version, artifact in (("1", gbm), ("2", linear)):
        manifest = credit_manifest(version=version, positive_class="approved")
        register_model(services, manifest=ManifestIn.model_validate(manifest), artifact=artifact)
    outcomes: dict[str, str] = {}
    step = timedelta(days=14) / per_version
    for v, version in enumerate(("1", "2")):
        frame, labels = make_credit_frame(per_version, seed=21 + v)
        if version == "2":
            frame["income"] = np.minimum(frame["income"] * 1.4, 480_000).round(2)
        items = []
        for i, row in enumerate(frame.to_dict(orient="records")):
            decision_id = f"v{version}-{i:04d}"
            items.append(
                DecisionCreate(
                    decision_id=decision_id,
                    model=f"credit@{version}",
                    inputs=row,
                    occurred_at=START + timedelta(days=14 * v) + step * i,
                    context={"region": REGIONS[i % 3]},
                    explain=["shap"],
                )
            )
            if (version == "1" and i < per_version - 30) or (version == "2" and i % 2 == 0):
                outcomes[decision_id] = str(labels[i])
        record_decisions(services, items, path="decisions")
    drain(services)
    for decision_id, label in outcomes.items():
        record_outcome(services, decision_id=decision_id, body=OutcomeCreate(label=label))
    record_deployment(services, name="credit", version="1", action="deploy", reason="first", effective_at=START)
    record_deployment(
        services,
        name="credit",
        version="2",
        action="deploy",
        reason="logistic model",
        effective_at=START + timedelta(days=14),
    )
    return Scenario(per_version, outcomes)


def decisions_of(services: Services, version: str) -> list[Any]:
    with services.db.unit_of_work(write=False) as uow:
        model = uow.models.get("credit", version)
        assert model is not None
        records, _ = uow.decisions.search(model_version_ids=[model.id], limit=100_000)
        explanations = {
            r.decision_id: [e for e in uow.explanations.for_decision(r.decision_id) if e.method == "shap"]
            for r in records
        }
    return [(r, explanations[r.decision_id][0].body["result"]["values"]) for r in records]
