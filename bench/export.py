"""Export and offline-verification time for 10,000 and 100,000 decisions, in one run.

    .venv/bin/python bench/export.py [--sizes 10000,100000]

Decisions are recorded through the service layer on SQLite (without explanations, so the run measures the
export: selection, proofs, JSONL/Parquet, reports, zip), then the bundle is checked by its own verify.py
in a bare Python and by `rationale verify --bundle`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from api.container import build_services
from api.schemas import DecisionCreate
from api.services.decisions import record_decisions
from api.services.exports import ExportFilter, create_export
from api.services.models import register_model
from api.settings import Settings
from explain.artifacts import dump_skops
from explain.samples import credit_spec, make_credit_frame, train_credit_pipeline
from storage.db import Database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    from api.schemas import FeatureIn, ManifestIn

    spec = credit_spec()
    artifact = dump_skops(train_credit_pipeline(seed=0, n=1500))
    background, _ = make_credit_frame(50, seed=7)
    print(f"{'decisions':>10}{'record s':>10}{'export s':>10}{'bundle MB':>11}{'verify.py s':>13}{'our verify s':>14}")
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
        started = time.perf_counter()
        export = create_export(services, flt=ExportFilter(model="credit@1"))
        exported = time.perf_counter() - started
        script = tmp / "verify.py"
        with zipfile.ZipFile(export.bundle_path) as z:
            script.write_bytes(z.read("verify.py"))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", str(script), export.bundle_path], check=True, capture_output=True)
        offline = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "api.cli", "verify", "--bundle", export.bundle_path, "--quiet"],
            check=True,
            capture_output=True,
        )
        ours = time.perf_counter() - started
        services.close()
        print(f"{size:>10,}{recorded:>10.1f}{exported:>10.1f}{export.size / 1e6:>11.1f}{offline:>13.1f}{ours:>14.1f}")


if __name__ == "__main__":
    main()
