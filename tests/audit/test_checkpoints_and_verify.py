"""Signed checkpoints (C2SP signed-note + tlog-checkpoint), key rotation, log-split refusal, and
whole-ledger verification naming the first place each kind of tampering touches."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.checkpoint import open_checkpoint, publish_checkpoint
from audit.entry import EntryDraft, StoredEntry
from audit.errors import LogSplitError, SignatureError
from audit.keys import Keyring
from audit.ledger import Ledger
from audit.memory_store import MemoryLedgerStore
from audit.note import sign_note, verifier_key
from audit.trust import VerifierKey
from audit.verify import verify_ledger

ORIGIN = "rationale.test/ledger"


def clock() -> datetime:
    return datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def keyring(tmp_path) -> Keyring:
    ring = Keyring(tmp_path / "keys", name=ORIGIN, clock=clock)
    ring.ensure()
    return ring


def anchors(keyring: Keyring) -> list[VerifierKey]:
    """What a verifier trusts: the keyring's public halves, never the keys the store holds."""
    return [VerifierKey.of(k) for k in keyring.all_public()]


def grow(ledger: Ledger, store: MemoryLedgerStore, n: int) -> None:
    ledger.append(store, [EntryDraft("t", {"n": store.size() + i}) for i in range(n)])


@pytest.fixture
def logged(keyring):
    ledger, store = Ledger(clock=clock), MemoryLedgerStore()
    grow(ledger, store, 10)
    publish_checkpoint(store, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)
    grow(ledger, store, 7)
    publish_checkpoint(store, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)
    grow(ledger, store, 3)
    return ledger, store


def independent_check(note: str, public: bytes, name: str) -> tuple[str, int, bytes]:
    """A from-scratch reader of the C2SP formats, to guard ours against drifting from the spec."""
    text, signatures = note.split("\n\n")
    text += "\n"
    [line] = signatures.strip("\n").split("\n")
    assert line.startswith("\u2014 " + name + " ")
    raw = base64.b64decode(line.split(" ")[2])
    assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], text.encode())
    origin, size, root = text.rstrip("\n").split("\n")
    return origin, int(size), base64.b64decode(root)


def test_checkpoint_note_follows_the_c2sp_formats(logged, keyring):
    ledger, store = logged
    cp = store.latest_checkpoint()
    key = keyring.active()
    origin, size, root = independent_check(cp.note, key.public_key, key.name)
    assert (origin, size, root) == (ORIGIN, 17, ledger.root(store, 17))
    assert verifier_key(key.name, key.public_key).startswith(f"{ORIGIN}+{key.key_id}+")


def test_no_new_entries_means_no_new_checkpoint(logged, keyring):
    ledger, store = logged
    publish_checkpoint(store, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)
    again = publish_checkpoint(store, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)
    assert [c.tree_size for c in store.iter_checkpoints()] == [10, 17, 20]
    assert again.tree_size == 20


def test_a_note_signed_by_another_key_or_edited_is_rejected(logged, keyring):
    _, store = logged
    cp = store.latest_checkpoint()
    stranger = Ed25519PrivateKey.generate()
    forged = sign_note(cp.note.split("\n\n")[0] + "\n", name=ORIGIN, private_key=stranger)
    with pytest.raises(SignatureError):
        open_checkpoint(forged, keys=store.keys())
    edited = cp.note.replace("\n17\n", "\n18\n")
    with pytest.raises(SignatureError):
        open_checkpoint(edited, keys=store.keys())


def test_rotation_keeps_old_checkpoints_verifiable(logged, keyring):
    ledger, store = logged
    old = keyring.active()
    new = keyring.rotate()
    assert new.key_id != old.key_id
    cp = publish_checkpoint(store, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)
    assert cp.key_id == new.key_id
    assert {k.key_id for k in store.public_keys.values()} == {old.key_id, new.key_id}
    assert verify_ledger(store, anchors=anchors(keyring)).ok


def test_a_split_log_is_not_published(logged, keyring):
    ledger, store = logged
    forked = MemoryLedgerStore()
    forked.checkpoints = list(store.checkpoints)
    forked.public_keys = dict(store.public_keys)
    Ledger(clock=clock).append(forked, [EntryDraft("other", {"n": i}) for i in range(25)])
    with pytest.raises(LogSplitError):
        publish_checkpoint(forked, ledger=ledger, keyring=keyring, origin=ORIGIN, clock=clock)


def test_an_untouched_ledger_verifies(logged, keyring):
    _, store = logged
    progress = []
    report = verify_ledger(store, anchors=anchors(keyring), progress=lambda d, t: progress.append((d, t)), batch=4)
    assert report.ok and report.entries_checked == 20 and report.checkpoints_checked == 2
    assert progress[-1] == (20, 20)


def _rebuilt(entry: StoredEntry, payload: dict) -> StoredEntry:
    """An entry rewritten consistently (bytes and leaf hash), as a careful forger would."""
    return StoredEntry.build(
        index=entry.index,
        draft=EntryDraft(entry.type, payload),
        recorded_at=datetime(2026, 3, 3, 12, 0, tzinfo=UTC),
    )


TAMPERS = {
    "modified bytes": lambda s: s.entries.__setitem__(
        4, dataclasses.replace(s.entries[4], canonical=s.entries[4].canonical.replace(b'"n":4', b'"n":9'))
    ),
    "modified bytes and leaf hash": lambda s: s.entries.__setitem__(4, _rebuilt(s.entries[4], {"n": 99})),
    "deleted entry": lambda s: s.entries.pop(4),
    "inserted entry": lambda s: s.entries.insert(4, _rebuilt(s.entries[4], {"n": -1})),
    "reordered entries": lambda s: s.entries.__setitem__(
        slice(4, 6), [dataclasses.replace(s.entries[5], index=4), dataclasses.replace(s.entries[4], index=5)]
    ),
}


@pytest.mark.parametrize("how", list(TAMPERS))
def test_verify_names_the_first_tampered_entry(logged, keyring, how):
    _, store = logged
    TAMPERS[how](store)
    report = verify_ledger(store, anchors=anchors(keyring))
    assert not report.ok
    # an inserted entry is seen where the displaced original now stands
    assert report.failure.position == (5 if how == "inserted entry" else 4), report.failure
    assert report.failure.what in ("entry", "tree")


def test_truncation_behind_a_checkpoint_is_reported(logged, keyring):
    _, store = logged
    del store.entries[12:]
    report = verify_ledger(store, anchors=anchors(keyring))
    assert not report.ok
    assert report.failure.what == "entry" and report.failure.position == 12
    assert report.failure.table == "ledger_entries" and "checkpoint at tree size 17" in report.failure.message


def test_a_forged_checkpoint_is_reported(logged, keyring):
    _, store = logged
    cp = store.checkpoints[0]
    stranger = Ed25519PrivateKey.generate()
    store.checkpoints[0] = dataclasses.replace(
        cp, note=sign_note(cp.note.split("\n\n")[0] + "\n", name=ORIGIN, private_key=stranger)
    )
    report = verify_ledger(store, anchors=anchors(keyring))
    assert not report.ok and report.failure.what == "checkpoint" and report.failure.position == 10


def test_a_tampered_tree_node_is_reported(logged, keyring):
    _, store = logged
    store.nodes[(2, 1)] = b"\x00" * 32
    report = verify_ledger(store, anchors=anchors(keyring))
    assert not report.ok and report.failure.what == "tree" and report.failure.position == 4


@pytest.mark.parametrize("index", [0, 4])
@pytest.mark.parametrize(("entry_type", "recorded_at"), [("", ""), ("x", "2026-03-03T12:00:00.000000Z"), ("t", "")])
def test_type_and_recorded_at_columns_must_say_what_the_bytes_say(logged, keyring, index, entry_type, recorded_at):
    _, store = logged
    store.entries[index] = dataclasses.replace(store.entries[index], type=entry_type, recorded_at=recorded_at)
    report = verify_ledger(store, anchors=anchors(keyring))
    assert not report.ok and report.failure.position == index and report.failure.table == "ledger_entries"
    assert "type or recorded_at column differs" in report.failure.message
