"""A methodology's history offline: which version applies when, and what a line emits.

The contract answers the same questions; ``tests/contracts/test_rule_registry.py``
checks that both answer identically. Here the offline semantics are pinned by example.
"""

from __future__ import annotations

import pytest

from carbon_rules.errors import (
    InvalidParameterError,
    InvalidRuleError,
    NoVersionInForceError,
    PublicationRefusedError,
    UnknownRuleError,
    VersionNotYetInForceError,
    VersionSupersededError,
)
from carbon_rules.factors import default_factors
from carbon_rules.fixed_point import parse, to_decimal
from carbon_rules.models import (
    Factor,
    FuelUse,
    Methodology,
    MethodologyVersion,
    Param,
    ProcessUse,
    RuleRef,
    VersionDraft,
    VersionStatus,
    decode_name,
    encode_name,
    hex32,
    parameters_hash,
)

MID = "cn.scope2.electricity"
JAN_2023 = 1_672_531_200
JAN_2024 = 1_704_067_200
JAN_2025 = 1_735_689_600


def grid(value: str) -> Factor:
    return Factor("ef.grid.CN", parse(value), parse("0.1"), parse("1.5"), "tCO2/MWh", "CN",
                  2023, "test source")


def version(number: int, start: int, *factors: Factor) -> MethodologyVersion:
    draft = VersionDraft("IPCC-AR5-GWP100", f"doc v{number}", factors)
    return MethodologyVersion(MID, number, start, start, "0x" + "11" * 20,
                              draft.parameters_hash, draft.gwp_set, draft.document,
                              draft.factors)


@pytest.fixture
def history() -> Methodology:
    # v1 0.5810 from 2023; v2 0.5703 from 2024; v3 (a correction) also from 2025, and
    # v4 replacing v3 before it took effect: v3 is never in force.
    return Methodology(MID, (
        version(1, JAN_2023, grid("0.5810")),
        version(2, JAN_2024, grid("0.5703")),
        version(3, JAN_2025, grid("0.9")),
        version(4, JAN_2025, grid("0.5")),
    ))


def test_names_are_short_printable_ascii() -> None:
    assert encode_name("ef.grid.CN") == b"ef.grid.CN" + bytes(22)
    assert decode_name(encode_name("ef.grid.CN")) == "ef.grid.CN"
    for bad in ("", "x" * 33, "电网", "a\x00b", "tab\t"):
        with pytest.raises(InvalidRuleError):
            encode_name(bad)
    assert encode_name("", allow_empty=True) == bytes(32)


def test_version_at(history: Methodology) -> None:
    assert history.version_at(JAN_2023) == 1
    assert history.version_at(JAN_2024 - 1) == 1
    assert history.version_at(JAN_2024) == 2
    assert history.version_at(JAN_2025 - 1) == 2
    assert history.version_at(JAN_2025) == 4  # the later of two equal starts wins
    with pytest.raises(NoVersionInForceError) as info:
        history.version_at(JAN_2023 - 1)
    assert info.value.error_args == {"methodologyId": hex32(MID), "at": JAN_2023 - 1}


def test_status_at(history: Methodology) -> None:
    assert history.status_at(2, JAN_2024 - 1) is VersionStatus.PENDING
    assert history.status_at(2, JAN_2024) is VersionStatus.IN_FORCE
    assert history.status_at(2, JAN_2025) is VersionStatus.SUPERSEDED
    assert history.status_at(3, JAN_2025 - 1) is VersionStatus.PENDING
    assert history.status_at(3, JAN_2025) is VersionStatus.SUPERSEDED  # never in force
    assert history.status_at(4, 2**64 - 1) is VersionStatus.IN_FORCE
    assert history.effective_to(1) == JAN_2024 and history.effective_to(4) is None


def test_a_version_not_yet_in_force_is_refused(history: Methodology) -> None:
    with pytest.raises(VersionNotYetInForceError) as info:
        history.compute_purchased_energy(RuleRef(MID, 2, JAN_2024 - 1), parse("1"),
                                         Param("ef.grid.CN"))
    assert info.value.error == "RuleRegistryVersionNotYetInForce"
    assert info.value.error_args == {"methodologyId": hex32(MID), "version": 2,
                                     "effectiveFrom": JAN_2024, "at": JAN_2024 - 1}


def test_a_superseded_version_is_refused_after_supersession(history: Methodology) -> None:
    # The old grid factor 0.5810 cannot be used for 2024 electricity.
    rule = RuleRef(MID, 1, JAN_2024)
    with pytest.raises(VersionSupersededError) as info:
        history.compute_purchased_energy(rule, parse("1000"), Param("ef.grid.CN"))
    assert str(info.value) == (f"RuleRegistryVersionSuperseded(methodologyId={hex32(MID)}, "
                               f"version=1, supersededFrom={JAN_2024}, at={JAN_2024})")
    # ... but it is still the rule for 2023.
    e = history.compute_purchased_energy(RuleRef(MID, 1, JAN_2024 - 1), parse("1000"),
                                         Param("ef.grid.CN"))
    assert to_decimal(e) == "581"


def test_unknown_versions_and_factors(history: Methodology) -> None:
    for number in (0, 5):
        with pytest.raises(UnknownRuleError, match="RuleRegistryUnknownVersion"):
            history.version(number)
    with pytest.raises(UnknownRuleError) as info:
        history.resolve(RuleRef(MID, 2, JAN_2024), Param("ef.grid.XX"))
    assert info.value.error_args == {"methodologyId": hex32(MID), "version": 2,
                                     "factor": hex32("ef.grid.XX")}
    with pytest.raises(InvalidRuleError, match="rule names"):
        history.resolve(RuleRef("other", 2, JAN_2024), Param("ef.grid.CN"))


def test_measured_values_are_range_checked_and_defaults_carry_no_value(
    history: Methodology,
) -> None:
    rule = RuleRef(MID, 2, JAN_2024)
    assert history.resolve(rule, Param.measured_value("ef.grid.CN", parse("0.6"))) == parse("0.6")
    with pytest.raises(InvalidParameterError) as info:
        history.resolve(rule, Param("ef.grid.CN", False, 7))
    assert info.value.error_args == {"factor": hex32("ef.grid.CN"), "value": 7}


def test_rule_bound_fuel_and_process_lines() -> None:
    draft = VersionDraft("IPCC-AR5-GWP100", "defaults", default_factors())
    methodology = Methodology("cn.defaults", (MethodologyVersion(
        "cn.defaults", 1, 0, 0, "0x" + "22" * 20, draft.parameters_hash, draft.gwp_set,
        draft.document, draft.factors),))
    rule = RuleRef("cn.defaults", 1, JAN_2024)
    fuels = [FuelUse.with_defaults("diesel", parse("120")),
             FuelUse.with_defaults("natural_gas", parse("50"))]
    # the worked example of tests/unit/carbon_rules/test_formulas.py
    assert to_decimal(methodology.compute_fuel_combustion(rule, fuels)) == "1452.60356098"
    measured = FuelUse(parse("120"), Param.measured_value("ncv.diesel", parse("43")),
                       Param("cc.diesel"), Param("of.diesel"))
    # 120 x 43 = 5,160 GJ; x 0.0202 = 104.232 tC; x 0.98 = 102.14736; x 44/12 = 374.54032
    assert to_decimal(methodology.compute_fuel_combustion(rule, [measured])) == "374.54032"
    sf6 = ProcessUse(parse("0.012"), Param("ef.direct_release"), Param("gwp.SF6"))
    assert to_decimal(methodology.compute_process_emissions(rule, [sf6])) == "282"


def test_version_parameters_must_match_their_hash() -> None:
    draft = VersionDraft("", "doc", (grid("0.5703"),))
    with pytest.raises(InvalidRuleError, match="do not match their published hash"):
        MethodologyVersion(MID, 1, 0, 0, "0x" + "11" * 20, draft.parameters_hash, "", "doc",
                           (grid("0.5704"),))


def test_history_must_be_numbered_and_ordered() -> None:
    with pytest.raises(InvalidRuleError, match="version 1 of"):
        Methodology(MID, (version(2, JAN_2023, grid("0.5")),))
    with pytest.raises(InvalidRuleError, match="takes effect before"):
        Methodology(MID, (version(1, JAN_2024, grid("0.5")), version(2, JAN_2023, grid("0.5"))))


def test_draft_sorts_factors_and_checks_duplicates() -> None:
    a = grid("0.5")
    b = Factor("ef.heat.CN", parse("0.11"), parse("0.05"), parse("0.2"), "tCO2/GJ", "CN", 2015,
               "src")
    assert VersionDraft("", "d", (b, a)).factors == (a, b)
    assert VersionDraft("", "d", (b, a)).parameters_hash == parameters_hash("", "d", (a, b))
    with pytest.raises(PublicationRefusedError) as info:
        VersionDraft("", "d", (a, a)).check()
    assert info.value.error_args == {"previous": hex32("ef.grid.CN"), "got": hex32("ef.grid.CN")}
