"""Inventories offline: worked examples by hand, and each way a claimed one is refused.

The numbers are checked by hand in the comments; the on-chain twin of each formula is
tested against the contract in ``tests/contracts``. Readings here are unsigned: what is
tested is the accounting, signatures are tested with the wire format and the ledger.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import pytest

from carbon_protocol.inventory import (
    Inventory,
    Period,
    SignedInventory,
    inventory_bytes,
    sign_inventory,
    verify_inventory_signature,
)
from carbon_protocol.models import Domain, Reading
from carbon_protocol.suites import PrivateKey
from carbon_rules.errors import (
    ImplausibleFactorError,
    NoVersionInForceError,
    VersionNotYetInForceError,
    VersionSupersededError,
)
from carbon_rules.factors import default_factors
from carbon_rules.fixed_point import parse
from carbon_rules.inventory import (
    InventoryError,
    InventoryMismatchError,
    LeafRange,
    LoggedReading,
    UnsupportedSourceError,
    compute_inventory,
    leaf_ranges,
    recompute_inventory,
)
from carbon_rules.models import Factor, Methodology, MethodologyVersion, VersionDraft

MID = "cn.enterprise-ghg"
OCT_2026 = Period(label="2026-10", start="2026-10-01T00:00:00Z", end="2026-11-01T00:00:00Z")
JAN_2023 = 1_672_531_200
NOV_2026 = 1_793_491_200  # 2026-11-01T00:00:00Z
DOMAIN = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id="86.1000.1/log.main")
DEV = "86.1000.1/dev.plant.electricity-01"
HEAT = "86.1000.1/dev.plant.heat-01"


def version(number: int, start: int, factors: Sequence[Factor]) -> MethodologyVersion:
    draft = VersionDraft("IPCC-AR5-GWP100", f"doc v{number}", tuple(factors))
    return MethodologyVersion(MID, number, start, start, "0x" + "11" * 20,
                              draft.parameters_hash, draft.gwp_set, draft.document,
                              draft.factors)


def with_grid(value: str) -> list[Factor]:
    out = []
    for f in default_factors():
        if f.id == "ef.grid.CN":
            f = Factor(f.id, parse(value), f.min_value, f.max_value, f.unit, f.region, f.year,
                       f.source)
        out.append(f)
    return out


@pytest.fixture
def rules() -> Methodology:
    return Methodology(MID, (version(1, JAN_2023, default_factors()),))


def readings(device: str, values: Sequence[str], *, quantity: str = "active_energy",
             unit: str = "kWh", first_leaf: int = 0, first_seq: int = 1,
             start: str = "2026-10-01", skip_seqs: Sequence[int] = ()) -> list[LoggedReading]:
    out = []
    seq = first_seq
    for n, value in enumerate(values):
        while seq in skip_seqs:
            seq += 1
        minutes = 15 * (n + 1)
        out.append(LoggedReading(first_leaf + n, Reading(
            suite="intl", key_id="00" * 16, device=device, seq=seq,
            measured_at=f"{start}T{minutes // 60:02d}:{minutes % 60:02d}:00Z",
            quantity=quantity, unit=unit, value=value, quality="measured",  # type: ignore[arg-type]
            salt=secrets.token_hex(16), domain=DOMAIN)))
        seq += 1
    return out


def make(rules: Methodology, by_device: dict[str, list[LoggedReading]], key: PrivateKey,
         **kw: object) -> Inventory:
    pub = key.public_key()
    return compute_inventory(rules, OCT_2026, by_device, chain_id=1337,
                             registry="0x" + "CD" * 20, gateway="86.1000.1/gw.plant",
                             domain=DOMAIN, suite=pub.suite, key_id=pub.key_id,
                             **kw)  # type: ignore[arg-type]


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate("intl")


def test_case_20_one_million_kwh_at_0_997_is_997_tonnes(key: PrivateKey) -> None:
    # Case 20: 1,000,000 kWh = 1,000 MWh; 1,000 MWh x 0.997 tCO2/MWh = 997 tCO2.
    rules = Methodology(MID, (version(1, JAN_2023, with_grid("0.997")),))
    inv = make(rules, {DEV: readings(DEV, ["400000", "350000.5", "249999.5"])}, key)
    (line,) = inv.lines
    assert line.activity.metered == "1000000"
    assert line.activity.value == "1000"
    assert line.activity.unit == "MWh"
    assert line.emissions == "997"
    assert (line.source, line.scope, line.formula) == ("purchased_electricity", 2,
                                                      "E = AD x EF")
    assert inv.totals.total == inv.totals.scope2 == "997"
    assert inv.totals.scope1 == "0"


def test_case_18_purchased_electricity_and_heat_with_default_factors(
        rules: Methodology, key: PrivateKey) -> None:
    # Electricity: 123,456.789 kWh = 123.456789 MWh x 0.5703 = 70.4074067667 tCO2.
    # Heat: 1,250.5 GJ x 0.11 tCO2/GJ = 137.555 tCO2.
    inv = make(rules, {
        DEV: readings(DEV, ["100000", "23456.789"]),
        HEAT: readings(HEAT, ["1000", "250.5"], quantity="heat", unit="GJ", first_leaf=10),
    }, key)
    elec, heat = inv.lines
    assert elec.activity.value == "123.456789"
    assert elec.emissions == "70.4074067667"
    assert elec.factors[0].id == "ef.grid.CN" and elec.factors[0].value == "0.5703"
    assert "生态环境部" in elec.factors[0].source and elec.factors[0].year == 2023
    assert heat.emissions == "137.555"
    assert inv.totals.scope2 == "207.9624067667"
    assert inv.rule.version == 1 and inv.rule.registry == "0x" + "cd" * 20
    assert heat.readings.leaves[0].first == 10


def test_natural_gas_in_nm3_is_scope_1_combustion(rules: Methodology, key: PrivateKey) -> None:
    # 10,000 Nm3 = 1 x 10^4 Nm3; 1 x 389.31 GJ x 0.0153 tC/GJ x 0.99 x 44/12:
    # 389.31 x 0.0153 = 5.956443; x 0.99 = 5.89687857; x 44/12 = 21.621888090 (rounded
    # half up at 18 places: 21.621888089999999999... -> ...90).
    gas = "86.1000.1/dev.plant.gas-01"
    inv = make(rules, {gas: readings(gas, ["6000", "4000"], quantity="gas_volume",
                                     unit="Nm3")}, key)
    (line,) = inv.lines
    assert (line.source, line.scope, line.activity.value) == ("fuel_combustion", 1, "1")
    assert line.emissions.startswith("21.62188809")
    assert inv.totals.scope1 == line.emissions


def test_gas_in_line_m3_is_refused_not_guessed(rules: Methodology, key: PrivateKey) -> None:
    gas = "86.1000.1/dev.plant.gas-01"
    with pytest.raises(UnsupportedSourceError, match="m3"):
        make(rules, {gas: readings(gas, ["1"], quantity="gas_volume", unit="m3")}, key)


def test_only_readings_inside_the_period_are_used_and_gaps_are_counted(
        rules: Methodology, key: PrivateKey) -> None:
    before = readings(DEV, ["999"], start="2026-09-30", first_leaf=0)
    inside = readings(DEV, ["1000", "1000", "1000"], first_seq=2, first_leaf=5,
                      skip_seqs=[3])
    inv = make(rules, {DEV: before + inside}, key)
    (line,) = inv.lines
    # Readings seq 2, 4, 5 (no register): seq 3 is missing, and its interval is filled
    # with the larger neighbour (1000), conservatively and counted: 4 x 1000 kWh.
    assert line.activity.metered == "4000"
    assert (line.readings.first_seq, line.readings.last_seq) == (2, 5)
    assert [(r.first, r.last, r.step) for r in line.readings.leaves] == [(5, 7, 1)]
    assert line.quality.sequence_gaps == 1 and inv.quality.sequence_gaps == 1
    assert line.quality.missing_filled == 1 and line.quality.readings == 3


def test_rule_not_yet_in_force_on_the_period(rules: Methodology, key: PrivateKey) -> None:
    later = Methodology(MID, (version(1, NOV_2026, default_factors()),))
    with pytest.raises(NoVersionInForceError):
        make(later, {DEV: readings(DEV, ["1"])}, key)
    # A claim of v1 for October, checked against a registry where v1 starts in November.
    data = {DEV: readings(DEV, ["1"])}
    claimed = make(rules, data, key)
    with pytest.raises(VersionNotYetInForceError) as caught:
        recompute_inventory(claimed, later, data)
    assert caught.value.details["error"] == "RuleRegistryVersionNotYetInForce"


def test_rule_superseded_during_the_period(key: PrivateKey) -> None:
    mid_october = 1_792_000_000  # 2026-10-14
    two = Methodology(MID, (version(1, JAN_2023, default_factors()),
                            version(2, mid_october, with_grid("0.6"))))
    with pytest.raises(VersionSupersededError):
        make(two, {DEV: readings(DEV, ["1"])}, key)


def test_measured_factor_outside_its_plausible_range(rules: Methodology,
                                                     key: PrivateKey) -> None:
    # A kg/kWh slip: 570.3 instead of 0.5703 lies outside [0.1, 1.5].
    with pytest.raises(ImplausibleFactorError) as caught:
        make(rules, {DEV: readings(DEV, ["1000"])}, key,
             measured={DEV: {"ef.grid.CN": parse("570.3")}})
    assert caught.value.details["error"] == "RuleRegistryFactorOutOfRange"


def test_measured_factor_inside_the_range_is_used_and_marked(rules: Methodology,
                                                            key: PrivateKey) -> None:
    inv = make(rules, {DEV: readings(DEV, ["1000"])}, key,
               measured={DEV: {"ef.grid.CN": parse("0.8")}})
    assert inv.lines[0].factors[0].measured is True
    assert inv.lines[0].emissions == "0.8"
    recompute_inventory(inv, rules, {DEV: readings(DEV, ["1000"])})


def test_recompute_accepts_the_same_and_names_the_line_that_differs(
        rules: Methodology, key: PrivateKey) -> None:
    data = {DEV: readings(DEV, ["100", "200"]),
            HEAT: readings(HEAT, ["5"], quantity="heat", unit="GJ", first_leaf=7)}
    inv = make(rules, data, key)
    recompute_inventory(inv, rules, data)
    raw = inv.model_dump(mode="json")
    raw["lines"][1]["emissions"] = "0.5"
    tampered = Inventory.model_validate(raw)
    with pytest.raises(InventoryMismatchError) as caught:
        recompute_inventory(tampered, rules, data)
    assert caught.value.details["line"] == 2
    assert caught.value.details["field"] == "emissions"
    assert caught.value.details == {**caught.value.details, "claimed": "0.5",
                                    "recomputed": "0.55"}


def test_recompute_with_other_readings_fails_on_activity_data(rules: Methodology,
                                                              key: PrivateKey) -> None:
    inv = make(rules, {DEV: readings(DEV, ["100", "200"])}, key)
    other = {DEV: readings(DEV, ["100", "201"])}
    with pytest.raises(InventoryMismatchError) as caught:
        recompute_inventory(inv, rules, other)
    assert caught.value.details["field"] == "activity.metered"


def test_recompute_with_another_parameter_set_fails_on_the_hash(rules: Methodology,
                                                                key: PrivateKey) -> None:
    data = {DEV: readings(DEV, ["100"])}
    inv = make(rules, data, key)
    forged = Methodology(MID, (version(1, JAN_2023, with_grid("0.3")),))
    with pytest.raises(InventoryMismatchError) as caught:
        recompute_inventory(inv, forged, data)
    assert caught.value.details["field"] == "rule.parameters_hash"


def test_no_readings_in_the_period_is_refused(rules: Methodology, key: PrivateKey) -> None:
    with pytest.raises(InventoryError, match="no readings"):
        make(rules, {DEV: readings(DEV, ["1"], start="2026-09-01")}, key)


def test_signature_covers_every_number(rules: Methodology, key: PrivateKey) -> None:
    inv = make(rules, {DEV: readings(DEV, ["100"])}, key)
    signed = sign_inventory(inv, key)
    verify_inventory_signature(signed, key.public_key())
    raw = signed.model_dump(mode="json")
    raw["inventory"]["totals"]["total"] = "0.01"
    from carbon_protocol.errors import SignatureError
    with pytest.raises(SignatureError):
        verify_inventory_signature(SignedInventory.model_validate(raw), key.public_key())
    assert inventory_bytes(inv).startswith(b'{"computed_at":')


def test_leaf_ranges() -> None:
    assert [(r.first, r.last, r.step) for r in leaf_ranges([7, 3, 4, 5, 9, 10])] == [
        (3, 5, 1), (7, 9, 2), (10, 10, 1)]
    # One meter of eight, delivered interleaved: every eighth leaf is one range.
    interleaved = list(range(5, 8 * 500, 8)) + list(range(4005, 4005 + 8 * 300, 8))
    (only,) = leaf_ranges(interleaved)
    assert (only.first, only.step, only.count) == (5, 8, 800)
    assert list(only.indices()) == interleaved
    assert leaf_ranges([]) == []
    with pytest.raises(ValueError, match="whole number of steps"):
        LeafRange(first=3, last=10, step=2)
    # One JSON form per range: a contiguous one carries no step.
    assert LeafRange(first=3, last=5).model_dump() == {"first": 3, "last": 5}
    assert LeafRange(first=3, last=9, step=2).model_dump() == {"first": 3, "last": 9, "step": 2}
    assert str(only) == "5..6397 every 8" and str(LeafRange(first=1, last=1)) == "1..1"


def test_register_deltas_win_over_interval_values(rules: Methodology, key: PrivateKey) -> None:
    # Registers 1000 -> 1100 -> 1350: after the first reading (whose own interval value
    # counts: 100), the register delta (250) counts, not the reported value 999.
    logged = readings(DEV, ["100", "999"])
    with_registers = [
        LoggedReading(r.leaf_index, r.reading.model_copy(update={"cumulative": c}))
        for r, c in zip(logged, ["1100", "1350"], strict=True)]
    inv = make(rules, {DEV: with_registers}, key)
    assert inv.lines[0].activity.metered == "350"
    recompute_inventory(inv, rules, {DEV: with_registers})
    with pytest.raises(InventoryMismatchError):
        recompute_inventory(inv, rules, {DEV: logged})


def test_period_labels() -> None:
    from carbon_rules.inventory import period_from_label

    assert period_from_label("2026-10") == OCT_2026
    q4 = period_from_label("2026-Q4")
    assert (q4.start, q4.end) == ("2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z")
    assert period_from_label("2024-02-29").end == "2024-03-01T00:00:00Z"
    assert period_from_label("2026").end == "2027-01-01T00:00:00Z"
    # China Standard Time is UTC+8: its October starts at 16:00 UTC on 30 September.
    cst = period_from_label("2026-10", "Asia/Shanghai")
    assert (cst.label, cst.start, cst.end) == (
        "2026-10 Asia/Shanghai", "2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")
    for bad in ("2026-13", "2026-Q5", "26-1-1-1", "2023-02-29", "october"):
        with pytest.raises(InventoryError):
            period_from_label(bad)
    with pytest.raises(InventoryError, match="timezone"):
        period_from_label("2026-10", "Mars/Olympus")


def test_a_relayed_methodology_must_match_its_published_hash(rules: Methodology) -> None:
    from carbon_rules.errors import InvalidRuleError
    from carbon_rules.inventory_rules import methodology_from_json, methodology_to_json

    doc = methodology_to_json(rules)
    assert methodology_from_json(doc) == rules
    grid = next(f for f in doc["versions"][0]["factors"] if f["id"] == "ef.grid.CN")
    grid["value"] = "0.3"  # a relay lowering the grid factor
    with pytest.raises(InvalidRuleError, match="published hash"):
        methodology_from_json(doc)
    with pytest.raises(InvalidRuleError, match="not a methodology"):
        methodology_from_json({"id": MID})
