"""Witnessed checkpoints end to end, as separate processes over loopback HTTP with separate databases:
a log (`rationale serve`, on SQLite and on PostgreSQL) and two `rationale witness serve` (each its own
SQLite database and key). Checkpoints get cosigned; an insider holding the log's signing key cannot get a
fork or a smaller tree cosigned, also after a witness restart; the log keeps serving while a witness is
down and says so in /metrics and /healthz; a verifier requiring 2 witnesses rejects a checkpoint that
only one cosigned."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.clock import utc_now
from api.container import build_services
from api.services.checkpoints import publish_now
from api.services.witnessing import PushError, WitnessPusher, check_ledger_quorum, parse_witness_keys
from api.settings import Settings
from audit.cosignature import check_quorum, parse_verifier_key
from audit.entry import EntryDraft
from audit.keys import Keyring
from audit.merkle import consistency_path, leaf_hash, root_from_leaves
from audit.note import checkpoint_text, open_note, sign_note, verifier_key
from audit.port import StoredCheckpoint
from audit.witness import format_add_checkpoint, origin_hash
from tests.api.helpers import applicant_rows, auth_headers, credit_manifest

ORIGIN = "rationale.test/witnessed"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll until the state changes (never a fixed sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


@dataclass
class Proc:
    args: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    headers: dict[str, str] | None = None  # an admin key of the log's database (access control is on)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proc:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
        wait_for(self._healthy, f"{self.args[3]} on port {self.port}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def witness_proc(tmp: Path, name: str, log_vkey: str) -> Proc:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "api.cli",
        "witness",
        "serve",
        "--log",
        log_vkey,
        "--name",
        name,
        "--data-dir",
        str(tmp / name.replace("/", "_")),
        "--port",
        str(port),
    ]
    return Proc(args, dict(os.environ), port, tmp / f"{name.replace('/', '_')}.log")


def witness_vkey(proc: Proc) -> str:
    return str(httpx.get(f"{proc.url}/healthz", timeout=5).json()["verifier_key"])


@pytest.fixture
def log_keyring(tmp_path: Path) -> tuple[Keyring, str]:
    """The log's signing key, made before the log starts so the witnesses can be configured with it."""
    ring = Keyring(tmp_path / "log" / "keys", name=ORIGIN, clock=utc_now)
    key = ring.ensure()
    return ring, verifier_key(key.name, key.public_key)


@pytest.fixture
def witnesses(tmp_path: Path, log_keyring: tuple[Keyring, str]) -> Iterator[list[Proc]]:
    procs = [witness_proc(tmp_path, f"auditor{i}.example/witness", log_keyring[1]) for i in (1, 2)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def log_settings(tmp_path: Path, db_url: str, **extra: Any) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "log",
        database_url=db_url,
        workers=0,
        origin=ORIGIN,
        gc_freeze=False,
        **extra,
    )


def start_log(tmp_path: Path, db_url: str, witnesses: list[Proc], vkeys: list[str], **settings: str) -> Proc:
    Settings(database_url=db_url)  # the configuration parses
    port = free_port()
    env = {
        **os.environ,
        "RATIONALE_DATA_DIR": str(tmp_path / "log"),
        "RATIONALE_DATABASE_URL": db_url,
        "RATIONALE_ORIGIN": ORIGIN,
        "RATIONALE_CHECKPOINT_EVERY_ENTRIES": "1",
        "RATIONALE_CHECKPOINT_EVERY_SECONDS": "0.2",
        "RATIONALE_WITNESSES": ",".join(f"{k} {w.url}" for k, w in zip(vkeys, witnesses, strict=True)),
        "RATIONALE_WITNESS_POLL_SECONDS": "0.1",
        "RATIONALE_WITNESS_TIMEOUT_SECONDS": "2",
        "RATIONALE_GC_FREEZE": "false",
        **{f"RATIONALE_{name.upper()}": value for name, value in settings.items()},
    }
    args = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "0"]
    log = Proc(args, env, port, tmp_path / "log.log").start()
    services = build_services(log_settings(tmp_path, db_url))
    try:
        log.headers = auth_headers(services)
    finally:
        services.close()
    return log


def register_over_http(log: Proc, artifact: bytes) -> None:
    resp = httpx.post(
        f"{log.url}/v1/models",
        headers=log.headers,
        data={"manifest": json.dumps(credit_manifest())},
        files={"artifact": ("model.skops", artifact)},
        timeout=120,
    )
    assert resp.status_code == 201, resp.text


def latest_checkpoint(log: Proc) -> dict[str, Any]:
    resp = httpx.get(f"{log.url}/v1/ledger/checkpoint", timeout=5)
    return resp.json() if resp.status_code == 200 else {}


def cosigned(log: Proc, count: int) -> dict[str, Any]:
    """The served checkpoint once it covers the whole ledger and carries ``count`` cosignatures."""
    body = latest_checkpoint(log)
    size = httpx.get(f"{log.url}/healthz", timeout=5).json()["ledger_size"]
    return body if body and body["tree_size"] == size and len(body["cosignatures"]) == count else {}


def key_args(vkeys: list[str]) -> list[str]:
    return [arg for k in vkeys for arg in ("--witness-key", k)]


def run_verify(db_url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RATIONALE_DATA_DIR": str(tmp_path / "log"),
        "RATIONALE_DATABASE_URL": db_url,
        "RATIONALE_ORIGIN": ORIGIN,
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "verify", "--quiet", *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def post_decisions(log: Proc, prefix: str, n: int) -> None:
    rows = applicant_rows(n, seed=len(prefix))
    decisions = [
        {"decision_id": f"{prefix}-{i}", "model": "credit@1", "inputs": r, "explain": []} for i, r in enumerate(rows)
    ]
    resp = httpx.post(f"{log.url}/v1/decisions", json={"decisions": decisions}, headers=log.headers, timeout=60)
    assert resp.status_code == 201, resp.text


def metric(log: Proc, name: str, witness: str) -> float:
    text = httpx.get(f"{log.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{witness="{witness}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {witness} not in /metrics")


def leaf_hashes(db_url: str, tmp_path: Path, size: int) -> list[bytes]:
    services = build_services(log_settings(tmp_path, db_url))
    try:
        with services.db.unit_of_work(write=False) as uow:
            return uow.ledger.leaf_hashes(0, size)
    finally:
        services.close()


def forged(ring: Keyring, leaves: list[bytes]) -> str:
    """What an insider with the log's real signing key can sign: any tree at all."""
    text = checkpoint_text(ORIGIN, len(leaves), root_from_leaves(leaves))
    return sign_note(text, name=ORIGIN, private_key=ring.private())


def proof_in(leaves: list[bytes], first: int) -> list[bytes]:
    if first in (0, len(leaves)):
        return []
    return consistency_path(first, len(leaves), lambda s, e: root_from_leaves(leaves[s:e]))


@pytest.mark.heavy
def test_witnessed_log_as_processes(tmp_path, db_url, log_keyring, witnesses, credit_artifact):
    ring, log_vkey = log_keyring
    w1, w2 = witnesses
    vkeys = [witness_vkey(w) for w in witnesses]
    log = start_log(tmp_path, db_url, witnesses, vkeys)
    try:
        register_over_http(log, credit_artifact)
        post_decisions(log, "a", 5)

        # 1. the log's checkpoint gets cosigned by both witnesses and is served cosigned
        served = wait_for(lambda: cosigned(log, 2), "both cosignatures on a checkpoint of the whole ledger")
        n = served["tree_size"]
        note = httpx.get(f"{log.url}/v1/ledger/checkpoint", headers={"accept": "text/plain"}, timeout=5).text
        assert note == served["note"]
        log_key = parse_verifier_key(log_vkey)
        assert open_note(note, keys=[(log_key.name, log_key.public_key)]).key_name == ORIGIN
        assert len(check_quorum(note, keys=parse_witness_keys(vkeys), quorum=2)) == 2
        monitored = httpx.get(f"{w1.url}/{origin_hash(ORIGIN)}/checkpoint", timeout=5)
        assert monitored.status_code == 200 and monitored.text.startswith(note.split("\n\n")[0])
        assert run_verify(db_url, tmp_path, *key_args(vkeys), "--quorum", "2").returncode == 0

        # 2. an insider with the real signing key: forks of the same and larger size, and smaller trees
        leaves = leaf_hashes(db_url, tmp_path, n)
        for at_index in (0, n // 2, n - 1):
            same = list(leaves)
            same[at_index] = leaf_hash(b"rewritten history")
            larger = [*same, leaf_hash(b"more")]
            for fork in (same, larger):
                for witness in (w1, w2):
                    for sent in (proof_in(fork, n), proof_in([*leaves, leaf_hash(b"more")][: len(fork)], n)):
                        resp = httpx.post(
                            f"{witness.url}/add-checkpoint",
                            timeout=5,
                            content=format_add_checkpoint(n, sent, forged(ring, fork)),
                        )
                        assert resp.status_code == 422, resp.text
        smaller = leaves[: n - 1]
        assert (
            httpx.post(
                f"{w1.url}/add-checkpoint", content=format_add_checkpoint(n, [], forged(ring, smaller)), timeout=5
            ).status_code
            == 400
        )
        resp = httpx.post(
            f"{w1.url}/add-checkpoint", content=format_add_checkpoint(n - 1, [], forged(ring, smaller)), timeout=5
        )
        assert resp.status_code == 409 and resp.text == f"{n}\n"
        assert resp.headers["content-type"].startswith("text/x.tlog.size")
        impostor = sign_note(
            checkpoint_text(ORIGIN, n + 1, b"\x00" * 32), name=ORIGIN, private_key=Ed25519PrivateKey.generate()
        )
        assert (
            httpx.post(
                f"{w1.url}/add-checkpoint", content=format_add_checkpoint(n, [], impostor), timeout=5
            ).status_code
            == 403
        )

        # ... and the same after a witness restart: its state and key come back from its own files
        w1.stop()
        w1.start()
        assert witness_vkey(w1) == vkeys[0]
        fork = list(leaves)
        fork[0] = leaf_hash(b"after restart")
        resp = httpx.post(
            f"{w1.url}/add-checkpoint", content=format_add_checkpoint(n, [], forged(ring, fork)), timeout=5
        )
        assert resp.status_code == 422
        resp = httpx.post(
            f"{w1.url}/add-checkpoint", content=format_add_checkpoint(0, [], forged(ring, smaller)), timeout=5
        )
        assert resp.status_code == 409 and resp.text == f"{n}\n"

        # 3. witness 2 goes down: decisions are still recorded, checkpoints still published and cosigned by
        # witness 1, and the log says a witness is down (degraded, still 200) in /healthz and /metrics
        w2.stop()
        post_decisions(log, "b", 3)
        later = wait_for(lambda: cosigned(log, 1), "a checkpoint of the whole ledger cosigned by witness 1")
        assert later["tree_size"] > n
        assert [c["witness"] for c in later["cosignatures"]] == [vkeys[0]]
        health = wait_for(
            lambda: (h := httpx.get(f"{log.url}/healthz", timeout=5)).json()["status"] == "degraded" and h,
            "/healthz degraded",
        )
        assert health.status_code == 200
        states = {w["verifier_key"]: w for w in health.json()["witnesses"]}
        assert states[vkeys[1]]["state"] == "down" and states[vkeys[1]]["last_error"]
        assert states[vkeys[0]]["state"] == "up" and states[vkeys[0]]["last_cosigned_size"] >= later["tree_size"]
        assert metric(log, "rationale_witness_up", "auditor2.example/witness") == 0
        assert metric(log, "rationale_witness_failures_total", "auditor2.example/witness") >= 1
        assert metric(log, "rationale_witness_up", "auditor1.example/witness") == 1
        assert metric(log, "rationale_witness_cosigned_size", "auditor2.example/witness") == n

        # 4. a verifier requiring both witnesses rejects the checkpoint only witness 1 cosigned
        both = key_args(vkeys)
        rejected = run_verify(db_url, tmp_path, *both, "--quorum", "2")
        assert rejected.returncode == 1, rejected.stdout + rejected.stderr
        assert "1 of the required 2" in rejected.stderr
        assert run_verify(db_url, tmp_path, *both, "--quorum", "1").returncode == 0

        # 5. witness 2 comes back and catches up from the size it last cosigned; the quorum holds again
        w2.start()
        wait_for(lambda: httpx.get(f"{log.url}/healthz", timeout=5).json()["status"] == "ok", "/healthz ok again")
        final = wait_for(lambda: cosigned(log, 2), "witness 2 catching up")
        assert final["tree_size"] >= later["tree_size"]
        assert run_verify(db_url, tmp_path, *both, "--quorum", "2").returncode == 0
    finally:
        log.stop()


def test_pusher_follows_a_409_to_the_witness_size(tmp_path, db_url, log_keyring, witnesses):
    """The log thinks witness 1 never cosigned; the witness says 409 with its size; the pusher retries
    from that size with a consistency proof and stores the cosignature."""
    w1, _w2 = witnesses
    settings = log_settings(tmp_path, db_url, witnesses=f"{witness_vkey(w1)} {w1.url}")
    services = build_services(settings)
    try:
        with services.db.unit_of_work() as uow:
            services.ledger.append(uow.ledger, [EntryDraft("t", {"n": i}) for i in range(6)])
        first = publish_now(services)
        assert first is not None
        # someone else (say, a second replica) pushed this checkpoint first
        assert (
            httpx.post(
                f"{w1.url}/add-checkpoint", content=format_add_checkpoint(0, [], first.note), timeout=5
            ).status_code
            == 200
        )
        with services.db.unit_of_work() as uow:
            services.ledger.append(uow.ledger, [EntryDraft("t", {"n": i}) for i in range(6, 11)])
        second = publish_now(services)
        assert second is not None and second.tree_size == 11
        pusher = WitnessPusher(services)
        state = next(iter(pusher.states.values()))
        assert state.last_cosigned_size == 0
        assert pusher.push_latest(state) is True
        assert state.last_cosigned_size == 11 and state.state == "up"
        keys = parse_witness_keys(witness_vkey(w1))
        assert check_ledger_quorum(services, keys=keys, quorum=1).ok
        assert pusher.push_latest(state) is False  # nothing new to push
    finally:
        services.close()


def test_a_forged_checkpoint_in_the_log_database_is_refused_and_reported(tmp_path, db_url, log_keyring, witnesses):
    """An insider with database write access and the signing key appends a checkpoint row for a rewritten
    tree: the pusher sends it, the witness refuses it (422), the log reports that witness down with the
    reason, and a verifier requiring that witness rejects the ledger."""
    ring, _ = log_keyring
    w1, _w2 = witnesses
    vkey = witness_vkey(w1)
    services = build_services(log_settings(tmp_path, db_url, witnesses=f"{vkey} {w1.url}"))
    try:
        with services.db.unit_of_work() as uow:
            services.ledger.append(uow.ledger, [EntryDraft("t", {"n": i}) for i in range(5)])
        assert publish_now(services) is not None
        pusher = WitnessPusher(services)
        state = next(iter(pusher.states.values()))
        assert pusher.push_latest(state) is True
        with services.db.unit_of_work() as uow:
            services.ledger.append(uow.ledger, [EntryDraft("t", {"n": i}) for i in range(5, 8)])
            leaves = uow.ledger.leaf_hashes(0, 8)
        leaves[2] = leaf_hash(b"rewritten")
        note = forged(ring, leaves)
        with services.db.unit_of_work() as uow:
            uow.ledger.append_checkpoint(
                StoredCheckpoint(
                    tree_size=8,
                    root_hash=root_from_leaves(leaves),
                    note=note,
                    key_id=ring.active().key_id,
                    published_at="2026-01-01T00:00:00Z",
                )
            )
        with pytest.raises(PushError, match="HTTP 422"):
            pusher.push_latest(state)
        assert state.state == "down" and "422" in (state.last_error or "")
        assert not check_ledger_quorum(services, keys=parse_witness_keys(vkey), quorum=1).ok
        monitored = httpx.get(f"{w1.url}/{origin_hash(ORIGIN)}/checkpoint", timeout=5).text
        assert monitored.split("\n")[1] == "5"  # the witness still vouches for the honest tree only
    finally:
        services.close()


def _bundle(log: Proc, tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    resp = httpx.post(f"{log.url}/v1/exports", json={"model": "credit@1"}, headers=log.headers, timeout=120)
    assert resp.status_code == 201, resp.text
    export = resp.json()
    data = httpx.get(f"{log.url}/v1/exports/{export['export_id']}/bundle", headers=log.headers, timeout=60).content
    path = tmp_path / name
    path.write_bytes(data)
    return path, export


def _forged_by_the_insider(path: Path, ring: Keyring, *, keep_cosignatures: bool) -> Path:
    """The operator flips a decision's output, regenerates every view and re-seals with the log's real key;
    the genuine cosignature lines are kept (now over another tree) or dropped."""
    from tests.api.bundle_forger import Forge
    from tests.api.test_bundle_forgery import flip_output

    forge = Forge.open(path.read_bytes())
    genuine_lines = forge.files["checkpoint.txt"].decode().split("\n\n")[1].splitlines()[1:]
    flip_output(forge, None)  # type: ignore[arg-type]  # the views are regenerated too
    forge.reseal(key=ring.private(), keys_json="keep")
    if keep_cosignatures:
        note = forge.files["checkpoint.txt"].decode() + "".join(line + "\n" for line in genuine_lines)
        forge.files["checkpoint.txt"] = note.encode()
    forged_path = path.with_name(f"forged-{keep_cosignatures}.zip")
    forged_path.write_bytes(forge.bytes())
    return forged_path


@pytest.mark.heavy
def test_a_bundle_carries_its_witnesses_cosignatures_and_an_insider_forgery_fails_the_quorum(
    tmp_path, db_url, log_keyring, witnesses, credit_artifact
):
    """Without witnesses, an operator holding the signing key can re-seal a bundle with a flipped decision and
    every view regenerated, and it verifies. With the witnesses pinned, it cannot: the witnesses cosigned only
    the real tree."""
    from tests.api.test_bundle_forgery import Answer, stdlib_verify

    ring, log_vkey = log_keyring
    w2 = witnesses[1]
    vkeys = [witness_vkey(w) for w in witnesses]
    log = start_log(tmp_path, db_url, witnesses, vkeys, export_witness_wait_seconds="3")
    try:
        register_over_http(log, credit_artifact)
        post_decisions(log, "a", 4)
        bundle, export = _bundle(log, tmp_path, "witnessed.zip")
        assert sorted(export["witnesses"]) == sorted(vkeys)
        pinned = ["--key", log_vkey, *key_args(vkeys)]
        assert stdlib_verify(bundle, [log_vkey]) == Answer(0, "bundle verified")
        result = _stdlib(bundle, pinned)
        assert result.returncode == 0, result.stdout
        assert "ok  witnesses: 2 of the required 2 pinned witnesses cosigned the checkpoint" in result.stdout
        ours = run_verify(db_url, tmp_path, "--bundle", str(bundle), "--key", log_vkey, *key_args(vkeys))
        assert ours.returncode == 0 and ours.stdout.strip().endswith("bundle verified"), ours.stdout + ours.stderr

        for keep in (False, True):
            forged_bundle = _forged_by_the_insider(bundle, ring, keep_cosignatures=keep)
            assert stdlib_verify(forged_bundle, [log_vkey]) == Answer(0, "bundle verified")  # the attack, unpinned
            answer = _stdlib(forged_bundle, pinned)
            assert answer.returncode == 1, answer.stdout
            reason = "does not verify" if keep else "0 of the required 2 pinned witnesses cosigned"
            assert reason in answer.stdout.strip().splitlines()[-1], answer.stdout

        # a witness down: the export waits its 3 s, then seals with the one cosignature it has
        w2.stop()
        post_decisions(log, "b", 2)
        wait_for(lambda: cosigned(log, 1), "the remaining witness cosigning the latest checkpoint")
        started = time.monotonic()
        partial, export = _bundle(log, tmp_path, "partial.zip")
        assert time.monotonic() - started >= 3
        assert export["witnesses"] == [vkeys[0]]
        assert _stdlib(partial, ["--key", log_vkey, *key_args(vkeys[:1])]).returncode == 0
        short = _stdlib(partial, pinned)
        assert short.returncode == 1 and "1 of the required 2" in short.stdout, short.stdout
        assert _stdlib(partial, [*pinned, "--quorum", "1"]).returncode == 0

        # `rationale export` with no `serve` up pushes its own checkpoint to the witnesses (one back from down)
        w2.start()
        log.stop()
        exported = subprocess.run(
            [sys.executable, "-m", "api.cli", "export", "--out", str(tmp_path / "cli.zip"), "--quiet"],
            env={
                **{k: v for k, v in log.env.items() if not k.startswith("RATIONALE_CHECKPOINT_EVERY")},
                "RATIONALE_EXPORT_WITNESS_WAIT_SECONDS": "30",
            },
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert exported.returncode == 0, exported.stderr
        assert all(f"cosigned by        {key}" in exported.stdout for key in vkeys), exported.stdout
        assert _stdlib(tmp_path / "cli.zip", pinned).returncode == 0
    finally:
        log.stop()


def _stdlib(path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT / "audit/bundle/assets/verify.py"), *args, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
