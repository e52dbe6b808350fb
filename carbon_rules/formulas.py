"""Emission formulas, bit-identical to ``contracts/EmissionFormulas.sol``.

Each function evaluates the same steps in the same order as its Solidity twin (the
steps are listed in each docstring and in the contract's NatSpec), with the fixed-point
rules of :mod:`carbon_rules.fixed_point`: 18 decimals, round half up after every
multiplication or ratio, every value in ``[0, 2**128 - 1]``. Inputs are checked in
argument order before anything is computed, so an overflow names the same value in
Python and on chain.

Sources: purchased electricity and heat ``E = AD x EF`` (seed case 18, AD in MWh, EF in
tCO2/MWh; heat in GJ with EF in tCO2/GJ); fossil-fuel combustion
``E = sum FC x NCV x CC x OF x 44/12`` (the NDRC enterprise GHG accounting guidelines'
combustion formula); process emissions ``E = sum amount x EF x GWP``; a CCER-style
project ``reductions = baseline - project - leakage`` (seed case 3).

:func:`choose_activity_data` is case 18's data-source priority for purchased
electricity: the meter reading first, then the supplier's bill, cross-checked against
the enterprise's purchase ledger (购电台账) within a tolerance. It has no on-chain twin:
it picks an input, it does not compute an emission.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .errors import ActivityDataError, InvalidDecimalError
from .fixed_point import SCALE, Fixed, add, checked, mul, mul_ratio

__all__ = [
    "CO2_PER_C",
    "UINT256_MAX",
    "ActivityDataChoice",
    "FuelLine",
    "LedgerCheck",
    "ProcessLine",
    "choose_activity_data",
    "fuel_combustion",
    "fuel_line",
    "kwh_to_mwh",
    "process_emissions",
    "process_line",
    "project_reductions",
    "purchased_energy",
]

#: The molar-mass ratio CO2 / C, applied as the exact ratio 44/12.
CO2_PER_C = (44, 12)
#: The largest value an ABI ``uint256`` input can carry (inputs above ``MAX_VALUE`` but
#: within ``uint256`` reach the contract and fail there with an overflow, as here).
UINT256_MAX = 2**256 - 1


def _uint256(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT256_MAX:
        raise InvalidDecimalError(f"{name} must be a uint256 fixed-point int, got {value!r}")
    return value


@dataclass(frozen=True)
class FuelLine:
    """One fuel of a combustion source (``EmissionFormulas.FuelLine``).

    ``consumption`` FC in t (10**4 Nm3 for gases), ``net_calorific_value`` NCV in GJ per
    unit of FC, ``carbon_content`` CC in tC/GJ, ``oxidation_rate`` OF as a fraction; all
    fixed point. Range checks happen when the line is computed, in formula order.
    """

    consumption: int
    net_calorific_value: int
    carbon_content: int
    oxidation_rate: int

    def __post_init__(self) -> None:
        for name in ("consumption", "net_calorific_value", "carbon_content", "oxidation_rate"):
            _uint256(name, getattr(self, name))

    def to_abi(self) -> tuple[int, int, int, int]:
        """The ABI tuple ``(consumption, netCalorificValue, carbonContent, oxidationRate)``."""
        return (self.consumption, self.net_calorific_value, self.carbon_content,
                self.oxidation_rate)


@dataclass(frozen=True)
class ProcessLine:
    """One process-emission line (``EmissionFormulas.ProcessLine``).

    ``amount`` in t of raw material (or of a gas released as itself), ``emission_factor``
    in t of gas per t of amount (1 for a gas released as itself), ``gwp`` in tCO2e per t
    of gas (1 for CO2); all fixed point.
    """

    amount: int
    emission_factor: int
    gwp: int

    def __post_init__(self) -> None:
        for name in ("amount", "emission_factor", "gwp"):
            _uint256(name, getattr(self, name))

    def to_abi(self) -> tuple[int, int, int]:
        """The ABI tuple ``(amount, emissionFactor, gwp)``."""
        return (self.amount, self.emission_factor, self.gwp)


def purchased_energy(activity_data: int, emission_factor: int) -> Fixed:
    """Purchased electricity or heat: ``E = AD x EF``.

    Steps: check AD, check EF, ``mul(AD, EF)``.
    """
    ad = checked(_uint256("activity_data", activity_data))
    ef = checked(_uint256("emission_factor", emission_factor))
    return mul(ad, ef)


def fuel_line(line: FuelLine) -> Fixed:
    """One fuel: ``E = FC x NCV x CC x OF x 44/12`` in tCO2.

    Steps: check FC, NCV, CC, OF; ``e = mul(FC, NCV)``; ``e = mul(e, CC)``;
    ``e = mul(e, OF)``; ``e = mul_ratio(e, 44, 12)``.
    """
    fc = checked(line.consumption)
    ncv = checked(line.net_calorific_value)
    cc = checked(line.carbon_content)
    of = checked(line.oxidation_rate)
    e = mul(fc, ncv)
    e = mul(e, cc)
    e = mul(e, of)
    return mul_ratio(e, *CO2_PER_C)


def fuel_combustion(lines: Iterable[FuelLine]) -> Fixed:
    """Fossil-fuel combustion: the sum of :func:`fuel_line` over ``lines``, in order."""
    total = Fixed(0)
    for line in lines:
        total = add(total, fuel_line(line))
    return total


def process_line(line: ProcessLine) -> Fixed:
    """One process line: ``E = amount x EF x GWP`` in tCO2e.

    Steps: check amount, EF, GWP; ``e = mul(amount, EF)``; ``e = mul(e, GWP)``.
    """
    amount = checked(line.amount)
    ef = checked(line.emission_factor)
    gwp = checked(line.gwp)
    return mul(mul(amount, ef), gwp)


def process_emissions(lines: Iterable[ProcessLine]) -> Fixed:
    """Process emissions: the sum of :func:`process_line` over ``lines``, in order."""
    total = Fixed(0)
    for line in lines:
        total = add(total, process_line(line))
    return total


def project_reductions(baseline: int, project_emissions: int, leakage: int) -> int:
    """A CCER-style project: ``reductions = baseline - project - leakage`` (may be < 0).

    Steps: check baseline, project, leakage; ``d = add(project, leakage)``;
    ``baseline - d`` (exact). A negative result is returned as such: whether it counts
    as zero reductions is the methodology's call, not arithmetic's.
    """
    b = checked(_uint256("baseline", baseline))
    p = checked(_uint256("project_emissions", project_emissions))
    leak = checked(_uint256("leakage", leakage))
    return b - add(p, leak)


def kwh_to_mwh(kwh: int) -> Fixed:
    """Energy in kWh to MWh: ``mul_ratio(kWh, 1, 1000)`` (exact up to 15 decimal places)."""
    return mul_ratio(checked(_uint256("kwh", kwh)), 1, 1000)


# -- case 18: which activity data to use -------------------------------------------------

LedgerCheck = Literal["consistent", "mismatch", "no_ledger"]


@dataclass(frozen=True)
class ActivityDataChoice:
    """The activity data chosen for purchased electricity, and why.

    ``source`` is where ``value`` came from; ``ledger_check`` compares it with the
    purchase ledger. :attr:`flagged` is true unless the value is a meter reading the
    ledger confirms: a bill, a ledger mismatch or a missing ledger needs a reviewer.
    """

    value: Fixed
    source: Literal["meter", "bill"]
    ledger_check: LedgerCheck
    ledger_value: Fixed | None
    tolerance: Fixed

    @property
    def flagged(self) -> bool:
        """Whether a reviewer must look at this choice."""
        return self.source != "meter" or self.ledger_check != "consistent"


def choose_activity_data(
    *,
    meter: int | None,
    bill: int | None,
    ledger: int | None,
    tolerance: int,
) -> ActivityDataChoice:
    """Case 18's priority: the meter reading first, else the supplier's bill; then the
    purchase ledger as a cross-check.

    All values are fixed point in the same unit (MWh). ``tolerance`` is relative
    (``parse("0.02")`` for 2 %): the choice is ``"consistent"`` when
    ``|chosen - ledger| <= tolerance x ledger``, compared exactly in integers (no
    rounding). Raises :class:`ActivityDataError` when neither meter nor bill is given.
    """
    tol = checked(tolerance)
    if meter is not None:
        value, source = checked(meter), "meter"
    elif bill is not None:
        value, source = checked(bill), "bill"
    else:
        raise ActivityDataError(
            "no activity data: neither a meter reading nor a supplier's bill is available",
            meter=None, bill=None, ledger=ledger,
        )
    check: LedgerCheck
    ledger_value = None if ledger is None else checked(ledger)
    if ledger_value is None:
        check = "no_ledger"
    elif abs(value - ledger_value) * SCALE <= tol * ledger_value:
        check = "consistent"
    else:
        check = "mismatch"
    return ActivityDataChoice(
        value=value,
        source="meter" if source == "meter" else "bill",
        ledger_check=check,
        ledger_value=ledger_value,
        tolerance=tol,
    )
