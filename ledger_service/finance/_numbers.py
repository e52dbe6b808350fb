"""Decimal helpers shared by the finance modules: exact comparisons, wire text."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Final

EXACT: Final = Context(prec=60)
"""Enough digits that products and quotients of ledger-sized numbers are exact or
rounded far below anything a threshold can resolve."""

_WIRE_PLACES: Final = Decimal(1).scaleb(-12)


def wire_decimal(value: Decimal) -> str:
    """``value`` as ``DecimalStr`` text: at most 12 decimals, no exponent, no trailing zeros.

    Rounds half-even at the 12th decimal; the thresholds compare the exact values, so
    this rounding only affects what is displayed and signed.
    """
    q = value.quantize(_WIRE_PLACES, rounding=ROUND_HALF_EVEN, context=EXACT)
    text = format(q, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
