"""`rationale demo`: a credit-scoring model, a few hundred decisions with explanations, served locally."""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, cast

from tqdm import tqdm

from api.container import Services, build_services
from api.schemas import DecisionCreate, ExplainersIn, FeatureIn, ManifestIn
from api.services.decisions import record_decisions
from api.services.models import register_model
from api.settings import Settings
from api.workers.local_pool import LocalWorkerPool
from explain.registry import EXPLAINERS
from storage.db import Database

DEMO_NAME = "credit-demo"
DEMO_VERSION = "1"
RICH_METHODS = ("shap", "lime", "anchors", "counterfactuals")


def ensure_demo_model(services: Services) -> str:
    """Register the demo pipeline once; later runs reuse it (versions are immutable)."""
    from explain.artifacts import dump_skops
    from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline

    with services.db.unit_of_work(write=False) as uow:
        if uow.models.get(DEMO_NAME, DEMO_VERSION) is not None:
            return f"{DEMO_NAME}@{DEMO_VERSION}"
    print("training the demo credit pipeline (numeric + string categorical features)...", flush=True)
    pipeline = train_credit_pipeline(seed=0)
    spec = credit_spec()
    background, _ = make_credit_frame(100, seed=1)
    manifest = ManifestIn(
        name=DEMO_NAME,
        version=DEMO_VERSION,
        task="binary",
        class_labels=list(spec.class_labels),
        positive_class=spec.positive_class,
        features=[FeatureIn(**f.to_dict()) for f in spec.features],
        background=cast(list[dict[str, Any]], background.to_dict(orient="records")),
        explainers=ExplainersIn(default_methods=["shap"]),
        metadata={"owner": "demo", "training_data": "synthetic credit applications (explain.samples)"},
    )
    register_model(services, manifest=manifest, artifact=dump_skops(pipeline))
    return f"{DEMO_NAME}@{DEMO_VERSION}"


def log_decisions(services: Services, model: str, n: int, *, seed: int) -> list[str]:
    from explain.samples import make_credit_frame

    frame, _ = make_credit_frame(n, seed=seed)
    run = uuid.uuid4().hex[:6]
    rich = [m for m in RICH_METHODS if m in EXPLAINERS]
    ids: list[str] = []
    batch: list[DecisionCreate] = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        decision_id = f"app-{run}-{i:04d}"
        batch.append(
            DecisionCreate(
                decision_id=decision_id,
                model=model,
                inputs=cast(dict[str, Any], row),
                subject_ref=f"applicant-{run}-{i % 97:03d}",
                explain=cast(Any, rich) if i < 5 else None,
            )
        )
        ids.append(decision_id)
        if len(batch) == 50:
            record_decisions(services, batch, path="decisions")
            batch = []
    if batch:
        record_decisions(services, batch, path="decisions")
    return ids


def demo_keys(services: Services) -> tuple[str, str]:
    """A fresh admin and compliance key for this run (the operator at the shell mints them)."""
    from api.services.access import create_key, local_principal

    operator = local_principal()
    admin = create_key(services, owner="demo admin", role="admin", by=operator)
    compliance = create_key(services, owner="demo compliance officer", role="compliance", by=operator)
    return admin.secret, compliance.secret


def wait_for_jobs(services: Services, *, total: int) -> float:
    """Block with a progress bar until no job is queued or running; returns seconds taken."""
    started = time.monotonic()
    with tqdm(total=total, unit="job", desc="explaining", file=sys.stdout) as bar:
        while True:
            with services.db.unit_of_work(write=False) as uow:
                depth = uow.jobs.depth()
            bar.n = total - min(depth, total)
            bar.refresh()
            if depth == 0:
                return time.monotonic() - started
            time.sleep(0.2)


def run_demo(settings: Settings, *, decisions: int, serve: bool, host: str, port: int) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.effective_database_url)
    db.upgrade()
    db.dispose()
    services = build_services(settings)
    model = ensure_demo_model(services)
    with services.db.unit_of_work(write=False) as uow:
        before = uow.jobs.depth()
    pool = LocalWorkerPool(services, threads=max(1, settings.workers), name="demo")
    from api.services.models import resolve_model

    services.models.get(resolve_model(services, model, field="model"))  # load the artifact before timing
    print(f"logging {decisions} decisions against {model}...", flush=True)
    t0 = time.monotonic()
    ids = log_decisions(services, model, decisions, seed=int(time.time()) % 100_000)
    record_seconds = time.monotonic() - t0
    with services.db.unit_of_work(write=False) as uow:
        queued = uow.jobs.depth()
    pool.start()
    explain_seconds = wait_for_jobs(services, total=queued)
    pool.stop()
    explained = queued - before
    from api.services.checkpoints import publish_now

    checkpoint = publish_now(services)
    print(
        f"recorded {len(ids)} decisions in {record_seconds:.1f}s ({len(ids) / record_seconds:,.0f}/s); "
        f"explained {explained} jobs in {explain_seconds:.1f}s "
        f"({explained / max(explain_seconds, 1e-9):,.1f} explanations/s with {len(pool.runners)} threads)"
    )
    if checkpoint is not None:
        print(f"signed checkpoint at tree size {checkpoint.tree_size} (key {checkpoint.key_id})")
    base = f"http://{host}:{port}"
    admin, compliance = demo_keys(services)
    print("\nAPI keys for this demo (shown once; only their SHA-256 is stored):")
    print(f"  admin       {admin}")
    print(f"  compliance  {compliance}")
    print(f"\nReviewer pages: {base}/review — sign in with the compliance key and state a purpose")
    print("  (search, dossiers, export bundles); the admin key also opens the access log at /review/access")
    auth = f"-H 'Authorization: Bearer {compliance}' -H 'X-Rationale-Purpose: trying the demo'"
    print("\nTry:")
    print(f"  curl -s {auth} {base}/v1/decisions/{ids[0]} | python3 -m json.tool")
    print(f"  curl -s {auth} '{base}/v1/decisions?model={model}&limit=5' | python3 -m json.tool")
    admin_auth = f"-H 'Authorization: Bearer {admin}'"
    print(f"  curl -s {admin_auth} '{base}/v1/access?decision_id={ids[0]}' | python3 -m json.tool")
    print(f"  curl -s {admin_auth} {base}/v1/models/{model.replace('@', '/versions/')}")
    print(f"  curl -s {base}/healthz")
    print(f"  curl -s {base}/v1/ledger/checkpoint -H 'accept: text/plain'")
    print(f"  curl -s '{base}/v1/ledger/proofs/inclusion?index=1'")
    print("  .venv/bin/rationale verify   # recompute every leaf hash and the root\n")
    if not serve:
        services.close()
        return 0
    import uvicorn

    from api.app import create_app
    from api.cli import is_loopback

    if settings.auth == "off" and not is_loopback(host):
        print(f"refusing to serve on {host} with access control off (RATIONALE_AUTH=off)", file=sys.stderr)
        services.close()
        return 2
    app = create_app(settings, services=services)
    print(f"serving on {base} (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    services.close()
    return 0
