"""The red / yellow / green integrity code: data-integrity rules over an enterprise's period.

Case 6 of the seed document: a data-comparison algorithm "checks" reported data and an
enterprise whose data is anomalous gets a red code, which starts an inspection. The
document names no rules or tolerances; these are the rules this ledger can measure.
Each rule measures one number and has two thresholds; it *fires* at the highest level
whose threshold the number is **strictly above** (``None`` switches a level off):

=====================  ==========================================================  =======  ======
rule                   measured                                                    yellow   red
=====================  ==========================================================  =======  ======
signature_failures     readings rejected for a bad signature or an unknown,          > 0      > 10
                       revoked or not-yet-valid key in the period
sequence_gaps          missing sequence numbers / (readings + missing)             > 0.01   > 0.05
bill_mismatch          largest ``|metered - billed| / billed`` over the bills      > 0.02   > 0.05
sudden_jumps           readings more than ``jump_factor`` x the larger of the       > 0      > 5
                       device's previous reading and the median of its previous
                       ``jump_window`` readings
unverified_periods     months of the period without a verifier's attestation        > 0      > 2
=====================  ==========================================================  =======  ======

The code is ``red`` if any rule fired red, else ``yellow`` if any fired yellow, else
``green`` (semantics in :data:`carbon_protocol.financing_code.IntegrityCode`).

The defaults are a documented placeholder, chosen so that one of anything is worth a
look (yellow) and a pattern is a red flag; the 2 % bill tolerance follows the issue's
example. An operator sets them; the configuration's hash is signed into every code.
A rule with nothing to measure (no bills, no readings for jumps) does not fire and is
listed in :attr:`IntegrityResult.not_evaluated`.

A jump is judged against the previous reading as well as the window's median because
plants ramp: a mill starting its day climbs from its night load to three times that in
an hour, interval by interval. Against the night's median alone every such morning was
a "jump" (57 in the demo's month, all at 07:45 local time, which turned its code red);
a meter fault or a doubled value is a step against the interval before it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from statistics import median
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from carbon_protocol.financing_code import IntegrityCode, RuleFinding

from ._numbers import EXACT, wire_decimal

__all__ = [
    "RULES",
    "LevelThresholds",
    "IntegrityRules",
    "BillCheck",
    "IntegrityFacts",
    "Jump",
    "IntegrityResult",
    "find_jumps",
    "evaluate_integrity",
]

RuleId = Literal["signature_failures", "sequence_gaps", "bill_mismatch", "sudden_jumps",
                 "unverified_periods"]
RULES: tuple[RuleId, ...] = ("signature_failures", "sequence_gaps", "bill_mismatch",
                             "sudden_jumps", "unverified_periods")

NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelThresholds(_Config):
    """A rule fires yellow when its measure is above ``yellow_above``, red above ``red_above``."""

    yellow_above: NonNegative | None
    red_above: NonNegative | None

    @model_validator(mode="after")
    def _ordered(self) -> LevelThresholds:
        if (self.yellow_above is not None and self.red_above is not None
                and self.yellow_above > self.red_above):
            raise ValueError(f"yellow_above {self.yellow_above} is above red_above "
                             f"{self.red_above}")
        return self


def _levels(yellow: str | None, red: str | None) -> LevelThresholds:
    return LevelThresholds(yellow_above=None if yellow is None else Decimal(yellow),
                           red_above=None if red is None else Decimal(red))


class IntegrityRules(_Config):
    """Every rule's thresholds, and the parameters of jump detection (defaults above)."""

    signature_failures: LevelThresholds = _levels("0", "10")
    sequence_gaps: LevelThresholds = _levels("0.01", "0.05")
    bill_mismatch: LevelThresholds = _levels("0.02", "0.05")
    sudden_jumps: LevelThresholds = _levels("0", "5")
    unverified_periods: LevelThresholds = _levels("0", "2")
    jump_factor: Annotated[Decimal, Field(gt=1, allow_inf_nan=False)] = Decimal(3)
    """A reading is a jump when it exceeds this multiple of its device's rolling median."""
    jump_window: Annotated[int, Field(ge=1, le=10_000)] = 12
    """How many previous readings of the device the median is taken over."""
    jump_min_history: Annotated[int, Field(ge=1, le=10_000)] = 4
    """Readings needed before the first one that can be judged (fewer: no median yet)."""


class BillCheck(_Config):
    """Metered consumption of one meter or site against the supplier's bill, same unit."""

    label: Annotated[str, Field(min_length=1, max_length=200)]
    metered: NonNegative
    billed: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]

    def mismatch(self) -> Decimal:
        """``|metered - billed| / billed``."""
        return EXACT.divide(abs(self.metered - self.billed), self.billed)


class IntegrityFacts(_Config):
    """The counts the rules measure, for one enterprise and period."""

    readings: Count
    """Readings the ledger accepted in the period."""
    missing_sequence_numbers: Count
    signature_failures: Count
    bills: list[BillCheck] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    """Every month (``YYYY-MM``) the period touches."""
    unverified_months: list[str] = Field(default_factory=list)
    """The months among ``months`` with no attestation."""

    @model_validator(mode="after")
    def _months_known(self) -> IntegrityFacts:
        unknown = sorted(set(self.unverified_months) - set(self.months))
        if unknown:
            raise ValueError(f"unverified months {unknown} are not months of the period")
        return self


class Jump(BaseModel):
    """A reading that passed the jump rule: which one, and what it was judged by."""

    model_config = ConfigDict(frozen=True)

    device: str
    position: int
    """Index of the reading in the device's series (sequence order)."""
    value: Decimal
    median: Decimal
    """Of the ``jump_window`` readings before it."""
    previous: Decimal
    """The reading before it."""


class IntegrityResult(BaseModel):
    """The code, the rules that fired, and every rule's measure."""

    model_config = ConfigDict(frozen=True)

    code: IntegrityCode
    fired: list[RuleFinding]
    measured: dict[str, Decimal]
    not_evaluated: list[str]
    jumps: list[Jump]


def find_jumps(
    series: Mapping[str, Sequence[Decimal]], rules: IntegrityRules | None = None
) -> list[Jump]:
    """Readings above ``jump_factor`` x the larger of the device's previous reading and
    the median of its previous readings.

    ``series`` maps each device to its interval values in sequence order. The window
    holds the up to ``jump_window`` readings before the one judged (never itself), and
    a reading is judged only once ``jump_min_history`` came before it. A median of zero
    (a plant that was off) judges nothing: any start-up would be a "jump".
    """
    r = rules or IntegrityRules()
    out: list[Jump] = []
    for device in sorted(series):
        values = list(series[device])
        for i in range(r.jump_min_history, len(values)):
            m = median(values[max(0, i - r.jump_window):i])
            previous = values[i - 1]
            if m > 0 and values[i] > EXACT.multiply(r.jump_factor, max(m, previous)):
                out.append(Jump(device=device, position=i, value=values[i], median=m,
                                previous=previous))
    return out


def _level(value: Decimal, t: LevelThresholds) -> tuple[Literal["yellow", "red"], Decimal] | None:
    if t.red_above is not None and value > t.red_above:
        return "red", t.red_above
    if t.yellow_above is not None and value > t.yellow_above:
        return "yellow", t.yellow_above
    return None


def evaluate_integrity(
    facts: IntegrityFacts,
    series: Mapping[str, Sequence[Decimal]],
    rules: IntegrityRules | None = None,
) -> IntegrityResult:
    """Measure every rule, fire those above their thresholds, and derive the code."""
    r = rules or IntegrityRules()
    jumps = find_jumps(series, r)
    expected = facts.readings + facts.missing_sequence_numbers
    measured: dict[str, Decimal] = {
        "signature_failures": Decimal(facts.signature_failures),
        "sequence_gaps": (EXACT.divide(Decimal(facts.missing_sequence_numbers),
                                       Decimal(expected)) if expected else Decimal(0)),
        "sudden_jumps": Decimal(len(jumps)),
        "unverified_periods": Decimal(len(facts.unverified_months)),
    }
    not_evaluated = []
    if facts.bills:
        measured["bill_mismatch"] = max(b.mismatch() for b in facts.bills)
    else:
        not_evaluated.append("bill_mismatch")
    if not any(len(v) > r.jump_min_history for v in series.values()):
        not_evaluated.append("sudden_jumps")
        del measured["sudden_jumps"]
    if not facts.months:
        not_evaluated.append("unverified_periods")
        del measured["unverified_periods"]
    fired = []
    for rule in RULES:
        if rule not in measured:
            continue
        hit = _level(measured[rule], getattr(r, rule))
        if hit is not None:
            fired.append(RuleFinding(rule=rule, level=hit[0], measured=wire_decimal(measured[rule]),
                                     threshold=wire_decimal(hit[1])))
    levels = {f.level for f in fired}
    code: IntegrityCode = "red" if "red" in levels else "yellow" if levels else "green"
    return IntegrityResult(code=code, fired=fired, measured=measured,
                           not_evaluated=not_evaluated, jumps=jumps)
