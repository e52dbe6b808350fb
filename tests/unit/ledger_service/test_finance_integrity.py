"""Integrity rules: each rule's measure by hand, its thresholds on both sides, the code."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from pydantic import ValidationError

from ledger_service.finance.integrity import (
    BillCheck,
    IntegrityFacts,
    IntegrityRules,
    LevelThresholds,
    evaluate_integrity,
    find_jumps,
)

CLEAN_SERIES = {"86.1000.1/dev.a": [D(10)] * 20}


def _facts(**overrides: Any) -> IntegrityFacts:
    values: dict[str, Any] = {
        "readings": 1000, "missing_sequence_numbers": 0, "signature_failures": 0,
        "bills": [BillCheck(label="m1", metered=D(100), billed=D(100))],
        "months": ["2026-10"], "unverified_months": [],
    }
    values.update(overrides)
    return IntegrityFacts(**values)


def _fired(facts: IntegrityFacts, series: Any = None,
           rules: IntegrityRules | None = None) -> dict[str, tuple[str, str, str]]:
    result = evaluate_integrity(facts, CLEAN_SERIES if series is None else series, rules)
    return {f.rule: (f.level, f.measured, f.threshold) for f in result.fired}


def test_clean_data_is_green() -> None:
    result = evaluate_integrity(_facts(), CLEAN_SERIES)
    assert (result.code, result.fired, result.not_evaluated) == ("green", [], [])
    assert result.measured == {"signature_failures": 0, "sequence_gaps": 0, "bill_mismatch": 0,
                               "sudden_jumps": 0, "unverified_periods": 0}


@pytest.mark.parametrize(("failures", "expected"), [
    (1, ("yellow", "1", "0")), (10, ("yellow", "10", "0")), (11, ("red", "11", "10"))])
def test_signature_failures(failures: int, expected: tuple[str, str, str]) -> None:
    assert _fired(_facts(signature_failures=failures)) == {"signature_failures": expected}


@pytest.mark.parametrize(("readings", "missing", "expected"), [
    (990, 10, None),                              # 10 / 1000 = 0.01: not above 0.01
    (989, 11, ("yellow", "0.011", "0.01")),       # 11 / 1000
    (950, 50, ("yellow", "0.05", "0.01")),        # 0.05: not above the red 0.05
    (949, 51, ("red", "0.051", "0.05")),
    (2, 1, ("red", "0.333333333333", "0.05")),   # 1/3, twelve decimals on the wire
])
def test_sequence_gaps(readings: int, missing: int, expected: Any) -> None:
    fired = _fired(_facts(readings=readings, missing_sequence_numbers=missing))
    assert fired.get("sequence_gaps") == expected


@pytest.mark.parametrize(("metered", "billed", "expected"), [
    ("102", "100", None),                          # 2 % exactly: within tolerance
    ("102.01", "100", ("yellow", "0.0201", "0.02")),
    ("97.5", "100", ("yellow", "0.025", "0.02")),   # under-metering counts too
    ("94.9", "100", ("red", "0.051", "0.05")),
])
def test_bill_mismatch(metered: str, billed: str, expected: Any) -> None:
    bills = [BillCheck(label="m1", metered=D("100"), billed=D("100")),
             BillCheck(label="m2", metered=D(metered), billed=D(billed))]
    assert _fired(_facts(bills=bills)).get("bill_mismatch") == expected


def test_sudden_jumps_by_hand() -> None:
    # Window 4, factor 3, min history 4: medians of the 4 readings before each one.
    series = {"86.1000.1/dev.a": [D(v) for v in (10, 12, 11, 9, 31, 33, 10, 100)]}
    rules = IntegrityRules(jump_window=4, jump_min_history=4)
    jumps = find_jumps(series, rules)
    # i=4: max(median(10,12,11,9)=10.5, 9), 31 <= 31.5 no; i=5: max(11.5, 31), 33 no;
    # i=6: max(21, 33) no; i=7: max(median(9,31,33,10)=20.5, 10), 100 > 61.5 yes.
    assert [(j.position, j.value, j.median, j.previous) for j in jumps] == [
        (7, D(100), D("20.5"), D(10))]
    assert _fired(_facts(), series, rules)["sudden_jumps"] == ("yellow", "1", "0")


def test_a_morning_ramp_is_not_a_jump_but_a_step_against_the_last_reading_is() -> None:
    # A mill's night load, then its day starting over an hour (the shape the simulator
    # and real feeders have): three times the night's median, never a step.
    night = [D(16)] * 12
    ramp = night + [D(30), D(38), D(42), D(51), D(53)]
    assert find_jumps({"d": ramp}) == []
    spiked = ramp + [D(170)]  # 170 > 3 x max(median, 53)
    (jump,) = find_jumps({"d": spiked})
    assert (jump.position, jump.previous) == (len(ramp), D(53))


def test_jump_needs_a_nonzero_median_and_enough_history() -> None:
    off_then_on = {"d": [D(0)] * 6 + [D(50)]}
    assert find_jumps(off_then_on) == []
    short = {"d": [D(1), D(1), D(1), D(100)]}  # only 3 readings before the spike
    assert find_jumps(short) == []
    result = evaluate_integrity(_facts(), short)
    assert "sudden_jumps" in result.not_evaluated and "sudden_jumps" not in result.measured


def test_many_jumps_turn_red() -> None:
    values = []
    for _ in range(6):
        values += [D(10)] * 12 + [D(1000)]
    assert _fired(_facts(), {"d": values})["sudden_jumps"] == ("red", "6", "5")


@pytest.mark.parametrize(("unverified", "expected"), [
    ([], None), (["2026-10"], ("yellow", "1", "0")),
    (["2026-10", "2026-11"], ("yellow", "2", "0")),
    (["2026-10", "2026-11", "2026-12"], ("red", "3", "2"))])
def test_unverified_periods(unverified: list[str], expected: Any) -> None:
    facts = _facts(months=["2026-10", "2026-11", "2026-12"], unverified_months=unverified)
    assert _fired(facts).get("unverified_periods") == expected


def test_code_is_the_worst_level_and_lists_every_rule() -> None:
    facts = _facts(signature_failures=1, readings=900, missing_sequence_numbers=100)
    result = evaluate_integrity(facts, CLEAN_SERIES)
    assert result.code == "red"
    assert [(f.rule, f.level) for f in result.fired] == [
        ("signature_failures", "yellow"), ("sequence_gaps", "red")]
    assert evaluate_integrity(_facts(signature_failures=1), CLEAN_SERIES).code == "yellow"


def test_missing_inputs_are_not_evaluated_rather_than_green() -> None:
    result = evaluate_integrity(_facts(bills=[], months=[]), {})
    assert result.code == "green"
    assert result.not_evaluated == ["bill_mismatch", "sudden_jumps", "unverified_periods"]


def test_a_level_can_be_switched_off() -> None:
    rules = IntegrityRules(signature_failures=LevelThresholds(yellow_above=None,
                                                              red_above=D(0)))
    assert _fired(_facts(signature_failures=1), rules=rules) == {
        "signature_failures": ("red", "1", "0")}


def test_bad_configuration_and_facts_are_refused() -> None:
    with pytest.raises(ValidationError, match="above red_above"):
        LevelThresholds(yellow_above=D(2), red_above=D(1))
    with pytest.raises(ValidationError):
        IntegrityRules(jump_factor=D(1))
    with pytest.raises(ValidationError):
        _facts(readings=-1)
    with pytest.raises(ValidationError, match="not months of the period"):
        _facts(unverified_months=["2026-09"])
    with pytest.raises(ValidationError):
        BillCheck(label="m", metered=D(1), billed=D(0))
