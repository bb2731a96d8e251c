"""Issue #15 item 4: settings are checked at start — a clear message and exit code 2, never a later traceback.

Each case runs the real ``rationale`` command in a child process with one bad RATIONALE_* variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BAD = [
    ("RATIONALE_ORIGIN", "acme bank+eu/ledger"),
    ("RATIONALE_ORIGIN", "acme+eu/ledger"),
    ("RATIONALE_ORIGIN", "acme\u00a0bank/ledger"),
    ("RATIONALE_ORIGIN", ""),
    ("RATIONALE_SIGNING_KEY_FILE", "/nonexistent/key.pem"),
    ("RATIONALE_SIGNING_KEY_FILE", "{not_a_key}"),
    ("RATIONALE_DATABASE_URL", "not a url"),
    ("RATIONALE_DATABASE_URL", "mysql://db/x"),
    ("RATIONALE_BROKER_URL", "redis://[::1"),
    ("RATIONALE_PORT", "70000"),
    ("RATIONALE_PORT", "0"),
    ("RATIONALE_WORKERS", "-1"),
    ("RATIONALE_MAX_BODY_BYTES", "0"),
    ("RATIONALE_MAX_UPLOAD_BYTES", "12abc"),
    ("RATIONALE_ALLOW_PICKLE", "maybe"),
    ("RATIONALE_SKOPS_TRUSTED_TYPES", "sklearn."),
]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.parametrize(("variable", "value"), BAD)
def test_a_bad_setting_stops_the_start_with_exit_code_2(tmp_path, variable, value):
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATIONALE_")}
    env["RATIONALE_DATA_DIR"] = str(tmp_path / "data")
    env[variable] = value.replace("{not_a_key}", str(not_a_key))
    done = _run(env, "checkpoint")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert variable in done.stderr, done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_a_good_origin_with_a_path_still_checkpoints(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATIONALE_")}
    env["RATIONALE_DATA_DIR"] = str(tmp_path / "data")
    env["RATIONALE_ORIGIN"] = "bank.example/eu-ledger"
    assert _run(env, "db", "upgrade").returncode == 0
    done = _run(env, "checkpoint")
    assert done.returncode == 0, done.stderr
