"""The one strict JSON reader for every request body (and for JSON inside multipart parts).

The standard library's ``json.loads`` is lenient where a ledger cannot be: the last of two duplicate keys
silently wins (``{"decision_id": "a", "decision_id": "b"}``), ``NaN``/``Infinity`` parse, a 5,000-digit
integer raises a bare ``ValueError`` (CPython's int-string limit), a 100,000-level array a
``RecursionError``, and U+0000 is accepted although PostgreSQL ``jsonb`` cannot store it (the same body
would be recorded on SQLite and a 500 on PostgreSQL). This reader refuses every one of those with a
``JsonBodyError`` naming the path at fault, in the same ``a.b[3].c`` spelling validation errors use:

========================  ================================================================================
limit                     rule
========================  ================================================================================
``MAX_DEPTH`` = 32        objects/arrays nested deeper are refused (the path names where it got too deep)
``MAX_INT``  = 2**53-1    integers beyond ±(2**53-1), the I-JSON / RFC 8785 safe range, are refused
NaN, ±Infinity            refused (not JSON); so are numbers that overflow a double (``1e400``)
duplicate keys            refused, naming the key
U+0000                    refused in keys and strings (decided: the same 422 on SQLite and PostgreSQL)
invalid UTF-8, surrogates refused, naming the string that holds them
========================  ================================================================================

Parsing is one pass of the C parser (hooks only see numbers and objects) and one walk that builds the
plain dicts and lists, so the cost over ``json.loads`` is a walk of the tree, nothing quadratic.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_INT = 2**53 - 1
_MAX_INT_DIGITS = len(str(MAX_INT))
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class JsonBodyError(ValueError):
    """A body is not acceptable JSON; ``path`` names where (``body`` when it cannot be parsed at all)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


class _Pairs(list[tuple[str, Any]]):
    """An object as the parser saw it, duplicates and all, until the walk checks it."""


class _Refused:
    """A scalar the parser met that JSON for a ledger cannot hold; the walk reports it with its path."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> Any:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS:
        return _Refused(f"integer of {len(digits)} digits is beyond the limit ±(2**53-1)")
    value = int(text)
    if abs(value) > MAX_INT:
        return _Refused("integer is beyond the limit ±(2**53-1)")
    return value


def _parse_float(text: str) -> Any:
    value = float(text)
    if not math.isfinite(value):
        return _Refused("number is too large for a double")
    return value


def _parse_constant(text: str) -> Any:
    return _Refused(f"{text} is not a JSON value (NaN and infinities are refused)")


def _shown(key: str) -> str:
    """A key as it may appear in an error path: U+0000 and surrogates escaped, so the answer encodes."""
    return _BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", key)


def _join(path: str, key: str) -> str:
    key = _shown(key)
    return f"{path}.{key}" if path else key


def _check_text(text: str, path: str, what: str) -> None:
    bad = _BAD_TEXT.search(text)
    if bad is None:
        return
    if bad.group() == "\x00":
        raise JsonBodyError(path, f"{what} contains U+0000, which is not stored")
    raise JsonBodyError(path, f"{what} is not valid UTF-8 (a lone surrogate or an invalid byte)")


def _build(value: Any, path: str, depth: int) -> Any:
    if isinstance(value, str):
        _check_text(value, path or "body", "string")
        return value
    if isinstance(value, _Refused):
        raise JsonBodyError(path or "body", value.reason)
    if isinstance(value, _Pairs):
        if depth >= MAX_DEPTH:
            raise JsonBodyError(path or "body", f"nested too deep: at most {MAX_DEPTH} levels of objects and arrays")
        out: dict[str, Any] = {}
        for key, item in value:
            where = _join(path, key)
            _check_text(key, where, "key")
            if key in out:
                raise JsonBodyError(where, "duplicate key")
            out[key] = _build(item, where, depth + 1)
        return out
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise JsonBodyError(path or "body", f"nested too deep: at most {MAX_DEPTH} levels of objects and arrays")
        return [_build(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    return value


def parse_json(raw: bytes | str, *, where: str = "") -> Any:
    """Parse ``raw`` strictly; raise JsonBodyError naming the path (prefixed with ``where``) at fault."""
    if isinstance(raw, bytes):
        # surrogateescape keeps going past a bad byte so the error can name the string that holds it
        text = raw.decode("utf-8", errors="surrogateescape")
        if text.startswith("\ufeff"):
            raise JsonBodyError(where or "body", "a byte-order mark is not allowed before JSON")
    else:
        text = raw
    try:
        parsed = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError as exc:
        raise JsonBodyError(where or "body", f"nested too deep: at most {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise JsonBodyError(
            where or "body", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except ValueError as exc:  # anything else the parser refuses, never a 500
        raise JsonBodyError(where or "body", f"not valid JSON: {exc}") from exc
    try:
        return _build(parsed, where, 0)
    except RecursionError as exc:  # pragma: no cover - MAX_DEPTH stops the walk long before
        raise JsonBodyError(where or "body", f"nested too deep: at most {MAX_DEPTH} levels") from exc
