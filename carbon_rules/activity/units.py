"""Exact unit conversion for activity data.

Each unit is an exact rational multiple of its dimension's base unit, so a
conversion is one ratio ``num/den`` applied with :func:`carbon_rules.fixed_point.mul_ratio`
(round half up, 18 decimals), the same rounding as every formula. kWh to MWh is
``1/1000`` and exact for any reading (wire values carry at most 12 decimals); GJ to
MWh is ``5/18`` and rounds.

Dimensions never mix: ``Nm3`` (gas at normal conditions) is not ``m3`` (a volume at
line conditions), and reactive energy is not energy.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

from ..errors import IncompatibleUnitsError, UnknownUnitError
from ..fixed_point import Fixed, checked, mul_ratio

__all__ = ["UNITS", "convert", "dimension", "ratio"]

#: unit -> (dimension, size in the dimension's base unit).
UNITS: dict[str, tuple[str, Fraction]] = {
    # energy, base MJ
    "Wh": ("energy", Fraction(36, 10000)),
    "kWh": ("energy", Fraction(36, 10)),
    "MWh": ("energy", Fraction(3600)),
    "GWh": ("energy", Fraction(3600000)),
    "MJ": ("energy", Fraction(1)),
    "GJ": ("energy", Fraction(1000)),
    "TJ": ("energy", Fraction(1000000)),
    # reactive energy, base kvarh
    "kvarh": ("reactive_energy", Fraction(1)),
    "Mvarh": ("reactive_energy", Fraction(1000)),
    # volume at line conditions, base m3
    "L": ("volume", Fraction(1, 1000)),
    "m3": ("volume", Fraction(1)),
    # gas volume at normal conditions, base Nm3
    "Nm3": ("normal_volume", Fraction(1)),
    "10^4Nm3": ("normal_volume", Fraction(10000)),
    # mass, base t
    "kg": ("mass", Fraction(1, 1000)),
    "t": ("mass", Fraction(1)),
}


def dimension(unit: str) -> str:
    """The dimension ``unit`` measures; :class:`UnknownUnitError` if it is not known."""
    try:
        return UNITS[unit][0]
    except KeyError:
        known = ", ".join(UNITS)
        raise UnknownUnitError(f"unknown unit {unit!r} (known: {known})", unit=unit) from None


@cache
def ratio(from_unit: str, to_unit: str) -> tuple[int, int]:
    """``(num, den)`` in lowest terms with ``value_in_to = value_in_from x num / den``."""
    src, dst = dimension(from_unit), dimension(to_unit)
    if src != dst:
        raise IncompatibleUnitsError(
            f"cannot convert {from_unit} ({src}) to {to_unit} ({dst})",
            from_unit=from_unit, to_unit=to_unit,
        )
    r = UNITS[from_unit][1] / UNITS[to_unit][1]
    return r.numerator, r.denominator


def convert(value: int, from_unit: str, to_unit: str) -> Fixed:
    """``value`` (fixed point, in ``from_unit``) in ``to_unit``, rounded half up."""
    num, den = ratio(from_unit, to_unit)
    if num == den:
        return checked(value)
    return mul_ratio(checked(value), num, den)
