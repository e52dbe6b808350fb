"""The fixed-point representation: parsing, formatting, rounding, overflow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_rules.errors import FixedPointOverflowError, InvalidDecimalError
from carbon_rules.fixed_point import (
    HALF,
    MAX_VALUE,
    SCALE,
    Fixed,
    add,
    checked,
    from_int,
    mul,
    mul_ratio,
    parse,
    quantize,
    to_decimal,
)


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("0", 0),
        ("1", SCALE),
        ("0.5703", 570_300_000_000_000_000),
        ("997", 997 * SCALE),
        ("12.50", 12_500_000_000_000_000_000),
        ("0.000000000000000001", 1),
        ("340282366920938463463.374607431768211455", MAX_VALUE),
    ],
)
def test_parse_and_format_round_trip(text: str, raw: int) -> None:
    assert parse(text) == raw
    assert parse(to_decimal(raw)) == raw
    assert to_decimal(raw) == (text.rstrip("0").rstrip(".") if "." in text else text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "not a plain"),
        ("+1", "not a plain"),
        ("1e3", "not a plain"),
        (" 1", "not a plain"),
        ("1.", "not a plain"),
        (".5", "not a plain"),
        ("007", "not a plain"),
        ("1,000", "not a plain"),
        ("", "not a plain"),
        ("NaN", "not a plain"),
        ("0.0000000000000000001", "19 decimal places"),
    ],
)
def test_parse_refuses_anything_but_plain_decimals(text: str, reason: str) -> None:
    with pytest.raises(InvalidDecimalError, match=reason):
        parse(text)


def test_parse_refuses_floats_and_overflow() -> None:
    with pytest.raises(InvalidDecimalError, match="expected a decimal string"):
        parse(0.5)  # type: ignore[arg-type]
    with pytest.raises(FixedPointOverflowError) as info:
        parse("340282366920938463463.374607431768211456")
    assert info.value.error == "EmissionFormulasOverflow"
    assert info.value.error_args == {"value": MAX_VALUE + 1}
    assert str(info.value) == f"EmissionFormulasOverflow(value={MAX_VALUE + 1})"
    assert isinstance(info.value, OverflowError)


def test_mul_rounds_half_up_at_the_18th_place() -> None:
    one_raw = Fixed(1)  # 1e-18
    assert mul(one_raw, Fixed(HALF)) == 1  # 0.5e-18 is a tie: up
    assert mul(one_raw, Fixed(HALF - 1)) == 0  # just below the tie: down
    assert mul(Fixed(3), Fixed(HALF)) == 2  # 1.5e-18: up
    assert mul(parse("1.5"), parse("1.5")) == parse("2.25")  # exact products stay exact


def test_mul_ratio_rounds_half_up() -> None:
    assert mul_ratio(Fixed(1), 44, 12) == 4  # 3.67e-18
    assert mul_ratio(Fixed(3), 1, 2) == 2  # 1.5e-18 tie: up
    assert mul_ratio(Fixed(1), 1, 3) == 0  # 0.33e-18
    assert mul_ratio(Fixed(2), 1, 3) == 1  # 0.67e-18
    with pytest.raises(InvalidDecimalError):
        mul_ratio(Fixed(1), 1, 0)


def test_results_above_max_overflow_with_the_value() -> None:
    big = Fixed(MAX_VALUE)
    with pytest.raises(FixedPointOverflowError) as info:
        add(big, Fixed(1))
    assert info.value.error_args == {"value": MAX_VALUE + 1}
    with pytest.raises(FixedPointOverflowError) as info:
        mul(big, parse("2"))
    assert info.value.error_args == {"value": 2 * MAX_VALUE}
    assert mul(big, parse("1")) == MAX_VALUE


def test_checked_and_from_int() -> None:
    assert checked(MAX_VALUE) == MAX_VALUE
    with pytest.raises(FixedPointOverflowError):
        checked(MAX_VALUE + 1)
    with pytest.raises(InvalidDecimalError, match="negative"):
        checked(-1)
    with pytest.raises(InvalidDecimalError):
        checked(True)
    assert from_int(28) == parse("28")


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (parse("106.315326"), 3, "106.315"),
        (parse("2.9250559805"), 4, "2.9251"),
        (parse("0.0005"), 3, "0.001"),  # half away from zero
        (-parse("0.0005"), 3, "-0.001"),
        (parse("997"), 2, "997.00"),
        (parse("1.5"), 0, "2"),
    ],
)
def test_to_decimal_with_places(value: int, places: int, text: str) -> None:
    assert to_decimal(value, places) == text
    assert parse(text.lstrip("-")) == abs(quantize(value, places))


def test_signed_values_format() -> None:
    assert to_decimal(-parse("1.25")) == "-1.25"
    assert to_decimal(-SCALE) == "-1"


@given(st.integers(0, MAX_VALUE))
def test_every_value_formats_and_parses_back(raw: int) -> None:
    assert parse(to_decimal(raw)) == raw


@given(st.integers(0, 2**64), st.integers(0, 2**64))
def test_mul_is_the_nearest_representable_product(a: int, b: int) -> None:
    exact_numerator = a * b
    got = mul(Fixed(a), Fixed(b))
    # |got - a*b/SCALE| <= 1/2, ties rounded up
    assert 2 * abs(got * SCALE - exact_numerator) <= SCALE
    if 2 * (exact_numerator % SCALE) == SCALE:
        assert got * SCALE > exact_numerator
