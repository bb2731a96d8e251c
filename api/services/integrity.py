"""Does what a reviewer sees match the ledger, and does the ledger prove it? Checked server-side per decision.

For the decision entry and each explanation entry: the stored bytes must hash to the stored leaf hash, the
parsed entry must say what the database rows say, and an RFC 9162 inclusion proof must lead from the leaf to
the root of the latest checkpoint, whose signature is checked with the trust anchors configured out of band
(the keyring's public halves and RATIONALE_TRUSTED_KEYS, extended only by key rotation entries signed by a
trusted key) — never with keys read from the database, which an attacker with database access could replace.
Any unreadable stored value gives a failed check, never an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from api.container import Services
from api.services.reading import DecisionView
from api.services.trust import trust_for_reads
from audit.checkpoint import OpenedCheckpoint, open_checkpoint
from audit.entry import StoredEntry, format_timestamp, leaf_hash
from audit.errors import AuditError, ProofError
from audit.merkle import verify_inclusion
from audit.note import ed25519_signers
from audit.trust import TrustSet, VerifierKey
from storage.db import UnitOfWork
from storage.records import DecisionRecord

Status = Literal["verified", "pending", "failed"]


@dataclass(frozen=True, slots=True)
class EntryCheck:
    label: str
    index: int
    status: Status
    message: str


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    status: Status
    summary: str
    tree_size: int | None
    root_hex: str | None
    key_id: str | None
    entries: tuple[EntryCheck, ...]
    verifier_key: str | None = None  # the checkpoint signer's full C2SP verifier key


def _decision_facts(record: DecisionRecord) -> dict[str, Any]:
    occurred = record.occurred_at if record.occurred_at.tzinfo else record.occurred_at.replace(tzinfo=UTC)
    return {
        "decision_id": record.decision_id,
        "model": record.model_ref,
        "inputs": record.inputs,
        "output": record.output,
        "subject_ref": record.subject_ref,
        "occurred_at": format_timestamp(occurred),
    }


def check_decision(services: Services, view: DecisionView) -> IntegrityReport:
    """Check ``view``'s entries against the latest signed checkpoint; never raises for a failed check."""
    record = view.record
    wanted: list[tuple[str, int, dict[str, Any]]] = [("decision", record.ledger_index, _decision_facts(record))]
    wanted += [(f"explanation ({e.method})", e.ledger_index, e.body) for e, _ in view.explanations]
    with services.db.unit_of_work(write=False) as uow:
        try:
            stored = uow.ledger.latest_checkpoint()
        except AuditError as exc:
            message = f"the latest checkpoint cannot be read: {exc}"
            return _report([EntryCheck(label, i, "failed", message) for label, i, _ in wanted], None)
        if stored is None:
            checks = [EntryCheck(label, i, "pending", "no checkpoint has been published yet") for label, i, _ in wanted]
            return _report(checks, None)
        trust, problems = trust_for_reads(services, uow)
        try:
            if problems:
                raise AuditError(problems[0])
            keys = trust.for_size(stored.tree_size)
            opened = open_checkpoint(stored.note, keys=[k.as_stored() for k in keys], origin=services.settings.origin)
            if (opened.tree_size, opened.root_hash) != (stored.tree_size, stored.root_hash):
                raise AuditError("the stored checkpoint differs from the signed note")
        except AuditError as exc:
            message = f"the latest checkpoint does not verify: {exc}{_signers(stored.note, uow, trust)}"
            return _report([EntryCheck(label, i, "failed", message) for label, i, _ in wanted], None)
        signer = next((k.text for k in keys if k.key_id == opened.key_id and k.name == opened.origin), None)
        signer = signer or next((k.text for k in keys if k.key_id == opened.key_id), None)
        try:
            prove = services.ledger.inclusion_prover(uow.ledger, tree_size=opened.tree_size)
        except AuditError as exc:
            message = f"no inclusion proof against tree size {opened.tree_size}: {exc}"
            return _report([EntryCheck(label, i, "failed", message) for label, i, _ in wanted], None)
        checks = [_checked(uow, i, label, facts, opened, prove) for label, i, facts in wanted]
    return _report(checks, opened, signer)


def _signers(note: str, uow: UnitOfWork, trust: TrustSet) -> str:
    """Name the note's signers by full verifier key (looked up in the keys table, which is only data)."""
    try:
        rows = uow.ledger.keys()
        stored = {(k.name, k.key_id): VerifierKey.of(k) for k in rows}
    except AuditError:
        stored = {}
    names = []
    for name, kid in ed25519_signers(note):
        key = stored.get((name, kid))
        if key is None:
            names.append(f"{name}+{kid}+? (unknown key)")
        elif key not in trust:
            names.append(f"{key.text} (not a trust anchor)")
        else:
            names.append(key.text)
    return f" (signed by {', '.join(names)})" if names else ""


def _checked(
    uow: UnitOfWork,
    index: int,
    label: str,
    facts: dict[str, Any],
    checkpoint: OpenedCheckpoint,
    prove: Callable[[int], list[bytes]],
) -> EntryCheck:
    """One entry's check; an unreadable entry (wrong kinds of value, bad JSON, a missing row) fails it."""
    try:
        return _check_entry(uow.ledger.read(index), label, facts, checkpoint, prove)
    except (AuditError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        return EntryCheck(label, index, "failed", f"entry {index} cannot be read from the ledger: {exc}")


def _check_entry(
    entry: StoredEntry,
    label: str,
    facts: dict[str, Any],
    checkpoint: OpenedCheckpoint,
    prove: Callable[[int], list[bytes]],
) -> EntryCheck:
    index = entry.index
    leaf = leaf_hash(entry.canonical)
    if leaf != entry.leaf_hash:
        return EntryCheck(label, index, "failed", f"entry {index}: its stored bytes do not hash to its leaf hash")
    payload = entry.payload
    if not isinstance(payload, dict):
        return EntryCheck(label, index, "failed", f"entry {index}: its payload is not a JSON object")
    differing = sorted(k for k, v in facts.items() if payload.get(k) != v)
    if differing:
        message = f"entry {index}: the {label} shown differs from the ledger ({', '.join(differing)})"
        return EntryCheck(label, index, "failed", message)
    if index >= checkpoint.tree_size:
        message = f"entry {index} was appended after the latest checkpoint (tree size {checkpoint.tree_size})"
        return EntryCheck(label, index, "pending", message)
    try:
        proof = prove(index)
        verify_inclusion(leaf=leaf, index=index, tree_size=checkpoint.tree_size, proof=proof, root=checkpoint.root_hash)
    except ProofError as exc:
        return EntryCheck(label, index, "failed", f"entry {index}: {exc}")
    return EntryCheck(label, index, "verified", f"entry {index} is included in tree size {checkpoint.tree_size}")


def _report(
    checks: list[EntryCheck], checkpoint: OpenedCheckpoint | None, verifier_key: str | None = None
) -> IntegrityReport:
    decision = checks[0]
    failed = [c for c in checks if c.status == "failed"]
    status: Status
    if failed:
        status, summary = "failed", f"Integrity check failed: {failed[0].message}"
    elif decision.status == "pending" or checkpoint is None:
        status, summary = "pending", f"No checkpoint yet covers this entry ({decision.message})."
    else:
        status, summary = "verified", f"Verified against checkpoint of tree size {checkpoint.tree_size}."
        waiting = sum(c.status == "pending" for c in checks)
        if waiting:
            summary += f" {waiting} later explanation entr{'y' if waiting == 1 else 'ies'} await the next checkpoint."
    return IntegrityReport(
        status=status,
        summary=summary,
        tree_size=checkpoint.tree_size if checkpoint else None,
        root_hex=checkpoint.root_hash.hex() if checkpoint else None,
        key_id=checkpoint.key_id if checkpoint else None,
        entries=tuple(checks),
        verifier_key=verifier_key,
    )
