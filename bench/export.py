"""Export time, export memory and offline-verification time for 1,000, 10,000 and 100,000 decisions, in one run.

    .venv/bin/python bench/export.py [--sizes 1000,10000,100000]

Decisions are recorded through the service layer on SQLite (without explanations, so the run measures the
export: selection, proofs, JSONL/Parquet, reports, zip), exported by `rationale export` in its own process
(its wall time and peak RSS are reported: a peak that does not grow with the export is the "bounded memory"
claim, measured), then the bundle is checked — every view regenerated from the entries — by its own verify.py
in a bare Python and by `rationale verify --bundle`, both with the deployment's verifier key pinned (--key).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from api.container import build_services
from api.schemas import DecisionCreate
from api.services.decisions import record_decisions
from api.services.models import register_model
from api.settings import Settings
from audit.note import verifier_key
from explain.artifacts import dump_skops
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline
from storage.db import Database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    from api.schemas import FeatureIn, ManifestIn

    spec = credit_spec()
    artifact = dump_skops(train_credit_pipeline(seed=0, n=1500))
    background, _ = make_credit_frame(50, seed=7)
    print(
        f"{'decisions':>10}{'record s':>10}{'export s':>10}{'export RSS MB':>14}{'bundle MB':>11}"
        f"{'verify.py s':>13}{'our verify s':>14}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp())
        settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp}/bench.db", workers=0)
        db = Database.from_url(settings.effective_database_url)
        db.upgrade()
        db.dispose()
        services = build_services(settings)
        manifest = ManifestIn(
            name="credit",
            version="1",
            task="binary",
            class_labels=list(spec.class_labels),
            features=[FeatureIn(**f.to_dict()) for f in spec.features],
            background=background.to_dict(orient="records"),
        )  # type: ignore[arg-type]
        register_model(services, manifest=manifest, artifact=artifact)
        rows, _ = make_credit_frame(size, seed=1)
        records = rows.to_dict(orient="records")
        started = time.perf_counter()
        for start in range(0, size, 1000):
            batch = [
                DecisionCreate(decision_id=f"d-{i}", model="credit@1", inputs=r, explain=[])  # type: ignore[arg-type]
                for i, r in enumerate(records[start : start + 1000], start)
            ]
            record_decisions(services, batch, path="decisions")
        recorded = time.perf_counter() - started
        bundle = tmp / "bundle.zip"
        env = {**os.environ, "RATIONALE_DATA_DIR": str(tmp), "RATIONALE_DATABASE_URL": settings.effective_database_url}
        command = [sys.executable, "-m", "api.cli", "export", "--out", str(bundle), "--model", "credit@1", "--quiet"]
        exported, peak_mb = _run_measured(command, env)
        active = services.keyring.active()
        pinned = ["--key", verifier_key(active.name, active.public_key)]  # the regulator pins the deployment's key
        script = tmp / "verify.py"
        with zipfile.ZipFile(bundle) as z:
            script.write_bytes(z.read("verify.py"))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", str(script), *pinned, str(bundle)], check=True, capture_output=True)
        offline = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "api.cli", "verify", "--bundle", str(bundle), "--quiet", *pinned],
            check=True,
            capture_output=True,
        )
        ours = time.perf_counter() - started
        services.close()
        print(
            f"{size:>10,}{recorded:>10.1f}{exported:>10.1f}{peak_mb:>14,.0f}{bundle.stat().st_size / 1e6:>11.1f}"
            f"{offline:>13.1f}{ours:>14.1f}"
        )


def _run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {child.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024  # Linux reports kilobytes


if __name__ == "__main__":
    main()
