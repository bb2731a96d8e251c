"""A real ``rationale serve`` in a subprocess (SQLite, one explanation thread) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a served instance shared by the client's tests (each uses its own model names)."""
    data = tmp_path_factory.mktemp("served") / "data"
    env = {
        **os.environ,
        "RATIONALE_DATA_DIR": str(data),
        "RATIONALE_DATABASE_URL": f"sqlite:///{data.parent / 'served.db'}",
        "RATIONALE_WORKERS": "1",
        "RATIONALE_EXPLAIN_PROCESSES": "0",
        "RATIONALE_GC_FREEZE": "false",
        "RATIONALE_ENVIRONMENT": "test",
        "RATIONALE_ORIGIN": "rationale.test/served",
    }
    root = Path(__file__).resolve().parents[2]
    cli = [sys.executable, "-m", "api.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, cwd=root, check=True, capture_output=True, timeout=120)
    created = subprocess.run(
        [*cli, "access", "create", "--owner", "notebook", "--role", "data_scientist"],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rk_"), created.stdout
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RATIONALE_API_KEY", key)  # the client's default key (the walk-through names none)
    port = free_port()
    log = open(data.parent / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data.parent / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()
        monkeypatch.undo()
