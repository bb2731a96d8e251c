"""Publishing signed checkpoints, refusing any that would split the log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from audit.entry import format_timestamp
from audit.errors import LogSplitError, ProofError, SignatureError
from audit.keys import Keyring
from audit.ledger import Ledger
from audit.merkle import verify_consistency
from audit.note import checkpoint_text, open_note, parse_checkpoint_text, sign_note
from audit.port import LedgerStore, StoredCheckpoint, StoredKey


@dataclass(frozen=True, slots=True)
class OpenedCheckpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    key_id: str


def open_checkpoint(note: str, *, keys: Sequence[StoredKey], origin: str | None = None) -> OpenedCheckpoint:
    """Verify a checkpoint note's signature with known keys and parse its body."""
    verified = open_note(note, keys=[(k.name, k.public_key) for k in keys])
    found_origin, size, root = parse_checkpoint_text(verified.text)
    if origin is not None and found_origin != origin:
        raise SignatureError(f"checkpoint origin {found_origin!r} is not {origin!r}")
    return OpenedCheckpoint(found_origin, size, root, verified.key_id)


def check_extension(held: OpenedCheckpoint, latest: OpenedCheckpoint, proof: Sequence[bytes]) -> None:
    """A client's check that the log it sees now extends the checkpoint it holds (RFC 9162 §2.1.4.2).

    ``held`` and ``latest`` are both already signature-checked; ``proof`` is the served consistency proof
    from ``held.tree_size`` to ``latest.tree_size``. The client's own copy of the old root is what the proof
    must lead to — never a root the server sends along. Raises LogSplitError for a rollback or a rewrite.
    """
    if latest.origin != held.origin:
        raise LogSplitError(f"the checkpoint is for {latest.origin!r}, not {held.origin!r}")
    if latest.tree_size < held.tree_size:
        raise LogSplitError(f"the log was rolled back: tree size {latest.tree_size} after {held.tree_size}")
    try:
        verify_consistency(
            first=held.tree_size,
            second=latest.tree_size,
            proof=proof,
            first_root=held.root_hash,
            second_root=latest.root_hash,
        )
    except ProofError as exc:
        raise LogSplitError(
            f"tree size {latest.tree_size} does not extend the held checkpoint {held.tree_size}: {exc}"
        ) from exc


def publish_checkpoint(
    store: LedgerStore,
    *,
    ledger: Ledger,
    keyring: Keyring,
    origin: str,
    clock: Callable[[], datetime],
    anchors: Sequence[StoredKey] = (),
) -> StoredCheckpoint:
    """Sign the current tree head; a no-op when nothing was appended since the last checkpoint.

    The previous checkpoint is kept; the new one is signed only if the previous one's signature verifies
    with a key this deployment holds (its keyring, or ``anchors``) and an RFC 9162 consistency proof leads
    from the previous signed root to the new root. Otherwise someone with database access could make the
    real key sign a rewritten history. Raises LogSplitError when either fails.
    """
    size = store.lock_and_size()
    latest = store.latest_checkpoint()
    if latest is not None and latest.tree_size == size:
        return latest
    if size == 0:
        raise ProofError("nothing to checkpoint: the ledger is empty")
    root = ledger.root(store, size)
    if latest is not None:
        if latest.tree_size > size:
            raise LogSplitError(f"the ledger has {size} entries but checkpoint {latest.tree_size} was published")
        try:
            previous = open_checkpoint(latest.note, keys=[*keyring.all_public(), *anchors])
        except SignatureError as exc:
            raise LogSplitError(
                f"refusing to publish: the latest checkpoint ({latest.tree_size}) does not verify: {exc}"
            ) from exc
        if previous.tree_size != latest.tree_size:
            raise LogSplitError(
                f"refusing to publish: checkpoint {latest.tree_size} says tree size {previous.tree_size}"
            )
        proof = ledger.consistency_proof(store, first=latest.tree_size, second=size)
        try:
            verify_consistency(
                first=latest.tree_size,
                second=size,
                proof=proof,
                first_root=previous.root_hash,
                second_root=root,
            )
        except ProofError as exc:
            raise LogSplitError(
                f"refusing to publish: tree {size} is not consistent with checkpoint {latest.tree_size}"
            ) from exc
    key = keyring.active()
    store.add_key(key)
    note = sign_note(checkpoint_text(origin, size, root), name=key.name, private_key=keyring.private(key.key_id))
    checkpoint = StoredCheckpoint(
        tree_size=size, root_hash=root, note=note, key_id=key.key_id, published_at=format_timestamp(clock())
    )
    store.append_checkpoint(checkpoint)
    return checkpoint
