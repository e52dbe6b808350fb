"""RFC 8785 JSON Canonicalization Scheme (JCS): the only way protocol bytes are made.

Every signed or hashed object (readings, tree heads, proof bundles) is serialised by
:func:`canonical_json`, used alike by the gateway, the ledger and the verifier, so a
signature made at the edge verifies byte for byte anywhere.

Protocol objects contain only strings, safe integers, booleans, nulls, arrays and
objects with ASCII keys. For those, RFC 8785 output coincides with Python's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``: keys sort by
UTF-16 code units (the same as code points below U+D800), strings escape exactly
``"``, ``\\``, ``\\b \\f \\n \\r \\t`` and other controls as lowercase ``\\u00xx``
(RFC 8785 §3.2.2.2), and integers below 2**53 print as ECMAScript numbers
(§3.2.2.3). Anything else (floats, big integers, non-BMP keys) goes through the
reference ``rfc8785`` package, and a property test keeps the two paths identical.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from .errors import EncodingError

__all__ = ["canonical_json", "MAX_SAFE_INTEGER"]

MAX_SAFE_INTEGER = 2**53 - 1

_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _fast_path_ok(value: Any) -> bool:
    """True when ``json.dumps`` output is already RFC 8785 canonical for ``value``."""
    t = type(value)
    if t is str or value is None or t is bool:
        return True
    if t is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not k.isascii() or not _fast_path_ok(v):
                return False
        return True
    if t is list or t is tuple:
        return all(_fast_path_ok(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` to RFC 8785 canonical UTF-8 bytes.

    Raises :class:`EncodingError` for values JSON cannot carry faithfully (NaN,
    infinities, lone surrogates, non-string keys, unsupported types).
    """
    try:
        if _fast_path_ok(value):
            return _dumps(value).encode("utf-8")
        return rfc8785.dumps(value)
    except (UnicodeEncodeError, ValueError, TypeError, rfc8785.CanonicalizationError) as exc:
        raise EncodingError(f"value cannot be canonicalised as RFC 8785 JSON: {exc}") from exc
