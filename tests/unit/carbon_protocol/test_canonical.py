"""RFC 8785: our fast path must be byte-identical to the reference implementation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_protocol.canonical import MAX_SAFE_INTEGER, canonical_json
from carbon_protocol.errors import EncodingError
from carbon_protocol.identifiers import IDENTIFIER_PATTERN
from carbon_protocol.models import QUANTITY_UNITS, Domain, Reading
from carbon_protocol.signing import reading_bytes

json_scalars = (
    st.none() | st.booleans() | st.text(max_size=20)
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@given(json_values)
def test_fast_path_equals_reference(value: object) -> None:
    try:
        want = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(EncodingError):
            canonical_json(value)
        return
    assert canonical_json(value) == want


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_take_the_reference_path(value: float) -> None:
    assert canonical_json({"x": value}) == rfc8785.dumps({"x": value})


def test_key_order_is_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: U+10000 (surrogates D800 DC00) sorts before U+E000 in UTF-16.
    value = {"\ue000": 1, "\U00010000": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U00010000".encode()) < canonical_json(value).index(
        "\ue000".encode()
    )


def test_known_answer() -> None:
    assert canonical_json({"b": [1, "x\n\u001f"], "a": None, "é": True}) == (
        b'{"a":null,"b":[1,"x\\n\\u001f"],"\xc3\xa9":true}'
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, "\ud800", {1: "x"}, object()])
def test_unencodable_values_raise(bad: object) -> None:
    with pytest.raises(EncodingError):
        canonical_json({"x": bad})


def test_integers_beyond_ieee_double_are_refused() -> None:
    with pytest.raises(EncodingError):
        canonical_json(2**53 + 1)


_identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
_decimals = st.from_regex(r"-?(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,12})?", fullmatch=True)
_hex16 = st.binary(min_size=16, max_size=16).map(bytes.hex)
_safe_ints = st.integers(min_value=1, max_value=MAX_SAFE_INTEGER)


@st.composite
def _readings(draw: st.DrawFn) -> Reading:
    quantity = draw(st.sampled_from(sorted(QUANTITY_UNITS)))
    return Reading(
        suite=draw(st.sampled_from(["sm", "intl"])), key_id=draw(_hex16),
        device=draw(_identifiers), seq=draw(_safe_ints),
        measured_at=draw(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC))
                         .map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))),
        quantity=quantity, unit=draw(st.sampled_from(sorted(QUANTITY_UNITS[quantity]))),
        value=draw(_decimals), cumulative=draw(st.none() | _decimals),
        quality=draw(st.sampled_from(["measured", "estimated", "manual", "substituted"])),
        salt=draw(_hex16),
        domain=Domain(chain_id=draw(_safe_ints), contract="0x" + draw(st.binary(
            min_size=20, max_size=20)).hex(), log_id=draw(_identifiers)),
    )


@settings(max_examples=500)
@given(_readings())
def test_reading_bytes_spelled_out_field_by_field_are_rfc8785(reading: Reading) -> None:
    """``reading_bytes`` writes the canonical form by hand, trusting the Reading schema;
    this is the check that the trust is earned, against the reference implementation."""
    assert reading_bytes(reading) == rfc8785.dumps(reading.model_dump(mode="json"))
