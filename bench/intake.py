"""Single-decision intake: one decision per POST over keep-alive HTTP from 1, 4 and 16 clients, in one run,
against a real `rationale serve` process on SQLite and on PostgreSQL, side by side with the floor: a bare
FastAPI endpoint (uvicorn, its own process) doing the same request validation, schema check and predict with
no recording. Rate in decisions/s, p50 and p99 latency; the load average is printed with the table, because
the machine may be shared.

    .venv/bin/python bench/intake.py [--seconds 4] [--clients 1,4,16]

Model: a 5-feature gradient-boosted classifier (100 trees, depth 3), no explanation requested (``explain``:
[]), plain small decisions. Each client is a thread with one persistent HTTP/1.1 connection (http.client, the
lightest client, so that the clients take as little of the shared CPU as possible).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling benches import
import throughput as _throughput

POSTGRES_ADMIN = os.environ.get("RATIONALE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FEATURES = ("x0", "x1", "x2", "x3", "x4")


def model_and_manifest() -> tuple[bytes, dict[str, Any], list[dict[str, float]]]:
    """The model of issue #17's measurements: 5 numeric features, GBM with 100 trees of depth 3."""
    from sklearn.ensemble import GradientBoostingClassifier

    from explain.artifacts import dump_skops

    rng = np.random.default_rng(0)
    x = np.round(rng.normal(0, 1, (2000, len(FEATURES))), 4)
    y = np.where(x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3] + rng.normal(0, 0.5, len(x)) > 0, "yes", "no")
    import pandas as pd

    frame = pd.DataFrame(x, columns=list(FEATURES))
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(frame, y)
    manifest = {
        "name": "gbm5",
        "version": "1",
        "task": "binary",
        "class_labels": ["no", "yes"],
        "features": [{"name": f, "type": "number", "minimum": -100, "maximum": 100} for f in FEATURES],
        "background": frame.head(50).to_dict(orient="records"),
        "explainers": {"default_methods": []},
    }
    rows = frame.sample(500, random_state=1).to_dict(orient="records")
    return dump_skops(model), manifest, rows


# a free port, a fresh migrated database, and a key minted in it: the same set-up as bench/throughput.py
_free_port = _throughput._free_port
_database = _throughput._database


def floor_app(artifact: bytes, manifest: dict[str, Any]) -> FastAPI:
    """The same validation (request model, feature schema) and predict as Rationale, and nothing recorded."""
    from api.schemas import DecisionCreate
    from explain.artifacts import load_predictor
    from explain.predictor import frame_from_rows
    from explain.schema import ModelSpec

    spec = ModelSpec.from_dict(manifest)
    predictor = load_predictor(artifact, format="skops", spec=spec, trust_pickle=False)
    app = FastAPI()

    @app.post("/v1/decisions")
    async def decide(request: Request) -> JSONResponse:
        item = DecisionCreate.model_validate_json(await request.body())
        clean = spec.validate_inputs(item.inputs, "inputs")
        [output] = predictor.predict(frame_from_rows(spec, [clean]))
        return JSONResponse({"decisions": [{"decision_id": item.decision_id, "output": output}]}, status_code=201)

    return app


def _serve_floor(artifact_path: str, manifest_path: str, port: int) -> None:
    import uvicorn

    artifact = Path(artifact_path).read_bytes()
    manifest = json.loads(Path(manifest_path).read_text())
    uvicorn.run(floor_app(artifact, manifest), host="127.0.0.1", port=port, log_level="warning")


def _wait_healthy(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(900):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not start")


SERVED: dict[int, tuple[str, Path]] = {}  # port -> (database URL, data dir) of a `rationale serve` target


_ingest_key = _throughput._data_scientist_key


def _register(port: int, artifact: bytes, manifest: dict[str, Any], headers: dict[str, str]) -> None:
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=headers) as client:
        resp = client.post(
            "/v1/models", data={"manifest": json.dumps(manifest)}, files={"artifact": ("m.skops", artifact)}
        )
        assert resp.status_code == 201, resp.text


def drive(
    port: int,
    rows: list[dict[str, float]],
    *,
    clients: int,
    seconds: float,
    tag: str,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """``clients`` threads, each POSTing one decision at a time over its own keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    sent = headers or {}

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = latencies[c]
        start_gate.wait()
        k = 0
        while True:
            body = json.dumps(
                {
                    "decision_id": f"{tag}-{c}-{k}",
                    "model": "gbm5@1",
                    "inputs": rows[(c * 7919 + k) % len(rows)],
                    "explain": [],
                }
            ).encode()
            began = time.perf_counter()
            if began >= stop_at[0]:
                break
            conn.request("POST", "/v1/decisions", body=body, headers={"Content-Type": "application/json", **sent})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 201:
                errors.append(f"{resp.status} {answer[:300]!r}")
                break
            mine.append(time.perf_counter() - began)
            k += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[:3]}")
    flat = np.array([x for part in latencies for x in part])
    return {
        "rate": len(flat) / elapsed,
        "p50": float(np.percentile(flat, 50)) * 1000,
        "p99": float(np.percentile(flat, 99)) * 1000,
        "n": float(len(flat)),
    }


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def run(seconds: float, client_counts: list[int]) -> list[tuple[str, int, dict[str, float]]]:
    artifact, manifest, rows = model_and_manifest()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "m.skops").write_bytes(artifact)
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    results: list[tuple[str, int, dict[str, float]]] = []
    targets: list[tuple[str, Callable[[int], subprocess.Popen[bytes]], Callable[[], None]]] = []

    def floor(port: int) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-floor",
            str(port),
            str(tmp / "m.skops"),
            str(tmp / "manifest.json"),
        ]
        return _start(command, dict(os.environ))

    targets.append(("floor (validate + predict, no recording)", floor, lambda: None))
    for database in ("sqlite", "postgresql"):
        url, drop = _database(database, tmp)

        def serve(port: int, url: str = url, database: str = database) -> subprocess.Popen[bytes]:
            env = {
                **os.environ,
                "RATIONALE_DATABASE_URL": url,
                "RATIONALE_DATA_DIR": str(tmp / f"data-{database}"),
                "RATIONALE_WORKERS": "0",
            }
            SERVED[port] = (url, tmp / f"data-{database}")
            return _start([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env)

        targets.append((f"rationale serve, {'SQLite' if database == 'sqlite' else 'PostgreSQL'}", serve, drop))

    for label, starter, drop in targets:
        port = _free_port()
        proc = starter(port)
        try:
            _wait_healthy(port, "/healthz" if "serve" in label else "/docs", proc)
            headers: dict[str, str] = {}
            if "serve" in label:
                headers = {"Authorization": f"Bearer {_ingest_key(*SERVED[port])}"}
                _register(port, artifact, manifest, headers)
            drive(port, rows, clients=4, seconds=min(1.0, seconds), tag="warm", headers=headers)  # pools warm
            for clients in client_counts:
                figures = drive(port, rows, clients=clients, seconds=seconds, tag=f"c{clients}", headers=headers)
                results.append((label, clients, figures))
        finally:
            _stop(proc)
            drop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per row of the table")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--serve-floor", nargs=3, metavar=("PORT", "ARTIFACT", "MANIFEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        port, artifact, manifest = args.serve_floor
        _serve_floor(artifact, manifest, int(port))
        return
    load_before = os.getloadavg()
    results = run(args.seconds, [int(c) for c in args.clients.split(",")])
    load_after = os.getloadavg()
    print(
        f"single-decision POSTs over keep-alive HTTP ({os.cpu_count()} cores; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f}/{load_after[1]:.2f} (1/5 min) after; "
        f"{args.seconds:g} s per row)"
    )
    print(f"| {'target':<42} | clients | decisions/s | p50 ms | p99 ms |")
    print(f"|{'-' * 44}|---------|-------------|--------|--------|")
    for label, clients, r in results:
        print(f"| {label:<42} | {clients:>7} | {r['rate']:>11,.0f} | {r['p50']:>6.1f} | {r['p99']:>6.1f} |")


if __name__ == "__main__":
    main()
