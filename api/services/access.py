"""Who may do what: API keys, roles, the rights table and authentication (PRODUCT.md §8).

Keys look like ``rk_<key id>_<secret>``: 16 hex characters naming the key (safe to log and to put in the
ledger) and 256 random bits from ``secrets``. Only SHA-256 of the whole key is stored. A slow password hash
(bcrypt, scrypt) protects *low-entropy* secrets against guessing; a 256-bit random secret cannot be guessed
from its hash, so a fast hash loses nothing and keeps authentication off the latency budget of every read.

``RIGHTS`` is the one table of which roles may take which action: routes name an action in their one
``Annotated`` dependency (api/deps.py), services check the same table, and the route-by-role test reads it.
``admin`` holds every right: an admin can mint a key of any role, so withholding a right would only hide
what it can do; its reads are recorded like everyone's.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from api.container import Services
from api.services.access_errors import (
    InvalidAccessRequestError,
    NotAuthenticatedError,
    PermissionDeniedError,
    PurposeRequiredError,
)
from audit.access_payload import AccessKeyEvent
from audit.entry import EntryDraft, format_timestamp
from storage.access_store import ApiKeyRecord
from storage.errors import NotFoundError


class Role(StrEnum):
    INGEST = "ingest"
    DATA_SCIENTIST = "data_scientist"
    COMPLIANCE = "compliance"
    REGULATOR = "regulator"
    ADMIN = "admin"


ROLES = tuple(Role)
PURPOSE_REQUIRED = frozenset({Role.COMPLIANCE, Role.REGULATOR})
_I, _D, _C, _R = Role.INGEST, Role.DATA_SCIENTIST, Role.COMPLIANCE, Role.REGULATOR

RIGHTS: dict[str, frozenset[Role]] = {
    action: frozenset({*roles, Role.ADMIN})
    for action, roles in {
        "models.register": (_D,),
        "models.read": (_I, _D, _C),
        "decisions.record": (_I, _D),
        "outcomes.record": (_I, _D),
        "decisions.read": (_D, _C),
        "decisions.search": (_D, _C),
        "explanations.request": (_D,),
        "jobs.read": (_I, _D, _C),
        "exports.create": (_C,),
        "exports.read": (_C, _R),
        "ledger.entries.read": (_C,),
        "analytics.read": (_D,),
        "deployments.record": (_D,),
        "decisions.replay": (_D, _C),
        "access.keys": (),
        "access.log": (),
        # uploading a pickle/joblib artifact runs its code on load: admin only, and only when the operator
        # enables it (RATIONALE_ALLOW_PICKLE, issue #14 item 6): `authorize(principal, "models.register_pickle")`
        "models.register_pickle": (),
    }.items()
}

KEY_PATTERN = re.compile(r"^rk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: which key, whose, which role, and the purpose it stated (if any)."""

    key_id: str
    owner: str
    role: Role
    purpose: str | None = None

    def with_purpose(self, purpose: str | None) -> Principal:
        return Principal(self.key_id, self.owner, self.role, purpose)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: ``secret`` is shown once and never stored."""

    record: ApiKeyRecord
    secret: str


def local_principal(*, auth_off: bool = False) -> Principal:
    """The caller when access control is off (development) or the operator at the command line."""
    user = getpass.getuser() if not auth_off else "anonymous"
    return Principal(key_id="local" if not auth_off else "auth-off", owner=f"local:{user}", role=Role.ADMIN)


def authorize(principal: Principal, action: str) -> None:
    """Raise PermissionDeniedError unless the principal's role holds ``action``; PurposeRequiredError when a
    role that must state a purpose reads without one."""
    roles = RIGHTS[action]
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in ROLES if r in roles)
        raise PermissionDeniedError(f"role {principal.role.value!r} may not {action}; allowed: {allowed}")


def require_purpose(principal: Principal) -> None:
    if principal.role in PURPOSE_REQUIRED and not principal.purpose:
        raise PurposeRequiredError(
            f"a {principal.role.value} read must state its purpose in the X-Rationale-Purpose header"
        )


def clean_purpose(raw: str | None) -> str | None:
    """A purpose as recorded: trimmed, one line, at most 500 characters; empty means none."""
    if raw is None:
        return None
    text = " ".join(raw.split())[:500]
    return text or None


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _refused() -> NotAuthenticatedError:
    return NotAuthenticatedError("a valid API key is required: Authorization: Bearer rk_...")


def remembered_principal(services: Services, presented: str | None) -> Principal | None:
    """The principal of a key read less than ``key_cache_seconds`` ago and usable now, without I/O; None
    means: call ``authenticate`` (which reads the key, and refuses it if it must)."""
    if not presented or KEY_PATTERN.match(presented.strip()) is None:
        return None
    record = services.key_cache.get(hash_key(presented.strip()))
    if record is None or not key_usable(record, services.clock()):  # expiry is exact, whatever was remembered
        return None
    return Principal(key_id=record.key_id, owner=record.owner, role=Role(record.role))


def authenticate(services: Services, presented: str | None) -> Principal:
    """The principal of a presented key. Unknown, malformed, expired and revoked keys get one message."""
    if not presented:
        raise _refused()
    match = KEY_PATTERN.match(presented.strip())
    if match is None:
        raise _refused()
    generation = services.key_cache.generation
    with services.db.unit_of_work(write=False) as uow:
        record = uow.access.get_key(match.group(1))
    digest = hash_key(presented.strip())
    if record is None or not hmac.compare_digest(record.key_hash, digest):
        raise _refused()
    if not key_usable(record, services.clock()):
        raise _refused()
    services.key_cache.put(digest, record, read_at_generation=generation)
    return Principal(key_id=record.key_id, owner=record.owner, role=Role(record.role))


def key_usable(record: ApiKeyRecord, now: datetime) -> bool:
    if record.revoked_at is not None:
        return False
    return record.expires_at is None or now < record.expires_at


def principal_for_key(services: Services, key_id: str) -> Principal:
    """The principal of a key still usable now (sessions re-check their key on every page)."""
    with services.db.unit_of_work(write=False) as uow:
        record = uow.access.get_key(key_id)
    if record is None or not key_usable(record, services.clock()):
        raise NotAuthenticatedError("the key of this session is no longer valid: sign in again")
    return Principal(key_id=record.key_id, owner=record.owner, role=Role(record.role))


def create_key(
    services: Services, *, owner: str, role: str, by: Principal, expires_at: datetime | None = None
) -> IssuedKey:
    """Mint a key; the secret is returned once. The creation is a ledger entry (without secret or hash)."""
    authorize(by, "access.keys")
    owner = owner.strip()
    if not owner or len(owner) > 200:
        raise InvalidAccessRequestError("owner must be 1 to 200 characters", path="owner")
    if role not in {r.value for r in ROLES}:
        raise InvalidAccessRequestError(f"role must be one of {', '.join(r.value for r in ROLES)}", path="role")
    now = services.clock()
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidAccessRequestError("expires_at must include a timezone", path="expires_at")
        if expires_at <= now:
            raise InvalidAccessRequestError("expires_at must be in the future", path="expires_at")
    key_id = secrets.token_hex(8)
    secret = f"rk_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        key_id=key_id,
        owner=owner,
        role=role,
        key_hash=hash_key(secret),
        created_at=now,
        created_by=by.key_id if by.key_id not in ("local", "auth-off") else by.owner,
        expires_at=expires_at,
        revoked_at=None,
    )
    event = AccessKeyEvent(
        event="created",
        key_id=key_id,
        owner=owner,
        role=role,
        by=record.created_by,
        expires_at=format_timestamp(expires_at) if expires_at else None,
    )
    with services.db.unit_of_work() as uow:
        uow.access.add_key(record)
        services.ledger.append(uow.ledger, [EntryDraft(event.TYPE, event.to_dict())])
    return IssuedKey(record=record, secret=secret)


def list_keys(services: Services, *, by: Principal) -> list[ApiKeyRecord]:
    authorize(by, "access.keys")
    with services.db.unit_of_work(write=False) as uow:
        return uow.access.list_keys()


def revoke_key(services: Services, *, key_id: str, by: Principal) -> ApiKeyRecord:
    """Revoke; the revocation is a ledger entry. This process forgets the key at once, other API processes
    within ``key_cache_seconds`` (api/services/key_cache.py)."""
    authorize(by, "access.keys")
    with services.db.unit_of_work() as uow:
        record = uow.access.get_key(key_id)
        if record is None:
            raise NotFoundError(f"API key {key_id!r} does not exist")
        if record.revoked_at is None:
            uow.access.revoke_key(key_id, at=services.clock())
            by_name = by.key_id if by.key_id not in ("local", "auth-off") else by.owner
            event = AccessKeyEvent(event="revoked", key_id=key_id, owner=record.owner, role=record.role, by=by_name)
            services.ledger.append(uow.ledger, [EntryDraft(event.TYPE, event.to_dict())])
        updated = uow.access.get_key(key_id)
    services.key_cache.forget(key_id)
    assert updated is not None
    return updated
