"""Ledger read endpoints: checkpoints, entry bytes, RFC 9162 proofs and the public keys."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from api.deps import Allow, Public, ServicesDep
from api.errors import InvalidRequestError, ResourceNotFoundError
from api.params import MAX_LEDGER_INDEX, LedgerIndexPath
from api.services import access_reads
from api.services.access import Principal
from audit.note import verifier_key

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
PUBLIC_PROOFS = "public verification: signed tree heads, RFC 9162 proofs and public keys hold no personal data"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@router.get("/checkpoint", response_model=None)
def latest_checkpoint(
    services: ServicesDep,
    _: Annotated[None, Public(PUBLIC_PROOFS)],
    request: Request,
    witnessed: Annotated[
        int | None, Query(ge=1, le=64, description="the latest checkpoint cosigned by at least this many witnesses")
    ] = None,
) -> Any:
    """The latest signed checkpoint with its witnesses' cosignatures (C2SP tlog-cosignature lines after the
    log's signature); ``Accept: text/plain`` returns that note as bytes."""
    from api.services.witnessing import cosigned_note, latest_witnessed
    from storage.cosignatures import CosignatureRepository

    with services.db.unit_of_work(write=False) as uow:
        repo = CosignatureRepository(uow.session)
        if witnessed is not None:
            found = latest_witnessed(services, uow.ledger, repo, witnessed)
            if found is None:
                raise ResourceNotFoundError(f"no checkpoint is cosigned by {witnessed} witness(es) yet")
            checkpoint, note, cosignatures = found
        else:
            latest = uow.ledger.latest_checkpoint()
            if latest is None:
                raise ResourceNotFoundError("no checkpoint has been published yet")
            checkpoint = latest
            note, cosignatures = cosigned_note(services, repo, checkpoint)
    if "text/plain" in request.headers.get("accept", ""):
        return PlainTextResponse(note, media_type="text/plain; charset=utf-8")
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": _b64(checkpoint.root_hash),
        "root_hash_hex": checkpoint.root_hash.hex(),
        "key_id": checkpoint.key_id,
        "verifier_key": next(  # the full key, when it is one of this deployment's own (else unknown: null)
            (
                verifier_key(k.name, k.public_key)
                for k in services.keyring.all_public()
                if k.key_id == checkpoint.key_id
            ),
            None,
        ),
        "published_at": checkpoint.published_at,
        "note": note,
        "cosignatures": [{"witness": str(c.key), "timestamp": c.timestamp, "line": c.line} for c in cosignatures],
    }


@router.get("/entries/{index}")
def entry(
    services: ServicesDep, principal: Annotated[Principal, Allow("ledger.entries.read")], index: LedgerIndexPath
) -> dict[str, Any]:
    """An entry's canonical bytes (base64) and leaf hash: hash the bytes yourself to check. Entries hold
    personal data (inputs, subject references), so this read is authenticated and recorded."""
    if index < 0:
        raise InvalidRequestError("index must be >= 0", field="index")
    stored = access_reads.read_ledger_entry(services, principal, index)
    return {
        "index": stored.index,
        "type": stored.type,
        "recorded_at": stored.recorded_at,
        "canonical": _b64(stored.canonical),
        "leaf_hash": stored.leaf_hash.hex(),
    }


def _check_size(size: int, tree_size: int, field: str) -> None:
    if tree_size > size:
        raise InvalidRequestError(f"{field} {tree_size} is beyond the ledger size {size}", field=field)


@router.get("/proofs/inclusion")
def inclusion_proof(
    services: ServicesDep,
    _: Annotated[None, Public(PUBLIC_PROOFS)],
    index: Annotated[int, Query(ge=0, le=MAX_LEDGER_INDEX)],
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_LEDGER_INDEX, description="default: the latest checkpoint's size")
    ] = None,
) -> dict[str, Any]:
    """RFC 9162 §2.1.3 inclusion proof of entry ``index`` in the tree of ``tree_size`` entries."""
    with services.db.unit_of_work(write=False) as uow:
        if tree_size is None:
            checkpoint = uow.ledger.latest_checkpoint()
            if checkpoint is None:
                raise ResourceNotFoundError("no checkpoint yet: pass tree_size")
            tree_size = checkpoint.tree_size
        _check_size(uow.ledger.size(), tree_size, "tree_size")
        if index >= tree_size:
            raise InvalidRequestError(f"index {index} is not below tree_size {tree_size}", field="index")
        proof = services.ledger.inclusion_proof(uow.ledger, index=index, tree_size=tree_size)
        root = services.ledger.root(uow.ledger, tree_size)
        leaf = uow.ledger.read(index).leaf_hash
    return {
        "index": index,
        "tree_size": tree_size,
        "leaf_hash": leaf.hex(),
        "root_hash": _b64(root),
        "proof": [_b64(h) for h in proof],
    }


@router.get("/proofs/consistency")
def consistency_proof(
    services: ServicesDep,
    _: Annotated[None, Public(PUBLIC_PROOFS)],
    first: Annotated[int, Query(ge=1, le=MAX_LEDGER_INDEX)],
    second: Annotated[int, Query(ge=1, le=MAX_LEDGER_INDEX)],
) -> dict[str, Any]:
    """RFC 9162 §2.1.4 consistency proof between the trees of ``first`` and ``second`` entries."""
    if first > second:
        raise InvalidRequestError("first must not exceed second", field="first")
    with services.db.unit_of_work(write=False) as uow:
        _check_size(uow.ledger.size(), second, "second")
        proof = services.ledger.consistency_proof(uow.ledger, first=first, second=second)
        first_root = services.ledger.root(uow.ledger, first)
        second_root = services.ledger.root(uow.ledger, second)
    return {
        "first": first,
        "second": second,
        "first_root": _b64(first_root),
        "second_root": _b64(second_root),
        "proof": [_b64(h) for h in proof],
    }


@router.get("/keys")
def public_keys(services: ServicesDep, _: Annotated[None, Public(PUBLIC_PROOFS)]) -> dict[str, Any]:
    """Every checkpoint-signing public key ever used, by key id (old checkpoints stay verifiable).

    These come from the database: a verifier checks them against a key it got out of band, never trusts them."""
    with services.db.unit_of_work(write=False) as uow:
        keys = uow.ledger.keys()
    return {
        "keys": [
            {
                "key_id": k.key_id,
                "name": k.name,
                "algorithm": "ed25519",
                "public_key": _b64(k.public_key),
                "verifier_key": verifier_key(k.name, k.public_key),
                "created_at": k.created_at,
            }
            for k in keys
        ]
    }


__all__ = ["Response", "router"]
