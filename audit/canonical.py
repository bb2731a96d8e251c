"""The one place canonical bytes are made: RFC 8785 (JSON Canonicalization Scheme).

Every hash in the ledger is over these bytes, so they are produced here and nowhere else. Values that
JSON cannot carry (NaN, infinities) are refused with the path of the offending value, never coerced.

The common case goes through the standard library's C JSON encoder, ten times faster than a pure-Python
JCS writer: its output is RFC 8785 except for the spelling of floats (ECMAScript's Number-to-String is
applied to each) and for cases it is never trusted with — non-ASCII text (key order by UTF-16 units),
integers past 2**53, non-string keys, tuples. Those, and anything odd, go to the `rfc8785` package, so
both paths give the same bytes (a property test holds them to it).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from audit.errors import NonCanonicalValueError

_MAX_SAFE_INT = 2**53 - 1


def check_json_value(value: Any, path: str = "") -> None:
    """Raise NonCanonicalValueError naming the first value RFC 8785 cannot encode."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise NonCanonicalValueError(path, "integer exceeds the I-JSON safe range (2**53-1)")
        return
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NonCanonicalValueError(path, "NaN and infinity are not JSON values")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NonCanonicalValueError(path, f"object key {key!r} is not a string")
            check_json_value(item, f"{path}.{key}" if path else key)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json_value(item, f"{path}[{i}]")
        return
    raise NonCanonicalValueError(path, f"type {type(value).__name__} is not a JSON value")


def canonical_bytes(value: Any) -> bytes:
    """Encode a JSON value as RFC 8785 bytes; raises NonCanonicalValueError on non-JSON input."""
    fast = _fast_canonical(value)
    if fast is not None:
        return fast
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        check_json_value(value)  # raises with the path when we can name it
        raise NonCanonicalValueError("", str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Encoded:
    """A JSON value with its RFC 8785 bytes, made once (perhaps in another process) and spliced into every
    larger document that holds the value, instead of being encoded again for each."""

    value: Any
    data: bytes

    @classmethod
    def of(cls, value: Any) -> Encoded:
        return cls(value, canonical_bytes(value))


# a value no caller can know: it stands in for an Encoded member while the rest of the object is encoded
_MARK = secrets.token_hex(16)
_MARK_BYTES = _MARK.encode("ascii")


def plain_members(members: Mapping[str, Any]) -> dict[str, Any]:
    """The object with each Encoded member replaced by its value."""
    return {k: v.value if isinstance(v, Encoded) else v for k, v in members.items()}


def canonical_object(members: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of an object whose top-level members may be ``Encoded``: the other members are encoded
    in one call with a unique mark in each Encoded member's place, and each mark is replaced by its bytes.
    The same bytes as ``canonical_bytes(plain_members(members))`` (a property test holds it to that); a mark
    found anywhere but in its own place sends the object to that plain encoding."""
    marked: dict[str, Any] = {}
    spliced: list[tuple[bytes, bytes]] = []
    for i, (key, value) in enumerate(members.items()):
        if isinstance(value, Encoded):
            mark = f"{_MARK}.{i}"
            marked[key] = mark
            spliced.append((b'"' + mark.encode("ascii") + b'"', value.data))
        else:
            marked[key] = value
    if not spliced:
        return canonical_bytes(marked)
    data = canonical_bytes(marked)
    if data.count(_MARK_BYTES) != len(spliced) or any(_MARK_BYTES in encoded for _, encoded in spliced):
        return canonical_bytes(plain_members(members))
    for quoted, encoded in spliced:
        data = data.replace(quoted, encoded, 1)
    return data


_MAX_SAFE_INT_DIGITS = len(str(_MAX_SAFE_INT))


def _checked_int(token: str) -> int:
    value = int(token)
    if len(token) >= _MAX_SAFE_INT_DIGITS and abs(value) > _MAX_SAFE_INT:
        raise ValueError("integer outside the I-JSON range")
    return value


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_int=_checked_int)
# the floats Python spells unlike ECMAScript: integral ones ("2.0") and those with an exponent ("1e-05");
# every number the encoder writes stands after ":", "[", "," (or alone) and before ",", "]", "}" (or the end)
_RESPELL = re.compile(r"[:,\[](-?[0-9]+(?:\.0|(?:\.[0-9]+)?e[-+][0-9]+))(?=[,\]}])")
_RESPELL_HINTS = (".0,", ".0]", ".0}", "e-", "e+")


def _fast_canonical(value: Any) -> bytes | None:
    """RFC 8785 bytes from the C encoder, or None when this value needs the careful path."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        return None
    if not text.isascii():  # key order by UTF-16 units: leave it to the careful path
        return None
    if text[0] not in "{[":
        text = es_number(value) if isinstance(value, float) else text
    elif any(hint in text for hint in _RESPELL_HINTS):
        text = _RESPELL.sub(_respell_float, text)
    # what was written must read back as the value itself: no key coerced to a string, no tuple turned
    # into a list, no integer past 2**53, no digits in a string mistaken for a float above
    try:
        if _DECODER.decode(text) != value:
            return None
    except ValueError:
        return None
    return text.encode("ascii")


def _respell_float(match: re.Match[str]) -> str:
    return match.group(0)[0] + es_number(float(match.group(1)))


def es_number(f: float) -> str:
    """ECMAScript Number::toString of a finite float (RFC 8785 §3.2.2.3), from Python's shortest repr."""
    if f == 0:
        return "0"
    if f < 0:
        return "-" + es_number(-f)
    digits, _, exponent_text = repr(f).partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = digits.partition(".")
    if fraction == "0":
        fraction = ""
    if exponent == 0:
        return f"{whole}.{fraction}" if fraction else whole
    # one digit before the point whenever Python used an exponent: significand digits and decimal exponent
    significand = whole + fraction
    point = exponent + 1  # digits before the decimal point
    if 0 < exponent < 21:
        return (
            significand + "0" * (point - len(significand))
            if point >= len(significand)
            else (f"{significand[:point]}.{significand[point:]}")
        )
    if -7 < exponent < 0:
        return "0." + "0" * (-exponent - 1) + significand
    mantissa = f"{significand[0]}.{significand[1:]}" if len(significand) > 1 else significand
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"
