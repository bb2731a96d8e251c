"""Witness cosignatures in a bundle's checkpoint, checked offline by ``verify.py --witness-key --quorum``.

The cosignature lines here are made with the witness's own signing function (``audit.cosignature.cosign``)
and real keys; ``tests/api/test_witness_processes.py`` has the whole path with witness processes. What is
attacked here is the verifier: no edit of a cosignature line, no duplicated or borrowed line, no line by an
unpinned witness makes the quorum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.cosignature import cosign, cosigner_key
from audit.note import verifier_key
from tests.api.bundle_forger import Forge, edit_byte
from tests.api.helpers import applicant_rows, own_deployment

NOW = 1_764_000_000


@dataclass(frozen=True)
class Witnessed:
    data: bytes  # a genuine bundle whose checkpoint both witnesses cosigned
    log_key: str
    witness_keys: tuple[str, str]
    witnesses: tuple[Ed25519PrivateKey, Ed25519PrivateKey]
    names: tuple[str, str]


def _body(note: str) -> str:
    return note.split("\n\n")[0] + "\n"


def _with_lines(data: bytes, lines: list[str]) -> bytes:
    forge = Forge.open(data)
    note = forge.files["checkpoint.txt"].decode()
    forge.files["checkpoint.txt"] = (note + "".join(lines)).encode()
    return forge.bytes()


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory, credit_artifact: bytes) -> Witnessed:
    with own_deployment(tmp_path_factory.mktemp("witnessed"), credit_artifact) as (services, client):
        decisions = [
            {"decision_id": f"w-{i}", "model": "credit@1", "inputs": r} for i, r in enumerate(applicant_rows(3))
        ]
        assert client.post("/v1/decisions", json={"decisions": decisions}).status_code == 201
        export = client.post("/v1/exports", json={"model": "credit@1"})
        assert export.status_code == 201, export.text
        data = client.get(f"/v1/exports/{export.json()['export_id']}/bundle").content
        active = services.keyring.active()
        log_key = verifier_key(active.name, active.public_key)
    privates = (Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())
    names = ("auditor.example/witness", "regulator.example/w1")
    body = _body(Forge.open(data).files["checkpoint.txt"].decode())
    lines = [
        cosign(body, name=n, private_key=k, timestamp=NOW + i)
        for i, (n, k) in enumerate(zip(names, privates, strict=True))
    ]
    keys = tuple(str(cosigner_key(n, k.public_key().public_bytes_raw())) for n, k in zip(names, privates, strict=True))
    return Witnessed(_with_lines(data, lines), log_key, (keys[0], keys[1]), privates, names)


def _verify(
    data: bytes, tmp_path: Path, log_key: str, witnesses: list[str], quorum: int | None = None
) -> tuple[int, list[str]]:
    from audit.bundle.core import core

    path = tmp_path / "bundle.zip"
    path.write_bytes(data)
    lines: list[str] = []
    code = core().verify(str(path), [log_key], out=lines.append, witnesses=witnesses, quorum=quorum)
    return int(code), lines


def test_both_pinned_witnesses_cosigned_and_the_bundle_verifies(witnessed, tmp_path):
    code, lines = _verify(witnessed.data, tmp_path, witnessed.log_key, list(witnessed.witness_keys))
    assert code == 0 and lines[-1] == "bundle verified", lines
    [line] = [x for x in lines if x.startswith("ok  witnesses:")]
    assert "2 of the required 2" in line and all(k in line for k in witnessed.witness_keys)
    assert _verify(witnessed.data, tmp_path, witnessed.log_key, [witnessed.witness_keys[1]])[0] == 0


def test_usage_errors_name_the_witness_argument(witnessed, tmp_path):
    code, lines = _verify(witnessed.data, tmp_path, witnessed.log_key, list(witnessed.witness_keys), quorum=3)
    assert code == 2 and "quorum of 3" in lines[-1]
    code, lines = _verify(witnessed.data, tmp_path, witnessed.log_key, [witnessed.log_key])  # a log key (0x01)
    assert code == 2 and "witness key" in lines[-1] and "0x04" in lines[-1]


Attack = Callable[[Witnessed], bytes]


def _genuine_without_lines(w: Witnessed) -> bytes:
    forge = Forge.open(w.data)
    note = forge.files["checkpoint.txt"].decode()
    head, block = note.split("\n\n")
    forge.files["checkpoint.txt"] = (head + "\n\n" + block.splitlines()[0] + "\n").encode()
    return forge.bytes()


def _cosigned_lines(w: Witnessed) -> list[str]:
    block = Forge.open(w.data).files["checkpoint.txt"].decode().split("\n\n")[1]
    return [line + "\n" for line in block.splitlines()[1:]]


def stripped(w: Witnessed) -> bytes:
    return _genuine_without_lines(w)


def one_line_twice(w: Witnessed) -> bytes:
    first = _cosigned_lines(w)[0]
    return _with_lines(_genuine_without_lines(w), [first, first])


def other_checkpoint(w: Witnessed) -> bytes:
    """Cosignatures the witnesses really made, of another checkpoint of the same log."""
    note = Forge.open(w.data).files["checkpoint.txt"].decode()
    origin, size, root = _body(note).splitlines()
    other = f"{origin}\n{int(size) - 1}\n{root}\n"
    lines = [cosign(other, name=n, private_key=k, timestamp=NOW) for n, k in zip(w.names, w.witnesses, strict=True)]
    return _with_lines(_genuine_without_lines(w), lines)


def forger_under_a_witness_name(w: Witnessed) -> bytes:
    """A forger's own key under the first witness's name: its key hash differs, so it is another witness."""
    body = _body(Forge.open(w.data).files["checkpoint.txt"].decode())
    forger = Ed25519PrivateKey.generate()
    lines = [cosign(body, name=w.names[0], private_key=forger, timestamp=NOW), _cosigned_lines(w)[1]]
    return _with_lines(_genuine_without_lines(w), lines)


def timestamp_changed(w: Witnessed) -> bytes:
    import base64

    lines = _cosigned_lines(w)
    name, blob = lines[0][2:-1].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[11] ^= 1  # the last byte of the 8-byte timestamp
    lines[0] = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    return _with_lines(_genuine_without_lines(w), lines)


ATTACKS: dict[str, Attack] = {
    "cosignatures stripped": stripped,
    "one witness's line twice": one_line_twice,
    "the witnesses' cosignatures of another checkpoint": other_checkpoint,
    "a forger's key under a witness's name": forger_under_a_witness_name,
    "a cosignature's timestamp changed": timestamp_changed,
}


@pytest.mark.parametrize("how", list(ATTACKS))
def test_each_forged_cosignature_set_misses_the_quorum(witnessed, tmp_path, how):
    code, lines = _verify(ATTACKS[how](witnessed), tmp_path, witnessed.log_key, list(witnessed.witness_keys))
    assert code == 1 and lines[-1].startswith("FAILED"), lines
    assert "witness" in lines[-1], lines[-1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.floats(0, 1, exclude_max=True),
    how=st.sampled_from(["flip", "insert", "delete", "set"]),
    value=st.integers(0, 255),
)
def test_any_edit_of_the_cosignature_lines_is_refused(witnessed, tmp_path, where, how, value):
    """One byte of the cosignature lines (the log's own line left as it is) flipped, inserted, deleted or set."""
    forge = Forge.open(witnessed.data)
    note = forge.files["checkpoint.txt"]
    start = note.index(b"\n", note.index(b"\n\n") + 2) + 1  # after the log's signature line
    at = start + int(where * (len(note) - start))
    data = edit_byte(note, at, how, value)
    if data == note:
        return
    forge.files["checkpoint.txt"] = data
    code, lines = _verify(forge.bytes(), tmp_path, witnessed.log_key, list(witnessed.witness_keys))
    assert code == 1, (how, at, lines[-1])
