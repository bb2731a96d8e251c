"""The one place canonical bytes are made: RFC 8785 (JSON Canonicalization Scheme).

Every hash in the ledger is over these bytes, so they are produced here and nowhere else. Values that
JSON cannot carry (NaN, infinities) are refused with the path of the offending value, never coerced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        check_json_value(value)  # raises with the path when we can name it
        raise NonCanonicalValueError("", str(exc)) from exc
