"""The fast canonical encoder gives exactly the bytes of the reference RFC 8785 implementation."""

from __future__ import annotations

import math
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import _fast_canonical, canonical_bytes, es_number
from audit.errors import NonCanonicalValueError

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["a:1.0,b", "[2e-05]", ",3.0}", 'x\n"\\\u0001', "\U0001f600", "\ue000"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=30,
)


def reference(value: object) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError):
        return None


@settings(max_examples=3000, deadline=None)
@given(json_values)
def test_same_bytes_as_the_reference_implementation(value):
    expected = reference(value)
    if expected is None:
        with pytest.raises(NonCanonicalValueError):
            canonical_bytes(value)
    else:
        assert canonical_bytes(value) == expected


def test_floats_are_spelled_as_ecmascript_does():
    cases = {
        0.0: "0",
        2.0: "2",
        1e21: "1e+21",
        1e20: "100000000000000000000",
        1e-7: "1e-7",
        1e-6: "0.000001",
        1.5e-5: "0.000015",
        123.456: "123.456",
        5e-324: "5e-324",
        1.7976931348623157e308: "1.7976931348623157e+308",
        -1.25e16: "-12500000000000000",
    }
    for value, spelled in [*cases.items(), (-0.0, "0")]:
        assert es_number(value) == spelled
    rng = __import__("random").Random(7)
    for _ in range(20_000):
        f = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if math.isfinite(f):
            assert es_number(f).encode() == rfc8785.dumps(f)


def test_typical_payloads_take_the_fast_path_and_odd_ones_do_not():
    payload = {"inputs": {"income": 49466.42, "age": 40, "tiny": 3e-05}, "values": [1.0, -0.0], "label": "ok"}
    assert _fast_canonical(payload) == rfc8785.dumps(payload)
    assert _fast_canonical({"k": "caf\u00e9"}) is None  # non-ASCII: key order by UTF-16 units
    assert _fast_canonical({"n": 2**60}) is None
    assert _fast_canonical({1: "int key"}) is None
    assert _fast_canonical({"t": (1, 2)}) is None
    assert _fast_canonical({"s": "a:1.0,b"}) is None  # digits inside a string that look like a float
    assert canonical_bytes({"t": (1, 2)}) == b'{"t":[1,2]}'
    with pytest.raises(NonCanonicalValueError):
        canonical_bytes({"x": float("nan")})
    with pytest.raises(NonCanonicalValueError):
        canonical_bytes({1: "int key"})
