"""The stdlib Ed25519 of verify.py: the RFC 8032 §7.1 vectors, and agreement with ``cryptography`` (OpenSSL)
on random keys and messages, genuine and corrupted signatures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.bundle.core import core

VECTORS = json.loads((Path(__file__).parents[1] / "assets" / "rfc8032" / "ed25519.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_rfc8032_vectors_verify_and_any_change_fails(vector):
    public, message, signature = (bytes.fromhex(vector[k]) for k in ("public_key", "message", "signature"))
    verify = core().ed25519_verify
    assert verify(public, message, signature)
    assert not verify(public, message + b"\x00", signature)
    for at in (0, 31, 32, 63):  # R and S, first and last byte
        broken = bytearray(signature)
        broken[at] ^= 0x01
        assert not verify(public, message, bytes(broken))
    other = bytearray(public)
    other[0] ^= 0x01
    assert not verify(bytes(other), message, signature)


def test_the_vectors_are_what_openssl_signs():
    """The transcription of the RFC's hex is checked too: Ed25519 is deterministic."""
    for v in VECTORS:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["secret_key"]))
        assert key.public_key().public_bytes_raw().hex() == v["public_key"]
        assert key.sign(bytes.fromhex(v["message"])).hex() == v["signature"]


def test_s_not_below_the_group_order_is_refused():
    """RFC 8032 §5.1.7: S >= L must be rejected (malleability); S + L is otherwise an equivalent scalar."""
    v = VECTORS[0]
    public, message, signature = (bytes.fromhex(v[k]) for k in ("public_key", "message", "signature"))
    s = int.from_bytes(signature[32:], "little") + core().L
    assert not core().ed25519_verify(public, message, signature[:32] + s.to_bytes(32, "little"))


def _openssl(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300), flip=st.integers(-1, 8 * 64 - 1))
def test_agrees_with_cryptography_on_random_keys_and_messages(seed, message, flip):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes_raw()
    signature = bytearray(key.sign(message))
    if flip >= 0:  # a corrupted signature: one bit of R or S flipped
        signature[flip // 8] ^= 1 << (flip % 8)
    ours = core().ed25519_verify(public, message, bytes(signature))
    assert ours == _openssl(public, message, bytes(signature))
    assert ours == (flip < 0)


@settings(max_examples=100, deadline=None)
@given(
    public=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=64),
    signature=st.binary(min_size=64, max_size=64),
)
def test_agrees_with_cryptography_on_arbitrary_bytes(public, message, signature):
    assert core().ed25519_verify(public, message, signature) == _openssl(public, message, signature)
