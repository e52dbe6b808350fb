"""The shipped default factors: data with sources, ranges that refuse nonsense."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import carbon_rules.factors as factors_module
from carbon_rules.errors import ImplausibleFactorError, InvalidDecimalError, InvalidRuleError
from carbon_rules.factors import (
    default_draft,
    default_factors,
    factor_set_names,
    load_factor_set,
)
from carbon_rules.fixed_point import parse
from carbon_rules.models import Factor, hex32

#: IPCC AR5 WG1 table 8.A.1 GWP100 values this project is sure of.
AR5_GWP100 = {
    "CO2": "1", "CH4": "28", "N2O": "265", "SF6": "23500", "NF3": "16100", "CF4": "6630",
    "C2F6": "11100", "HFC-23": "12400", "HFC-32": "677", "HFC-125": "3170",
    "HFC-134a": "1300", "HFC-143a": "4800",
}


def by_id(include_unverified: bool = False) -> dict[str, Factor]:
    return {f.id: f for f in default_factors(include_unverified=include_unverified)}


def test_shipped_sets() -> None:
    assert factor_set_names() == ("cn-mee-grid", "cn-ndrc-fuels", "conventions",
                                  "ipcc-ar5-gwp100")


def test_national_grid_factor_is_0_5703_from_the_2023_mee_notice() -> None:
    grid = by_id()["ef.grid.CN"]
    assert (grid.value, grid.unit, grid.region, grid.year) == (
        parse("0.5703"), "tCO2/MWh", "CN", 2023)
    assert "生态环境部" in grid.source
    assert "关于做好2023—2025年发电行业企业温室气体排放报告管理有关工作的通知" in grid.source
    entry = next(e for e in load_factor_set("cn-mee-grid").factors if e.factor.id == "ef.grid.CN")
    assert entry.data_year == 2022 and entry.confidence == "high"


def test_heat_and_fuel_defaults() -> None:
    f = by_id()
    assert f["ef.heat.CN"].value == parse("0.11") and f["ef.heat.CN"].unit == "tCO2/GJ"
    assert (f["ncv.natural_gas"].value, f["cc.natural_gas"].value, f["of.natural_gas"].value) == (
        parse("389.31"), parse("0.0153"), parse("0.99"))
    assert (f["ncv.diesel"].value, f["cc.diesel"].value, f["of.diesel"].value) == (
        parse("42.652"), parse("0.0202"), parse("0.98"))
    assert (f["ncv.gasoline"].value, f["cc.gasoline"].value, f["of.gasoline"].value) == (
        parse("43.07"), parse("0.0189"), parse("0.98"))
    for fuel in ("natural_gas", "diesel", "gasoline"):
        assert "国家发展和改革委员会" in f[f"ncv.{fuel}"].source
        assert f[f"ncv.{fuel}"].year == 2015


def test_gwps_are_ipcc_ar5() -> None:
    f = by_id()
    gwps = {k.removeprefix("gwp."): v for k, v in f.items() if k.startswith("gwp.")}
    assert gwps.keys() == AR5_GWP100.keys()
    for gas, value in AR5_GWP100.items():
        assert gwps[gas].value == parse(value), gas
        assert gwps[gas].min_value == gwps[gas].max_value == gwps[gas].value
        assert gwps[gas].unit == "tCO2e/t" and gwps[gas].region == "" and gwps[gas].year == 2013
        assert gwps[gas].source.startswith("IPCC; Climate Change 2013")


def test_unverified_factors_load_only_when_asked_for() -> None:
    assert "ncv.raw_coal" not in by_id()
    coal = by_id(include_unverified=True)
    assert coal["ncv.raw_coal"].value == parse("20.908")
    assert len(coal) == len(by_id()) + 3


def test_every_factor_has_a_source_a_range_and_a_reason() -> None:
    for name in factor_set_names():
        for entry in load_factor_set(name).factors:
            f = entry.factor
            assert f.min_value <= f.value <= f.max_value, f.id
            assert entry.document.issuer and entry.document.title and entry.document.year
            assert entry.range_basis, f.id
            assert entry.confidence in ("high", "definition", "unverified")


def test_default_draft_is_sorted_and_hashable() -> None:
    draft = default_draft()
    keys = [f.key for f in draft.factors]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    draft.check()
    assert len(draft.parameters_hash) == 32


@pytest.mark.parametrize(
    ("factor_id", "value"),
    [("ef.grid.CN", "570.3"), ("ef.grid.CN", "0.05703"), ("cc.natural_gas", "15.3"),
     ("ncv.natural_gas", "38.931"), ("of.diesel", "1.02"), ("gwp.CH4", "25")],
    ids=["kg-per-MWh", "tenfold-low", "tC-per-TJ", "MJ-per-Nm3", "over-100-percent",
         "AR4-methane"],
)
def test_implausible_values_are_refused(factor_id: str, value: str) -> None:
    f = by_id()[factor_id]
    with pytest.raises(ImplausibleFactorError) as info:
        f.check_value(parse(value))
    assert info.value.error == "RuleRegistryFactorOutOfRange"
    assert info.value.error_args == {"factor": hex32(factor_id), "value": parse(value),
                                     "minValue": f.min_value, "maxValue": f.max_value}


def _write_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> None:
    """Serve ``data`` as the only factor set, from a copy of the package folder."""
    (tmp_path / f"{data['set']}.json").write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(factors_module, "_folder", lambda: tmp_path)
    factors_module.load_factor_set.cache_clear()


def _one(**override: Any) -> dict[str, Any]:
    factor = {"id": "ef.test", "value": "0.5", "unit": "tCO2/MWh", "region": "CN",
              "plausible": {"min": "0.1", "max": "1", "basis": "test"},
              "source": {"issuer": "Test", "title": "A test", "year": 2024},
              "confidence": "high"}
    factor.update(override)
    return {"set": "test", "description": "test", "factors": [factor]}


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ({"value": "2"}, ImplausibleFactorError, "RuleRegistryFactorOutOfRange"),
        ({"plausible": {"min": "1", "max": "0.1", "basis": "x"}}, ImplausibleFactorError,
         "RuleRegistryInvalidFactorBounds"),
        ({"value": 0.5}, InvalidDecimalError, "expected a decimal string"),
        ({"source": {"issuer": "Test", "year": 2024}}, InvalidRuleError, "source lacks 'title'"),
        ({"confidence": "probably"}, InvalidRuleError, "confidence must be one of"),
        ({"colour": "green"}, InvalidRuleError, "unknown keys"),
        ({"plausible": None}, InvalidRuleError, "plausible must be"),
    ],
    ids=["value-outside-range", "empty-range", "float-value", "source-without-title",
         "unknown-confidence", "unknown-key", "no-range"],
)
def test_broken_data_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: dict[str, Any],
    error: type[Exception], match: str,
) -> None:
    _write_set(tmp_path, monkeypatch, _one(**override))
    try:
        with pytest.raises(error, match=match):
            load_factor_set("test")
    finally:
        factors_module.load_factor_set.cache_clear()


def test_package_data_is_where_the_loader_looks() -> None:
    folder = resources.files("carbon_rules").joinpath("data", "factors")
    assert sorted(p.name for p in folder.iterdir()) == [f"{n}.json" for n in factor_set_names()]
