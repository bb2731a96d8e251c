"""Rotating the checkpoint-signing key as a ledger entry signed by the outgoing key.

Order matters: the next key is written to the keyring (inactive), the ``key.rotated`` entry signed by the
outgoing key is appended and committed, and only then does the keyring switch; a checkpoint signed by the
new key follows at once, so it commits to the entry that introduced it. If the append fails, the outgoing
key stays active and the unused next key is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from api.container import Services
from api.services.checkpoints import publish_now
from audit.entry import EntryDraft
from audit.port import StoredCheckpoint
from audit.trust import ROTATION_TYPE, KeyRotation, VerifierKey


@dataclass(frozen=True, slots=True)
class RotationResult:
    previous: VerifierKey
    next: VerifierKey
    ledger_index: int
    checkpoint: StoredCheckpoint | None


def rotate_signing_key(services: Services, *, supplied: Path | None = None) -> RotationResult:
    """Make a new active signing key, recorded in the ledger; raises AuditError for an unusable key file."""
    keyring = services.keyring
    outgoing = keyring.active()
    incoming = keyring.prepare(supplied=supplied)
    rotation = KeyRotation.sign(
        previous=keyring.private(outgoing.key_id), name=outgoing.name, next_key=VerifierKey.of(incoming)
    )
    with services.db.unit_of_work() as uow:
        uow.ledger.add_key(outgoing)
        [entry] = services.ledger.append(uow.ledger, [EntryDraft(ROTATION_TYPE, rotation.to_payload())])
        uow.ledger.add_key(incoming)
    keyring.activate(incoming.key_id)
    checkpoint = publish_now(services)
    return RotationResult(rotation.previous, rotation.next, entry.index, checkpoint)
