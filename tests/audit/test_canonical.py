"""The fast canonical encoder gives exactly the bytes of the reference RFC 8785 implementation."""

from __future__ import annotations

import math
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import _MARK, Encoded, _fast_canonical, canonical_bytes, canonical_object, es_number, plain_members
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


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.tuples(json_values, st.booleans()), max_size=8), st.booleans())
def test_spliced_members_give_the_bytes_of_the_plain_object(members, forge):
    """Members given with their bytes are spliced where the plain object would spell them, whatever the
    other members hold: even a string spelling the mark itself (forge) cannot move a member's bytes."""
    given = {k: Encoded.of(v) if wrap and reference(v) is not None else v for k, (v, wrap) in members.items()}
    if forge and given:
        wrapped = [i for i, v in enumerate(given.values()) if isinstance(v, Encoded)]
        given["forged"] = f"{_MARK}.{wrapped[0] if wrapped else 0}"
    plain = plain_members(given)
    expected = reference(plain)
    if expected is None:  # a plain member RFC 8785 refuses
        with pytest.raises(NonCanonicalValueError):
            canonical_object(given)
    else:
        assert canonical_object(given) == expected


def test_a_mark_inside_an_encoded_member_or_a_key_is_not_spliced_twice():
    inner = Encoded.of({"note": f"{_MARK}.1"})
    given = {"a": inner, "b": Encoded.of([1.5, 2.0]), f"{_MARK}.1": "key"}
    assert canonical_object(given) == rfc8785.dumps(plain_members(given))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.just(__import__("datetime").UTC)) | st.text(alphabet="0123456789-T:.Z ", max_size=28))
def test_timestamps_read_back_as_strptime_reads_them(value):
    """The fast reader of the ledger's timestamps agrees with strptime on every string, good or bad."""
    from datetime import UTC, datetime

    from audit.entry import format_timestamp, parse_timestamp

    text = format_timestamp(value) if isinstance(value, datetime) else value
    try:
        expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        with pytest.raises(ValueError):
            parse_timestamp(text)
    else:
        assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00.000000Z",  # the right shape, no such day
        "2026-12-01T24:00:00.000000Z",
        "2026-12-01T10:00:60.000000Z",
        "2026-12-01T10:00:00.000000Z\n",
        "\uff12\uff10\uff12\uff16-12-01T10:00:00.000000Z",  # digits that are not ASCII
        "2026-12-01T10:00:00.123456Z",
    ],
)
def test_odd_timestamps_read_as_strptime_reads_them(text):
    test_timestamps_read_back_as_strptime_reads_them.hypothesis.inner_test(text)
