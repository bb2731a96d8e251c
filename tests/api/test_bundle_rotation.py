"""A regulator pins the deployment's key once; years later the key has been rotated, twice. A bundle signed by
the latest key verifies against the first key alone, through the ``key.rotated`` entries the bundle carries
(``rotations.jsonl``) — and no forgery of that chain verifies: not a rotation signed by the wrong key, not
one left out of the checkpoint's tree, not a later key signing a tree from before it was introduced.

Both verifiers are run on every bundle: the stdlib ``verify.py`` in a bare ``python3 -I -S`` and
``rationale verify --bundle``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.container import Services
from api.services.keys import rotate_signing_key
from audit.note import checkpoint_text, sign_note
from audit.trust import KeyRotation, VerifierKey
from tests.api.bundle_forger import Forge, edit_byte
from tests.api.helpers import applicant_rows, own_deployment
from tests.api.test_bundle_forgery import Answer, cli_verify, stdlib_verify

ROTATIONS = "rotations.jsonl"


@dataclass(frozen=True)
class Rotated:
    before: bytes  # exported under the first key
    after_one: bytes  # exported under the second key, after one rotation
    after_two: bytes  # exported under the third key, after two rotations
    keys: tuple[str, str, str]  # the three verifier keys, in the order they signed
    private: tuple[Ed25519PrivateKey, Ed25519PrivateKey, Ed25519PrivateKey]
    rotation_indices: tuple[int, int]


def _export(client: TestClient) -> bytes:
    export = client.post("/v1/exports", json={"model": "credit@1"})
    assert export.status_code == 201, export.text
    return client.get(f"/v1/exports/{export.json()['export_id']}/bundle").content


def _log(client: TestClient, prefix: str, count: int) -> None:
    decisions = [
        {"decision_id": f"{prefix}-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(applicant_rows(count))
    ]
    assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201


def _active(services: Services) -> tuple[str, Ed25519PrivateKey]:
    active = services.keyring.active()
    return VerifierKey.of(active).text, services.keyring.private(active.key_id)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory, credit_artifact: bytes) -> Rotated:
    with own_deployment(tmp_path_factory.mktemp("rotation"), credit_artifact) as (services, client):
        _log(client, "a", 3)
        first = _active(services)
        before = _export(client)
        one = rotate_signing_key(services)
        _log(client, "b", 2)
        second = _active(services)
        after_one = _export(client)
        two = rotate_signing_key(services)
        _log(client, "c", 2)
        third = _active(services)
        after_two = _export(client)
    return Rotated(
        before,
        after_one,
        after_two,
        (first[0], second[0], third[0]),
        (first[1], second[1], third[1]),
        (one.ledger_index, two.ledger_index),
    )


def _write(tmp_path: Path, data: bytes, name: str = "bundle.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _both(path: Path, keys: list[str]) -> Answer:
    ours, theirs = cli_verify(path, keys), stdlib_verify(path, keys)
    assert ours == theirs, f"the verifiers disagree: rationale verify {ours}, verify.py {theirs}"
    return theirs


def test_a_bundle_signed_after_two_rotations_verifies_with_only_the_first_key(rotated, tmp_path):
    first, second, third = rotated.keys
    latest = _write(tmp_path, rotated.after_two)
    assert _both(latest, [first]) == Answer(0, "bundle verified")
    assert _both(latest, [second]) == Answer(0, "bundle verified")
    assert _both(latest, [third]) == Answer(0, "bundle verified")
    assert _both(_write(tmp_path, rotated.after_one, "one.zip"), [first]) == Answer(0, "bundle verified")
    assert _both(_write(tmp_path, rotated.before, "before.zip"), [first]) == Answer(0, "bundle verified")

    from audit.bundle.reader import verify_bundle

    lines = "\n".join(verify_bundle(latest, [first]).lines())
    r1, r2 = rotated.rotation_indices
    assert f"Ed25519 by {third}" in lines
    assert f"reached from the pinned key {first} through the key rotations at entries {r1}, {r2}" in lines
    assert "2 key.rotated entries hash to leaves included in the checkpoint" in lines


def test_a_key_that_was_not_rotated_in_is_still_refused(rotated, tmp_path):
    stranger = VerifierKey("rationale.test/ledger", Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    answer = _both(_write(tmp_path, rotated.after_two), [stranger.text])
    assert answer.code == 1 and "not signed by a pinned key" in answer.verdict


def test_the_rotations_a_bundle_carries_are_those_of_its_tree(rotated):
    assert ROTATIONS not in Forge.open(rotated.before).files  # no rotation yet: the layout of earlier bundles
    for data, expected in (
        (rotated.after_one, rotated.rotation_indices[:1]),
        (rotated.after_two, rotated.rotation_indices),
    ):
        lines = [json.loads(line) for line in Forge.open(data).files[ROTATIONS].splitlines()]
        assert tuple(line["index"] for line in lines) == expected
        assert all(json.loads(line["entry"])["type"] == "key.rotated" for line in lines)


# --- the attacks: each against the bundle signed by the third key, the regulator pinning the first --------
Attack = Callable[[Forge, Rotated], None]


def _lines(f: Forge) -> list[dict]:
    return [json.loads(line) for line in f.files[ROTATIONS].splitlines()]


def _set_lines(f: Forge, lines: list[dict]) -> None:
    f.files[ROTATIONS] = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)


def _with_rotation_entry(f: Forge, which: int, rotation: KeyRotation) -> None:
    lines = _lines(f)
    entry = json.loads(lines[which]["entry"])
    entry["payload"] = rotation.to_payload()
    lines[which]["entry"] = rfc8785.dumps(entry).decode()
    _set_lines(f, lines)


def _key(private: Ed25519PrivateKey, name: str = "rationale.test/ledger") -> VerifierKey:
    return VerifierKey(name, private.public_key().public_bytes_raw())


def forged_handover(f: Forge, r: Rotated) -> None:
    """The last rotation rewritten to hand over to the forger's key, signed by the forger; a whole new tree."""
    forger = Ed25519PrivateKey.generate()
    previous = VerifierKey.parse(r.keys[1])
    rotation = KeyRotation(previous, _key(forger), forger.sign(b"rationale key rotation v1\n"))
    _with_rotation_entry(f, 1, rotation)
    f.reseal(key=forger)


def forger_signs_own_handover(f: Forge, r: Rotated) -> None:
    """A rotation from a key the forger made up (correctly signed by it) to another of theirs."""
    made_up, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _with_rotation_entry(f, 1, KeyRotation.sign(previous=made_up, name="rationale.test/ledger", next_key=_key(forger)))
    f.reseal(key=forger)


def genuine_chain_forger_key(f: Forge, r: Rotated) -> None:
    """The genuine rotations kept, the tree rebuilt and signed by a fresh key under the deployment's name."""
    f.reseal()


def rotations_removed(f: Forge, r: Rotated) -> None:
    del f.files[ROTATIONS]


def last_rotation_dropped(f: Forge, r: Rotated) -> None:
    _set_lines(f, _lines(f)[:1])


def rotations_reordered(f: Forge, r: Rotated) -> None:
    _set_lines(f, _lines(f)[::-1])


def rotation_duplicated(f: Forge, r: Rotated) -> None:
    lines = _lines(f)
    _set_lines(f, [lines[0], *lines])


def rotation_proofs_swapped(f: Forge, r: Rotated) -> None:
    lines = _lines(f)
    lines[0]["proof"], lines[1]["proof"] = lines[1]["proof"], lines[0]["proof"]
    _set_lines(f, lines)


def rotation_moved(f: Forge, r: Rotated) -> None:
    """The last rotation claimed at the index of a decision entry, with the decision's proof."""
    lines = _lines(f)
    decision = f.of_type("decision.recorded")[-1]
    [proof] = [p for p in f.proof_lines() if p["index"] == decision]
    entry = json.loads(lines[1]["entry"])
    entry["index"] = decision
    lines[1] = {"index": decision, "entry": rfc8785.dumps(entry).decode(), "proof": proof["proof"]}
    _set_lines(f, sorted(lines, key=lambda x: x["index"]))


def later_key_signs_an_earlier_tree(f: Forge, r: Rotated) -> None:
    """The insider holding the third key signs the tree of the first bundle — from before that key existed —
    with the genuine rotations (proved against the later tree) attached."""
    f.files.clear()
    f.files.update(Forge.open(r.before).files)
    f.files[ROTATIONS] = Forge.open(r.after_two).files[ROTATIONS]
    origin, size, root = f.files["checkpoint.txt"].decode().split("\n")[:3]
    text = checkpoint_text(origin, int(size), base64.b64decode(root))
    f.files["checkpoint.txt"] = sign_note(text, name="rationale.test/ledger", private_key=r.private[2]).encode()


def rotations_in_the_manifest(f: Forge, r: Rotated) -> None:
    """The insider lists rotations.jsonl in the manifest as if content and re-seals with the third key. (It
    cannot be made consistent: the rotations' proofs depend on the tree, which holds the manifest's hash.)"""
    f.reseal(key=r.private[2], keys_json="keep", also=(ROTATIONS,))


ATTACKS: dict[str, Attack] = {
    "the last rotation hands over to the forger's key, signed by the forger, new tree": forged_handover,
    "a rotation between two keys the forger made up, new tree": forger_signs_own_handover,
    "the genuine rotations, a new tree signed by a fresh key": genuine_chain_forger_key,
    "rotations.jsonl removed": rotations_removed,
    "the last rotation dropped": last_rotation_dropped,
    "rotations reordered": rotations_reordered,
    "a rotation line duplicated": rotation_duplicated,
    "the rotations' proofs swapped": rotation_proofs_swapped,
    "a rotation moved to another entry's index and proof": rotation_moved,
    "the third key signs the tree from before it was introduced": later_key_signs_an_earlier_tree,
    "rotations.jsonl listed in the manifest": rotations_in_the_manifest,
}


BECAUSE = {  # where the verdict must name a reason: the forger's re-seal is otherwise complete
    "the last rotation hands over to the forger's key, signed by the forger, new tree": "does not verify",
    "the third key signs the tree from before it was introduced": "introduced at or after entry",
}


@pytest.mark.parametrize("how", list(ATTACKS))
def test_each_forged_chain_is_refused_by_both_verifiers_alike(rotated, tmp_path, how):
    forge = Forge.open(rotated.after_two)
    ATTACKS[how](forge, rotated)
    path = _write(tmp_path, forge.bytes(), "forged.zip")
    assert path.read_bytes() != rotated.after_two
    answer = _both(path, [rotated.keys[0]])
    assert answer.code == 1 and answer.verdict.startswith("FAILED"), answer
    assert BECAUSE.get(how, "") in answer.verdict, answer


def _core_answer(path: Path, keys: list[str]) -> int:
    from audit.bundle.core import core

    return int(core().verify(str(path), keys, out=lambda line: None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.floats(0, 1, exclude_max=True),
    how=st.sampled_from(["flip", "insert", "delete", "set"]),
    value=st.integers(0, 255),
    pinned=st.integers(0, 2),
)
def test_any_edit_of_the_rotations_is_refused(rotated, tmp_path, where, how, value, pinned):
    """One byte of rotations.jsonl flipped, inserted, deleted or set, whichever key the regulator pinned:
    the bundle is refused even when the signer is pinned directly and needs no rotation."""
    forge = Forge.open(rotated.after_two)
    data = edit_byte(forge.files[ROTATIONS], int(where * len(forge.files[ROTATIONS])), how, value)
    if data == forge.files[ROTATIONS]:
        return
    forge.files[ROTATIONS] = data
    path = _write(tmp_path, forge.bytes(), "edited.zip")
    assert _core_answer(path, [rotated.keys[pinned]]) == 1, (how, where)
