"""C2SP tlog-cosignature / tlog-witness: golden vectors, the exact signed bytes, and a witness that refuses
every fork and every smaller tree an attacker holding the log's real signing key can produce."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.cosignature import (
    ALG_COSIGNATURE_V1,
    check_quorum,
    cosign,
    cosigned_message,
    cosigner_key,
    parse_signature_line,
    parse_verifier_key,
    split_note,
    verify_cosignature_line,
)
from audit.errors import (
    InconsistentCheckpointError,
    MalformedRequestError,
    QuorumError,
    SignatureError,
    SizeConflictError,
    UnknownLogError,
    UntrustedCheckpointError,
    WitnessError,
)
from audit.merkle import consistency_path, leaf_hash, root_from_leaves
from audit.note import checkpoint_text, sign_note, verifier_key
from audit.witness import (
    MemoryWitnessStore,
    Witness,
    format_add_checkpoint,
    format_size,
    logs_from_keys,
    parse_add_checkpoint,
    parse_size,
)

ASSETS = Path(__file__).parent.parent / "assets" / "witness"
SIGSUM_ORIGIN = "sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562"
SIGSUM_LOG_KEY = bytes.fromhex("ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f")
# litewitness's test witness key (seed), from its gentest output.
WITNESS_SEED = bytes.fromhex("31ffc2116ecbe003acaa800ab70757bd7d53206e3febef6a6d0796d95530b34f")
WITNESS_PUBLIC = bytes.fromhex("64848ad8abed6e85981b3b3875b252b8767ebb4b02f703aca3b1e71bbd6a8e50")

STATUS = {
    MalformedRequestError: 400,
    UntrustedCheckpointError: 403,
    UnknownLogError: 404,
    SizeConflictError: 409,
    InconsistentCheckpointError: 422,
}


def at(seconds: int):
    return lambda: datetime.fromtimestamp(seconds, UTC)


def status_of(exc: WitnessError) -> int:
    return next(code for cls, code in STATUS.items() if isinstance(exc, cls))


# -- golden vectors -----------------------------------------------------------------------------------------


def test_signed_note_spec_example_vkey_and_signature():
    """c2sp.org/signed-note's example: the vkey parses, its key ID matches, and it verifies the note."""
    vkey = parse_verifier_key("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    assert (vkey.name, vkey.alg, vkey.key_id) == ("example.com/foo", 1, "530d903a")
    note = (
        "This is an example message.\n\n"
        "\u2014 example.com/foo "
        "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
    )
    text, lines = split_note(note)
    assert lines[0].key_hash.hex() == "530d903a"
    Ed25519PublicKey.from_public_bytes(vkey.public_key).verify(lines[0].signature, text.encode())
    assert verifier_key(vkey.name, vkey.public_key) == str(vkey)


def test_cosignature_vkey_key_id_uses_type_0x04():
    """A real cosignature/v1 vkey (transparency-dev/formats tests): ID = SHA-256(name \\n 0x04 key)[:4]."""
    vkey = parse_verifier_key("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert vkey.alg == ALG_COSIGNATURE_V1
    expected = hashlib.sha256(b"remora.n621.de\n\x04" + vkey.public_key).digest()[:4]
    assert vkey.key_id == expected.hex() == "da77ade7"
    with pytest.raises(SignatureError, match="key id"):
        parse_verifier_key("remora.n621.de+da77ade8+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    with pytest.raises(SignatureError, match="type"):
        parse_verifier_key("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2", alg=1)
    # The same Ed25519 key under type 0x01 has another ID: a log key never passes as a cosigner key.
    plain = parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")  # '+' in base64
    assert plain.alg == 1 and cosigner_key("TEST", plain.public_key).key_id != plain.key_id


@pytest.mark.parametrize(
    ("blob", "key_id", "timestamp"),
    [
        # c2sp.org/tlog-cosignature example line by witness.example.com/w1
        (
            "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
            "8d66cf3f",
            1679315147,
        ),
        # transparency-dev/formats TestCoSigV1Timestamp
        (
            "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==",
            "646846b9",
            1727964367,
        ),
    ],
)
def test_timestamped_signature_layout(blob, key_id, timestamp):
    """base64(4-byte key ID || u64 big-endian timestamp || 64-byte Ed25519 signature)."""
    line = parse_signature_line(f"\u2014 w {blob}\n")
    assert line.key_hash.hex() == key_id
    assert len(line.signature) == 72
    assert int.from_bytes(line.signature[:8], "big") == timestamp


def test_cosigned_message_is_header_time_line_then_the_whole_body():
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosigned_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_cosignature_bytes_checked_with_the_bare_primitive():
    """Our cosignature line, taken apart by hand and checked with plain Ed25519 over the spec's message."""
    key = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED)
    assert key.public_key().public_bytes_raw() == WITNESS_PUBLIC
    body = f"{SIGSUM_ORIGIN}\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    line = cosign(body, name="example.com/witness", private_key=key, timestamp=1700000000)
    assert line.startswith("\u2014 example.com/witness ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    assert raw[:4] == hashlib.sha256(b"example.com/witness\n\x04" + WITNESS_PUBLIC).digest()[:4]
    assert raw[4:12] == (1700000000).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1700000000\n" + body.encode()
    Ed25519PublicKey.from_public_bytes(WITNESS_PUBLIC).verify(raw[12:], message)
    # Ed25519 is deterministic: the same inputs give the same line (a stable vector for this code).
    assert line == cosign(body, name="example.com/witness", private_key=key, timestamp=1700000000)
    vkey = cosigner_key("example.com/witness", WITNESS_PUBLIC)
    assert parse_verifier_key(str(vkey)) == vkey
    assert verify_cosignature_line(body, parse_signature_line(line), vkey).timestamp == 1700000000


def sigsum_witness(store=None) -> Witness:
    log_key = parse_verifier_key(verifier_key(SIGSUM_ORIGIN, SIGSUM_LOG_KEY))
    return Witness(
        name="example.com/witness",
        private_key=Ed25519PrivateKey.from_private_bytes(WITNESS_SEED),
        logs=logs_from_keys([log_key]),
        store=store or MemoryWitnessStore(),
        clock=at(1700000000),
    )


def vector_requests() -> list[tuple[int, int | None, bytes]]:
    out = []
    for chunk in ASSETS.joinpath("sigsum_log.txt").read_text().split("=== ")[1:]:
        head, body = chunk.split("\n", 1)
        parts = head.split()
        out.append((int(parts[0]), int(parts[1]) if len(parts) > 1 else None, body.encode()))
    return out


def test_reference_witness_request_sequence():
    """The reference witness's (litewitness) request script: same status for every request, same 409 sizes."""
    witness = sigsum_witness()
    requests = vector_requests()
    assert len(requests) == 9
    for status, size, body in requests:
        try:
            line = witness.add_checkpoint(body)
        except WitnessError as exc:
            assert status_of(exc) == status, (status, exc)
            if isinstance(exc, SizeConflictError):
                assert format_size(exc.known_size) == f"{size}\n".encode()
            continue
        assert status == 200
        request = parse_add_checkpoint(body)
        found = check_quorum(request.checkpoint + line, keys=[witness.key], quorum=1)
        assert found[0].timestamp == 1700000000
    head = witness.store.latest(SIGSUM_ORIGIN)
    assert head is not None and head.tree_size == 5
    assert head.root_hash.hex() == "42bb57ad06420afa4882c4a63ac6a1ec77480b330b2f20dfc53a0caa5f564e36"


def test_request_format_round_trip_and_strictness():
    proof = [bytes([i]) * 32 for i in range(3)]
    note = "o\n3\n" + base64.b64encode(b"\x01" * 32).decode() + "\n\n\u2014 o AAAA\n"
    body = format_add_checkpoint(2, proof, note)
    assert body.startswith(b"old 2\n") and b"\n\no\n3\n" in body
    parsed = parse_add_checkpoint(body)
    assert (parsed.old_size, list(parsed.proof), parsed.checkpoint) == (2, proof, note)
    for bad in (
        b"old 01\n\n" + note.encode(),
        b"old -1\n\n" + note.encode(),
        b"new 1\n\n" + note.encode(),
        b"old 1\nnot-base64\n\n" + note.encode(),
        b"old 1\n" + note.encode(),
        b"\xff\xfe",
    ):
        with pytest.raises(MalformedRequestError):
            parse_add_checkpoint(bad)
    with pytest.raises(MalformedRequestError):
        parse_add_checkpoint(format_add_checkpoint(0, [], note).replace(b"old 0\n", b"old 0\n" + b"AAAA\n" * 64))
    assert parse_size(b"35\n") == 35
    with pytest.raises(MalformedRequestError):
        parse_size(b"035\n")


# -- an attacker who holds the log's signing key ------------------------------------------------------------

ORIGIN = "rationale.test/ledger"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
LOG_VKEY = parse_verifier_key(verifier_key(ORIGIN, LOG_KEY.public_key().public_bytes_raw()))


def signed(leaves: list[bytes]) -> str:
    return sign_note(checkpoint_text(ORIGIN, len(leaves), root_from_leaves(leaves)), name=ORIGIN, private_key=LOG_KEY)


def proof(leaves: list[bytes], first: int) -> list[bytes]:
    if first == 0 or first == len(leaves):
        return []
    return consistency_path(first, len(leaves), lambda s, e: root_from_leaves(leaves[s:e]))


def our_witness(store) -> Witness:
    return Witness(
        name="auditor.example/w1",
        private_key=Ed25519PrivateKey.from_private_bytes(b"\x07" * 32),
        logs=logs_from_keys([LOG_VKEY]),
        store=store,
        clock=at(1800000000),
    )


def push(witness: Witness, leaves: list[bytes], old: int) -> str:
    return witness.add_checkpoint(format_add_checkpoint(old, proof(leaves, old), signed(leaves)))


def leaves_of(n: int, tag: bytes = b"e") -> list[bytes]:
    return [leaf_hash(tag + str(i).encode()) for i in range(n)]


def test_honest_log_is_cosigned_at_every_step():
    store = MemoryWitnessStore()
    witness = our_witness(store)
    leaves = leaves_of(1)
    push(witness, leaves, 0)
    for n in (2, 3, 7, 8, 9, 64, 100):
        old = len(leaves)
        leaves = leaves_of(n)
        line = push(witness, leaves, old)
        check_quorum(signed(leaves) + line, keys=[witness.key], quorum=1)
    push(witness, leaves, len(leaves))  # the same checkpoint again is cosigned again
    assert store.latest(ORIGIN).tree_size == 100  # type: ignore[union-attr]


def test_unknown_origin_and_untrusted_signatures_are_refused():
    witness = our_witness(MemoryWitnessStore())
    leaves = leaves_of(3)
    text = checkpoint_text(ORIGIN, 3, root_from_leaves(leaves))
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(UntrustedCheckpointError):  # same name, other key: an unknown key, so unsigned
        witness.add_checkpoint(format_add_checkpoint(0, [], sign_note(text, name=ORIGIN, private_key=impostor)))
    good = signed(leaves)
    raw = bytearray(good.encode())
    raw[-5] ^= 1  # flip a bit inside the log's signature
    with pytest.raises(UntrustedCheckpointError):
        witness.add_checkpoint(format_add_checkpoint(0, [], raw.decode(errors="replace")))
    other = sign_note(
        checkpoint_text("other.example/log", 3, root_from_leaves(leaves)), name=ORIGIN, private_key=LOG_KEY
    )
    with pytest.raises(UnknownLogError):
        witness.add_checkpoint(format_add_checkpoint(0, [], other))
    with pytest.raises(InconsistentCheckpointError):  # size 0 must have the empty root
        witness.add_checkpoint(
            format_add_checkpoint(
                0, [], sign_note(checkpoint_text(ORIGIN, 0, b"\x01" * 32), name=ORIGIN, private_key=LOG_KEY)
            )
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    extra=st.integers(0, 40),
    changed=st.data(),
    restart=st.booleans(),
    proof_kind=st.sampled_from(["fork", "honest", "none", "garbage"]),
)
def test_forks_signed_with_the_real_key_are_refused(n, extra, changed, restart, proof_kind):
    """Change any entry the witness already covered, extend or not, sign with the real log key, send any
    proof: refused (422), before or after a witness restart; the witness stays at the honest tree."""
    store = MemoryWitnessStore()
    witness = our_witness(store)
    honest = leaves_of(n)
    push(witness, honest, 0)
    index = changed.draw(st.integers(0, n - 1))
    forked = leaves_of(n + extra)
    forked[index] = leaf_hash(b"rewritten" + str(index).encode())
    if restart:
        witness = our_witness(store)
    if proof_kind == "fork":
        sent = proof(forked, n)
    elif proof_kind == "honest":
        sent = proof(leaves_of(n + extra), n)
    elif proof_kind == "none":
        sent = []
    else:
        sent = [hashlib.sha256(bytes([i])).digest() for i in range(len(proof(forked, n)) or 1)]
    with pytest.raises(InconsistentCheckpointError):
        witness.add_checkpoint(format_add_checkpoint(n, sent, signed(forked)))
    head = store.latest(ORIGIN)
    assert head is not None and head.tree_size == n and head.root_hash == root_from_leaves(honest)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 60), data=st.data(), restart=st.booleans())
def test_smaller_trees_are_refused(n, data, restart):
    """A rollback to any smaller tree (the honest prefix, signed by the real key) is never cosigned."""
    store = MemoryWitnessStore()
    witness = our_witness(store)
    push(witness, leaves_of(n), 0)
    if restart:
        witness = our_witness(store)
    k = data.draw(st.integers(1, n - 1))
    smaller = leaves_of(k)
    with pytest.raises(MalformedRequestError):  # claims the witness is at n: old > new size
        witness.add_checkpoint(format_add_checkpoint(n, [], signed(smaller)))
    with pytest.raises(SizeConflictError) as conflict:  # claims the witness is at k (or 0): 409 with n
        witness.add_checkpoint(format_add_checkpoint(data.draw(st.sampled_from([0, k])), [], signed(smaller)))
    assert conflict.value.known_size == n
    assert store.latest(ORIGIN).tree_size == n  # type: ignore[union-attr]


def test_racing_requests_never_roll_the_witness_back():
    """The compare-and-set in the store: a request checked against size N cannot overwrite N+K."""
    store = MemoryWitnessStore()
    witness = our_witness(store)
    push(witness, leaves_of(1), 0)
    push(witness, leaves_of(5), 1)
    with pytest.raises(SizeConflictError):
        push(witness, leaves_of(3), 1)
    assert store.latest(ORIGIN).tree_size == 5  # type: ignore[union-attr]


def test_quorum_counts_distinct_configured_witnesses():
    leaves = leaves_of(4)
    w1 = our_witness(MemoryWitnessStore())
    w2 = Witness(
        name="auditor.example/w2",
        private_key=Ed25519PrivateKey.generate(),
        logs=w1.logs,
        store=MemoryWitnessStore(),
        clock=at(1800000001),
    )
    note = signed(leaves) + push(w1, leaves, 0)
    keys = [w1.key, w2.key]
    assert len(check_quorum(note, keys=keys, quorum=1)) == 1
    with pytest.raises(QuorumError, match="1 of the required 2"):
        check_quorum(note, keys=keys, quorum=2)
    with pytest.raises(QuorumError):  # the same witness twice is still one witness
        check_quorum(note + push(w1, leaves, 4), keys=keys, quorum=2)
    both = note + push(w2, leaves, 0)
    assert len(check_quorum(both, keys=keys, quorum=2)) == 2
    # a cosignature moved onto another checkpoint does not verify, and a known key's bad line is an error
    other = signed(leaves_of(5)) + split_note(both)[1][1].line
    with pytest.raises(SignatureError):
        check_quorum(other, keys=keys, quorum=1)
    # the log's own signature never counts as a cosignature, even with its key configured as a witness
    with pytest.raises(QuorumError):
        check_quorum(signed(leaves), keys=[cosigner_key(ORIGIN, LOG_VKEY.public_key)], quorum=1)


def test_open_witnessed_checkpoint_needs_the_log_key_and_the_quorum():
    from audit.cosignature import open_witnessed_checkpoint

    leaves = leaves_of(6)
    w1 = our_witness(MemoryWitnessStore())
    note = signed(leaves) + push(w1, leaves, 0)
    opened = open_witnessed_checkpoint(note, log_keys=[LOG_VKEY], witness_keys=[w1.key], quorum=1)
    assert (opened.origin, opened.tree_size, opened.root_hash) == (ORIGIN, 6, root_from_leaves(leaves))
    with pytest.raises(SignatureError):  # not signed by the pinned log key
        other = parse_verifier_key(verifier_key(ORIGIN, Ed25519PrivateKey.generate().public_key().public_bytes_raw()))
        open_witnessed_checkpoint(note, log_keys=[other], witness_keys=[w1.key], quorum=1)
    with pytest.raises(QuorumError):
        open_witnessed_checkpoint(signed(leaves), log_keys=[LOG_VKEY], witness_keys=[w1.key], quorum=1)
