"""18-decimal fixed point shared, bit for bit, with ``contracts/EmissionFormulas.sol``.

Representation
    A quantity is a Python ``int`` (typed :data:`Fixed`) holding the decimal value times
    ``10**18`` (:data:`SCALE`): ``"0.5703"`` is ``570300000000000000``. Decimal strings go
    in and out (:func:`parse`, :func:`to_decimal`); floats never appear.

Range
    Every input, intermediate and result must lie in ``[0, MAX_VALUE]`` with
    ``MAX_VALUE = 2**128 - 1`` (the contract's ``type(uint128).max``, about 3.4e20 in
    real units). The first value outside it raises :class:`FixedPointOverflowError`
    carrying that value, exactly like the contract's ``EmissionFormulasOverflow(value)``.
    Signed results (project reductions) lie in ``[-MAX_VALUE, MAX_VALUE]``.

Rounding
    One rule, applied after every multiplication and every ratio and nowhere else:
    **round half up** (ties toward +infinity; operands are non-negative, so this is also
    half away from zero): ``mul(a, b) = (a*b + SCALE//2) // SCALE`` and
    ``mul_ratio(x, n, d) = (x*n + d//2) // d``. Sums are exact. Parsing never rounds: a
    string with more than 18 decimal places is refused, not rounded.
"""

from __future__ import annotations

import re
from typing import NewType, cast

from .errors import FixedPointOverflowError, InvalidDecimalError, contract_error

__all__ = [
    "DECIMALS",
    "HALF",
    "MAX_VALUE",
    "SCALE",
    "Fixed",
    "add",
    "checked",
    "from_int",
    "mul",
    "mul_ratio",
    "parse",
    "quantize",
    "to_decimal",
]

Fixed = NewType("Fixed", int)
"""A non-negative 18-decimal fixed-point quantity (the integer ``value * 10**18``)."""

DECIMALS = 18
SCALE = 10**DECIMALS
HALF = SCALE // 2
MAX_VALUE = 2**128 - 1

# A plain decimal: no sign, no exponent, no spaces, no leading zeros, no bare point.
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?")


def checked(value: int) -> Fixed:
    """``value`` as :data:`Fixed`; raise :class:`FixedPointOverflowError` outside the range.

    Negative values are refused too (the contract's operands are ``uint256``); they
    raise :class:`InvalidDecimalError`, since no formula can produce one.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDecimalError(f"fixed-point value must be an int, got {value!r}")
    if value < 0:
        raise InvalidDecimalError(f"fixed-point value must not be negative, got {value}")
    if value > MAX_VALUE:
        raise _overflow(value)
    return Fixed(value)


def _overflow(value: int) -> FixedPointOverflowError:
    error = contract_error("EmissionFormulasOverflow", {"value": value})
    return cast(FixedPointOverflowError, error)


def _result(value: int) -> Fixed:
    if value > MAX_VALUE:
        raise _overflow(value)
    return Fixed(value)


def mul(a: Fixed, b: Fixed) -> Fixed:
    """``a * b`` rounded half up (operands already checked), like ``EmissionFormulas.mul``."""
    return _result((a * b + HALF) // SCALE)


def mul_ratio(x: Fixed, num: int, den: int) -> Fixed:
    """``x * num / den`` rounded half up, like ``EmissionFormulas.mulRatio``."""
    if num < 0 or den <= 0:
        raise InvalidDecimalError(f"ratio must be non-negative over positive, got {num}/{den}")
    return _result((x * num + den // 2) // den)


def add(a: Fixed, b: Fixed) -> Fixed:
    """``a + b``, exact (operands already checked), like ``EmissionFormulas.add``."""
    return _result(a + b)


def parse(text: str) -> Fixed:
    """Parse a plain decimal string (``"0.5703"``, ``"1000000"``) into :data:`Fixed`.

    Refuses signs, exponents, whitespace, leading zeros (``"007"``), a bare point,
    more than 18 decimal places (no silent rounding) and values above ``MAX_VALUE``.
    """
    if not isinstance(text, str):
        raise InvalidDecimalError(f"expected a decimal string, got {type(text).__name__}")
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidDecimalError(f"not a plain non-negative decimal: {text!r}")
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > DECIMALS:
        raise InvalidDecimalError(
            f"{text!r} has {len(frac)} decimal places; at most {DECIMALS} are allowed"
        )
    return checked(int(whole) * SCALE + int(frac.ljust(DECIMALS, "0") or "0"))


def from_int(units: int) -> Fixed:
    """A whole number of units (``28`` for a GWP of 28) as :data:`Fixed`."""
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise InvalidDecimalError(f"expected a non-negative int, got {units!r}")
    return checked(units * SCALE)


def to_decimal(value: int, places: int | None = None) -> str:
    """The decimal string of a fixed-point ``value`` (signed values allowed).

    Without ``places``: the shortest exact form (``"997"``, ``"0.5703"``). With
    ``places``: rounded half away from zero to that many places and padded
    (``to_decimal(x, 3)`` for a report in tonnes to the kilogram).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDecimalError(f"expected an int, got {value!r}")
    if places is not None:
        return _fixed_places(value, places)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), SCALE)
    frac_text = f"{frac:0{DECIMALS}d}".rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def quantize(value: int, places: int) -> int:
    """``value`` rounded half away from zero to ``places`` decimals (still scaled by 10**18)."""
    if not 0 <= places <= DECIMALS:
        raise InvalidDecimalError(f"places must be in 0..{DECIMALS}, got {places}")
    step: int = 10 ** (DECIMALS - places)
    magnitude = (abs(value) + step // 2) // step * step
    return -magnitude if value < 0 else magnitude


def _fixed_places(value: int, places: int) -> str:
    rounded = quantize(value, places)
    sign = "-" if rounded < 0 else ""
    whole, frac = divmod(abs(rounded), SCALE)
    if places == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{f'{frac:0{DECIMALS}d}'[:places]}"
