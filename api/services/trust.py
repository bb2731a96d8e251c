"""Which checkpoint-signing keys this process trusts: configured out of band, extended by the ledger.

Anchors are the public halves of the data-dir keyring and ``RATIONALE_TRUSTED_KEYS`` (or, when a caller
names keys explicitly, as ``rationale verify --key`` does, only those). Keys in the database are never
anchors; ``key.rotated`` entries signed by a trusted key extend the set (``audit.trust``).
"""

from __future__ import annotations

from collections.abc import Sequence

from api.container import Services
from audit.errors import AuditError
from audit.trust import TrustSet, VerifierKey
from storage.db import UnitOfWork


def configured_anchors(services: Services, *, only: Sequence[VerifierKey] | None = None) -> tuple[VerifierKey, ...]:
    """``only`` when given (``verify --key``), else the keyring's public halves and RATIONALE_TRUSTED_KEYS."""
    if only:
        return tuple(dict.fromkeys(only))
    keyring = tuple(VerifierKey.of(k) for k in services.keyring.all_public())
    return tuple(dict.fromkeys((*keyring, *services.settings.trust_anchors)))


def trust_for_reads(services: Services, uow: UnitOfWork) -> tuple[TrustSet, list[str]]:
    """The anchors extended through the ledger's rotation entries (found by index, not by a full walk).

    Returns the set and any problems met (a rotation that does not verify): a reader shows them as failures.
    """
    trust = TrustSet(configured_anchors(services))
    problems: list[str] = []
    try:
        for entry in uow.ledger.rotation_entries():
            problem = trust.apply(entry)
            if problem:
                problems.append(problem)
    except AuditError as exc:
        problems.append(str(exc))
    return trust, problems
