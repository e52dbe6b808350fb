"""Worked examples with hand-checked numbers, and case 18's activity-data priority.

Every expected value below was computed by hand (the steps are in the comments) and is
exact unless a comment says where rounding happens.
"""

from __future__ import annotations

import pytest

from carbon_rules.errors import ActivityDataError, FixedPointOverflowError, InvalidDecimalError
from carbon_rules.fixed_point import MAX_VALUE, SCALE, parse, to_decimal
from carbon_rules.formulas import (
    FuelLine,
    ProcessLine,
    choose_activity_data,
    fuel_combustion,
    fuel_line,
    kwh_to_mwh,
    process_emissions,
    project_reductions,
    purchased_energy,
)

GRID_CN = parse("0.5703")  # tCO2/MWh, MEE 2023 (data file cn-mee-grid)


def diesel(tonnes: str) -> FuelLine:
    # NDRC 2015 defaults: NCV 42.652 GJ/t, CC 20.20 tC/TJ = 0.0202 tC/GJ, OF 98 %
    return FuelLine(parse(tonnes), parse("42.652"), parse("0.0202"), parse("0.98"))


def natural_gas(ten_thousand_nm3: str) -> FuelLine:
    # NDRC 2015 defaults: NCV 389.31 GJ/10^4 Nm3, CC 15.30 tC/TJ = 0.0153 tC/GJ, OF 99 %
    return FuelLine(parse(ten_thousand_nm3), parse("389.31"), parse("0.0153"), parse("0.99"))


def test_case_20_one_million_kwh_at_0_997_is_997_tonnes() -> None:
    # 1,000,000 kWh = 1,000 MWh; 1,000 MWh x 0.997 tCO2/MWh = 997 tCO2 (case 20: a
    # boiler saving 1,000,000 kWh a year "reduces carbon by 997 t").
    ad = kwh_to_mwh(parse("1000000"))
    assert ad == parse("1000")
    assert to_decimal(purchased_energy(ad, parse("0.997"))) == "997"


def test_case_18_purchased_electricity_of_a_heating_system() -> None:
    # Case 18, E_elec = AD_elec x EF_elec. A month of the electric heating system:
    # meter 186,420 kWh = 186.42 MWh; the supplier's bill says 186.5 MWh; the purchase
    # ledger 186.5 MWh. The meter reading wins; |186.42 - 186.5| = 0.08 <= 1 % x 186.5.
    choice = choose_activity_data(
        meter=kwh_to_mwh(parse("186420")), bill=parse("186.5"), ledger=parse("186.5"),
        tolerance=parse("0.01"))
    assert (choice.source, choice.ledger_check, choice.flagged) == ("meter", "consistent", False)
    assert choice.value == parse("186.42")
    # 186.42 x 0.5703 = 106.2594 + 0.055926 = 106.315326 tCO2
    assert to_decimal(purchased_energy(choice.value, GRID_CN)) == "106.315326"


def test_case_18_without_a_meter_reading_the_bill_is_used_and_flagged() -> None:
    choice = choose_activity_data(meter=None, bill=parse("186.5"), ledger=parse("186.5"),
                                  tolerance=parse("0.01"))
    assert (choice.source, choice.ledger_check, choice.flagged) == ("bill", "consistent", True)
    # 186.5 x 0.5703 = 106.305 + 0.05595 = 106.36095 tCO2
    assert to_decimal(purchased_energy(choice.value, GRID_CN)) == "106.36095"


@pytest.mark.parametrize(
    ("meter", "ledger", "check"),
    [
        ("100", "102", "consistent"),  # |100 - 102| = 2 <= 2 % x 102 = 2.04
        ("100", "98", "mismatch"),  # 2 > 2 % x 98 = 1.96: relative to the ledger
        ("100", "102.05", "mismatch"),  # 2.05 > 2.041
        ("0", "0", "consistent"),
        ("1", "0", "mismatch"),
        ("100", None, "no_ledger"),
    ],
)
def test_case_18_ledger_cross_check_is_exact(meter: str, ledger: str | None, check: str) -> None:
    choice = choose_activity_data(meter=parse(meter), bill=None,
                                  ledger=None if ledger is None else parse(ledger),
                                  tolerance=parse("0.02"))
    assert choice.ledger_check == check
    assert choice.flagged == (check != "consistent")


def test_case_18_without_meter_or_bill_is_refused() -> None:
    with pytest.raises(ActivityDataError, match="neither a meter reading nor a supplier's bill"):
        choose_activity_data(meter=None, bill=None, ledger=parse("10"), tolerance=parse("0.01"))


def test_fuel_combustion_worked_example() -> None:
    # A boiler house burns 120 t of diesel and 50 x 10^4 Nm3 of natural gas.
    # Diesel:  120 x 42.652 = 5,118.24 GJ; x 0.0202 = 103.388448 tC; x 0.98 = 101.32067904 tC;
    #          x 44/12: 101.32067904 x 44 = 4,458.10987776, / 12 = 371.50915648 tCO2 (exact).
    # Gas:     50 x 389.31 = 19,465.5 GJ; x 0.0153 = 297.82215 tC; x 0.99 = 294.8439285 tC;
    #          x 44/12: 294.8439285 x 44 = 12,973.132854, / 12 = 1,081.0944045 tCO2 (exact).
    # Total:   371.50915648 + 1,081.0944045 = 1,452.60356098 tCO2.
    assert to_decimal(fuel_line(diesel("120"))) == "371.50915648"
    assert to_decimal(fuel_line(natural_gas("50"))) == "1081.0944045"
    assert to_decimal(fuel_combustion([diesel("120"), natural_gas("50")])) == "1452.60356098"
    # The widely quoted derived factors: 3.0959 tCO2/t diesel, 21.622 tCO2/10^4 Nm3 gas.
    assert to_decimal(fuel_line(natural_gas("1")), 3) == "21.622"
    assert to_decimal(fuel_line(diesel("1")), 4) == "3.0959"


def test_fuel_combustion_rounds_at_the_ratio() -> None:
    # 1 t diesel: 42.652 x 0.0202 x 0.98 = 0.844338992 tC; x 44 = 37.150915648;
    # / 12 = 3.0959096373333... -> 3.095909637333333333 (19th digit 3: down).
    assert to_decimal(fuel_line(diesel("1"))) == "3.095909637333333333"
    # 2 t: 1.688677984 x 44 = 74.301831296; / 12 = 6.19181927466666... -> ...667 (up).
    assert to_decimal(fuel_line(diesel("2"))) == "6.191819274666666667"
    # Rounding is per line, then lines are summed exactly: 1 t + 1 t != 2 t here.
    assert fuel_combustion([diesel("1"), diesel("1")]) == 2 * fuel_line(diesel("1"))
    assert fuel_combustion([diesel("1"), diesel("1")]) + 1 == fuel_line(diesel("2"))


def test_process_emissions_worked_example() -> None:
    # SF6 leaked from switchgear: 0.012 t x 1 x 23,500 = 282 tCO2e.
    # HFC-134a refrigerant top-up: 0.05 t x 1 x 1,300 = 65 tCO2e.
    # Limestone calcination: 1,000 t x 0.44 tCO2/t x GWP(CO2) 1 = 440 tCO2.
    # (0.44 is a round test value, not a shipped factor.)
    one = parse("1")
    lines = [
        ProcessLine(parse("0.012"), one, parse("23500")),
        ProcessLine(parse("0.05"), one, parse("1300")),
        ProcessLine(parse("1000"), parse("0.44"), one),
    ]
    assert [to_decimal(process_emissions([x])) for x in lines] == ["282", "65", "440"]
    assert to_decimal(process_emissions(lines)) == "787"
    assert process_emissions([]) == 0


def test_case_3_methane_recovery_project_reductions() -> None:
    # Case 3 (CMS-016-V01 methane recovery by anaerobic digestion of kitchen waste, and
    # CMS-001-V02 heat): illustrative annual figures in the case's order of magnitude
    # ("reductions expected above 40,000 t").
    # Baseline: methane that would have escaped, recovered and destroyed:
    #   1,500 t CH4 x 1 x 28 (AR5) = 42,000 tCO2e;
    #   grid electricity displaced by the biogas generator: 6,000 MWh x 0.5703 = 3,421.8 tCO2;
    #   baseline = 45,421.8 tCO2e.
    # Project: electricity the plant consumes: 4,000 MWh x 0.5703 = 2,281.2 tCO2;
    #   digestate trucked to the incinerator, 120 t diesel = 371.50915648 tCO2 (above);
    #   project = 2,652.70915648 tCO2.
    # Leakage: none claimed, 0.
    # Reductions = 45,421.8 - 2,652.70915648 - 0 = 42,769.09084352 tCO2e.
    methane = process_emissions([ProcessLine(parse("1500"), parse("1"), parse("28"))])
    displaced = purchased_energy(parse("6000"), GRID_CN)
    assert (to_decimal(methane), to_decimal(displaced)) == ("42000", "3421.8")
    consumed = purchased_energy(parse("4000"), GRID_CN)
    transport = fuel_combustion([diesel("120")])
    project = consumed + transport
    assert to_decimal(project) == "2652.70915648"
    reductions = project_reductions(methane + displaced, project, 0)
    assert to_decimal(reductions) == "42769.09084352"


def test_project_reductions_can_be_negative_and_overflow_is_checked() -> None:
    assert project_reductions(parse("10"), parse("12"), parse("1")) == -parse("3")
    assert project_reductions(0, MAX_VALUE, 0) == -MAX_VALUE
    with pytest.raises(FixedPointOverflowError) as info:
        project_reductions(0, MAX_VALUE, 1)
    assert info.value.error_args == {"value": MAX_VALUE + 1}


def test_inputs_are_checked_in_argument_order() -> None:
    with pytest.raises(FixedPointOverflowError) as info:
        purchased_energy(MAX_VALUE + 1, MAX_VALUE + 2)
    assert info.value.error_args == {"value": MAX_VALUE + 1}
    with pytest.raises(FixedPointOverflowError) as info:
        fuel_line(FuelLine(SCALE, MAX_VALUE + 5, MAX_VALUE + 6, 0))
    assert info.value.error_args == {"value": MAX_VALUE + 5}
    # an intermediate: 2^100 t x 2^100 GJ/t overflows at the first product
    with pytest.raises(FixedPointOverflowError) as info:
        fuel_line(FuelLine(2**127, 2**127, SCALE, SCALE))
    assert info.value.error_args == {"value": (2**254 + SCALE // 2) // SCALE}


def test_lines_refuse_non_uint256_values() -> None:
    with pytest.raises(InvalidDecimalError):
        FuelLine(-1, 0, 0, 0)
    with pytest.raises(InvalidDecimalError):
        ProcessLine(2**256, 0, 0)
    with pytest.raises(InvalidDecimalError):
        purchased_energy(1.5, 1)  # type: ignore[arg-type]
