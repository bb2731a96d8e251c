"""The log's side of witnessing: push each new checkpoint to the configured witnesses, keep their
cosignatures, serve the cosigned note, report each witness's state, and check a verifier's quorum.

Pushing runs in one background thread per witness, reading the latest checkpoint from the database, so
decision intake never waits for a witness; a witness that is down is retried with a capped back-off and
reported (metrics, /healthz "degraded") while the log keeps serving.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import Counter, Gauge, Histogram

from audit.cosignature import (
    ALG_COSIGNATURE_V1,
    Cosignature,
    VerifierKey,
    add_signature_lines,
    check_quorum,
    find_cosignatures,
    parse_signature_line,
    parse_verifier_key,
    split_note,
)
from audit.entry import format_timestamp
from audit.errors import AuditError, QuorumError, SignatureError
from audit.port import LedgerStore, StoredCheckpoint
from audit.witness import MalformedRequestError, format_add_checkpoint, parse_size
from storage.cosignatures import CosignatureRepository, StoredCosignature
from storage.errors import ConflictError, StorageError

if TYPE_CHECKING:
    from api.container import Services

log = logging.getLogger("rationale.witnessing")

MAX_BACKOFF_SECONDS = 10.0
MAX_CONFLICT_RETRIES = 3


# -- configuration ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    key: VerifierKey
    url: str  # the witness's submission prefix; add-checkpoint is POSTed to <url>/add-checkpoint

    @property
    def name(self) -> str:
        return self.key.name


def parse_witnesses(text: str) -> list[WitnessEndpoint]:
    """``RATIONALE_WITNESSES``: ``<vkey> <URL>`` pairs separated by commas or newlines."""
    endpoints: list[WitnessEndpoint] = []
    for item in re.split(r"[,\n]", text):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2:
            raise ValueError(f"a witness is '<verifier key> <URL>', got {item.strip()!r}")
        try:
            key = parse_verifier_key(parts[0], alg=ALG_COSIGNATURE_V1)
        except SignatureError as exc:
            raise ValueError(f"witness key {parts[0]!r}: {exc}") from exc
        if not parts[1].startswith(("http://", "https://")):
            raise ValueError(f"witness URL {parts[1]!r} is not http(s)")
        endpoints.append(WitnessEndpoint(key=key, url=parts[1].rstrip("/")))
    if len({str(e.key) for e in endpoints}) != len(endpoints):
        raise ValueError("a witness key is listed twice")
    return endpoints


def parse_witness_keys(text: str | Sequence[str]) -> list[VerifierKey]:
    """Witness verifier keys (type 0x04) from a comma/whitespace-separated string or a list of strings."""
    items = re.split(r"[,\s]+", text) if isinstance(text, str) else list(text)
    keys: list[VerifierKey] = []
    for item in items:
        if item.strip():
            try:
                keys.append(parse_verifier_key(item, alg=ALG_COSIGNATURE_V1))
            except SignatureError as exc:
                raise ValueError(f"witness key {item!r}: {exc}") from exc
    return list({str(k): k for k in keys}.values())


# -- serving the cosigned note ---------------------------------------------------------------------------


def cosigned_note(
    services: Services, repo: CosignatureRepository, checkpoint: StoredCheckpoint
) -> tuple[str, list[Cosignature]]:
    """The checkpoint note with the stored cosignatures appended (log signature first, then witnesses).

    Only lines that verify with a configured witness key are served: a row an insider slipped into the
    table cannot make clients reject the note, and one from an unconfigured key is not vouched for.
    """
    keys = [e.key for e in parse_witnesses(services.settings.witnesses)]
    keys += parse_witness_keys(services.settings.witness_keys)
    body = split_note(checkpoint.note)[0]
    good: list[Cosignature] = []
    for row in repo.for_size(checkpoint.tree_size):
        try:
            good += find_cosignatures(body, [parse_signature_line(row.line)], keys)
        except SignatureError:
            log.error("stored cosignature for checkpoint %d does not verify: %s", checkpoint.tree_size, row.line)
    unique = list({str(c.key): c for c in good}.values())
    return add_signature_lines(checkpoint.note, [c.line for c in unique]), unique


def latest_witnessed(
    services: Services, ledger: LedgerStore, repo: CosignatureRepository, count: int
) -> tuple[StoredCheckpoint, str, list[Cosignature]] | None:
    """The latest checkpoint whose served note carries at least ``count`` verified cosignatures."""
    for size in repo.sizes_with_at_least(count):
        checkpoint = ledger.checkpoint_at(size)
        note, found = cosigned_note(services, repo, checkpoint)
        if len(found) >= count:
            return checkpoint, note, found
    return None


# -- pushing ------------------------------------------------------------------------------------------------


@dataclass
class WitnessState:
    endpoint: WitnessEndpoint
    state: str = "pending"  # "up" after a cosignature, "down" after a failure
    last_cosigned_size: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success_at: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.endpoint.name,
            "verifier_key": str(self.endpoint.key),
            "url": self.endpoint.url,
            "state": self.state,
            "last_cosigned_size": self.last_cosigned_size,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_success_at": self.last_success_at,
        }


class PushError(AuditError):
    """A witness did not cosign: unreachable, refused, or answered something that does not verify."""


class WitnessPusher:
    """One thread per configured witness pushes the latest checkpoint whenever the witness is behind."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.endpoints = parse_witnesses(services.settings.witnesses)
        self.states = {str(e.key): WitnessState(e) for e in self.endpoints}
        # one keep-alive client per witness thread (the protocol asks for keep-alive; no sharing across threads)
        self._clients = {key: httpx.Client(timeout=services.settings.witness_timeout_seconds) for key in self.states}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        registry = services.metrics.registry
        self.m_size = Gauge(
            "rationale_witness_cosigned_size",
            "Largest checkpoint size each witness cosigned",
            ["witness"],
            registry=registry,
        )
        self.m_up = Gauge(
            "rationale_witness_up",
            "1 when the last push to the witness succeeded, 0 when it failed",
            ["witness"],
            registry=registry,
        )
        self.m_failures = Counter(
            "rationale_witness_failures",
            "Pushes to a witness that did not give a cosignature",
            ["witness"],
            registry=registry,
        )
        self.m_seconds = Histogram(
            "rationale_witness_push_seconds",
            "add-checkpoint round trip, cosignature checked and stored",
            ["witness"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        with services.db.unit_of_work(write=False) as uow:
            sizes = CosignatureRepository(uow.session).last_sizes()
        for key, state in self.states.items():
            state.last_cosigned_size = sizes.get(key, 0)
            self.m_size.labels(state.endpoint.name).set(state.last_cosigned_size)
            self.m_up.labels(state.endpoint.name).set(0)
            self.m_failures.labels(state.endpoint.name)

    def start(self) -> None:
        for state in self.states.values():
            thread = threading.Thread(
                target=self._run, args=(state,), name=f"witness-{state.endpoint.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        for client in self._clients.values():
            client.close()

    def status(self) -> list[dict[str, Any]]:
        return [s.public() for s in self.states.values()]

    @property
    def degraded(self) -> bool:
        return any(s.state == "down" for s in self.states.values())

    def _run(self, state: WitnessState) -> None:
        poll = self.services.settings.witness_poll_seconds
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                self.push_latest(state)
                wait = poll
            except Exception as exc:  # never let the thread die; the log keeps serving
                wait = min(MAX_BACKOFF_SECONDS, poll * 2 ** min(state.consecutive_failures, 6))
                if isinstance(exc, StorageError):
                    log.warning("witness %s: the log's database is unavailable: %s", state.endpoint.name, exc)
                    wait = max(wait, 1.0)
                elif not isinstance(exc, (PushError, httpx.HTTPError)):
                    log.exception("witness %s: unexpected error", state.endpoint.name)

    def push_latest(self, state: WitnessState) -> bool:
        """Push the latest checkpoint if this witness has not cosigned it; True when a cosignature was stored."""
        with self.services.db.unit_of_work(write=False) as uow:
            checkpoint = uow.ledger.latest_checkpoint()
            have = bool(
                checkpoint
                and any(
                    r.witness_key == str(state.endpoint.key)
                    for r in CosignatureRepository(uow.session).for_size(checkpoint.tree_size)
                )
            )
        if checkpoint is None or have:
            return False
        with state.lock:
            started = time.perf_counter()
            try:
                self._push(state, checkpoint)
            except (PushError, httpx.HTTPError) as exc:
                message = str(exc) or type(exc).__name__
                if state.state != "down" or state.last_error != message:
                    log.warning(
                        "witness %s did not cosign checkpoint %d: %s",
                        state.endpoint.name,
                        checkpoint.tree_size,
                        message,
                    )
                state.state, state.last_error = "down", message
                state.failures += 1
                state.consecutive_failures += 1
                self.m_failures.labels(state.endpoint.name).inc()
                self.m_up.labels(state.endpoint.name).set(0)
                raise
            self.m_seconds.labels(state.endpoint.name).observe(time.perf_counter() - started)
            state.state, state.last_error, state.consecutive_failures = "up", None, 0
            state.last_cosigned_size = checkpoint.tree_size
            state.last_success_at = format_timestamp(self.services.clock())
            self.m_up.labels(state.endpoint.name).set(1)
            self.m_size.labels(state.endpoint.name).set(checkpoint.tree_size)
            return True

    def _push(self, state: WitnessState, checkpoint: StoredCheckpoint) -> None:
        endpoint, size = state.endpoint, checkpoint.tree_size
        old = state.last_cosigned_size
        for _ in range(MAX_CONFLICT_RETRIES):
            if old > size:
                raise PushError(
                    f"the witness has cosigned tree size {old}, beyond this log's latest checkpoint {size}: "
                    "the log was rolled back or forked"
                )
            proof: list[bytes] = []
            if 0 < old < size:
                with self.services.db.unit_of_work(write=False) as uow:
                    proof = self.services.ledger.consistency_proof(uow.ledger, first=old, second=size)
            response = self._clients[str(endpoint.key)].post(
                f"{endpoint.url}/add-checkpoint", content=format_add_checkpoint(old, proof, checkpoint.note)
            )
            if response.status_code == 409:
                try:
                    old = parse_size(response.content)
                except MalformedRequestError as exc:
                    raise PushError(f"409 with an unreadable size: {exc}") from exc
                state.last_cosigned_size = old  # the witness's own record is the truth
                continue
            if response.status_code == 422:
                log.error(
                    "witness %s refuses checkpoint %d as inconsistent with what it cosigned before: %s",
                    endpoint.name,
                    size,
                    response.text.strip()[:300],
                )
            if response.status_code != 200:
                raise PushError(f"HTTP {response.status_code}: {response.text.strip()[:300]}")
            self._store(endpoint, checkpoint, response.text)
            return
        raise PushError(f"the witness kept answering 409 (last size {old})")

    def _store(self, endpoint: WitnessEndpoint, checkpoint: StoredCheckpoint, body: str) -> None:
        """Keep the witness's cosignature line, after checking it with the configured key."""
        try:
            lines = [parse_signature_line(line + "\n") for line in body.split("\n") if line]
            found = find_cosignatures(split_note(checkpoint.note)[0], lines, [endpoint.key])
        except SignatureError as exc:
            raise PushError(f"the witness's answer does not verify: {exc}") from exc
        if not found:
            raise PushError("the witness answered without a cosignature by its configured key")
        cosignature = found[0]
        try:
            with self.services.db.unit_of_work() as uow:
                CosignatureRepository(uow.session).add(
                    StoredCosignature(
                        tree_size=checkpoint.tree_size,
                        witness_key=str(endpoint.key),
                        cosigned_at=cosignature.timestamp,
                        line=cosignature.line,
                        received_at=format_timestamp(self.services.clock()),
                    )
                )
        except ConflictError:
            pass  # another replica stored this witness's cosignature of this checkpoint first


# -- verifying a quorum ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumReport:
    ok: bool
    tree_size: int | None
    cosigned_by: list[str]
    message: str
    latest_witnessed_size: int | None = None


def check_ledger_quorum(services: Services, *, keys: Sequence[VerifierKey], quorum: int) -> QuorumReport:
    """Does the latest published checkpoint carry cosignatures by at least ``quorum`` of ``keys``?

    Only the latest needs them: ``rationale verify`` has already recomputed every checkpoint from the
    entries, so every earlier checkpoint is a prefix of the latest, and a witnessed latest checkpoint
    covers them all. Entries appended after the latest checkpoint are not yet covered by any witness.
    """
    with services.db.unit_of_work(write=False) as uow:
        repo = CosignatureRepository(uow.session)
        checkpoints = list(uow.ledger.iter_checkpoints())
        if not checkpoints:
            if quorum == 0:
                return QuorumReport(True, None, [], "no checkpoint yet; no witnesses required")
            return QuorumReport(False, None, [], "no checkpoint has been published, so none is witnessed")
        latest = checkpoints[-1]
        try:
            found = _quorum(repo, latest, keys, quorum)
            names = [str(c.key) for c in found]
            return QuorumReport(
                True,
                latest.tree_size,
                names,
                f"checkpoint {latest.tree_size} cosigned by {len(found)} witness(es), {quorum} required",
                latest.tree_size,
            )
        except (QuorumError, SignatureError) as exc:
            witnessed = None
            for earlier in reversed(checkpoints[:-1]):
                try:
                    _quorum(repo, earlier, keys, quorum)
                except AuditError:
                    continue
                witnessed = earlier.tree_size
                break
            return QuorumReport(False, latest.tree_size, [], f"checkpoint {latest.tree_size}: {exc}", witnessed)


def _quorum(
    repo: CosignatureRepository, checkpoint: StoredCheckpoint, keys: Sequence[VerifierKey], quorum: int
) -> list[Cosignature]:
    note = checkpoint.note + "".join(r.line for r in repo.for_size(checkpoint.tree_size))
    return check_quorum(note, keys=keys, quorum=quorum)


def verify_witness_quorum(services: Services, *, keys: Sequence[str] = (), quorum: int | None = None) -> int:
    """The `rationale verify` hook: 0 when no witness is required or the quorum holds, 1 otherwise."""
    try:
        parsed = parse_witness_keys(list(keys)) if keys else parse_witness_keys(services.settings.witness_keys)
    except ValueError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    required = quorum if quorum is not None else services.settings.witness_quorum
    if required is None:
        required = len(parsed)
    if not parsed and not required:
        return 0
    report = check_ledger_quorum(services, keys=parsed, quorum=required)
    if report.ok:
        print(f"OK: witnessed: {report.message}")
        for key in report.cosigned_by:
            print(f"  cosigned by {key}")
        return 0
    print(f"FAILED: witnesses: {report.message}", file=sys.stderr)
    if report.latest_witnessed_size is not None:
        print(f"  the latest checkpoint with a quorum is tree size {report.latest_witnessed_size}", file=sys.stderr)
    return 1
