"""Green grade: hand-checked numbers, each boundary on both sides."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from pydantic import ValidationError

from ledger_service.errors import InvalidInputError
from ledger_service.finance.grading import Benchmark, GradeThresholds, green_grade

STEEL = Benchmark(industry="crude steel (BF-BOF)", value=D("2.0"), unit="tCO2e/t",
                  source="test benchmark")


@pytest.mark.parametrize(("emissions", "grade", "label"), [
    ("0", "dark_green", "深绿"),
    ("1600", "dark_green", "深绿"),            # 1.6 t/t = 0.8 x 2.0 exactly
    ("1600.000001", "medium_green", "中绿"),
    ("1800", "medium_green", "中绿"),          # 0.9 x 2.0
    ("1800.000001", "light_green", "浅绿"),
    ("2000", "light_green", "浅绿"),           # 1.0 x 2.0
    ("2000.000001", "not_green", "非绿"),
    ("5000", "not_green", "非绿"),
])
def test_grade_boundaries_per_1000_tonnes(emissions: str, grade: str, label: str) -> None:
    result = green_grade(D(emissions), D(1000), STEEL)
    assert (result.grade, result.label) == (grade, label)
    assert result.intensity == D(emissions) / D(1000)


def test_ratio_and_intensity_are_reported() -> None:
    result = green_grade(D("1710"), D("1000"), STEEL)
    assert result.grade == "medium_green"
    assert result.intensity == D("1.71")
    assert result.ratio == D("0.855")


def test_revenue_based_intensity_with_operator_thresholds() -> None:
    # 0.45 tCO2e per 10k CNY against a 0.6 benchmark: ratio 0.75.
    services = Benchmark(industry="data centres", value=D("0.6"), unit="tCO2e/10^4CNY",
                         source="operator")
    strict = GradeThresholds(dark_green=D("0.7"), medium_green=D("0.75"), light_green=D("0.9"))
    assert green_grade(D("450"), D("1000"), services, strict).grade == "medium_green"
    assert green_grade(D("450"), D("1000"), services).grade == "dark_green"


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        green_grade(D("1"), D("0"), STEEL)
    with pytest.raises(InvalidInputError):
        green_grade(D("-1"), D("10"), STEEL)
    with pytest.raises(InvalidInputError):
        green_grade(D("NaN"), D("10"), STEEL)
    with pytest.raises(ValidationError, match="dark_green <= medium_green"):
        GradeThresholds(dark_green=D("0.95"))
    with pytest.raises(ValidationError):
        Benchmark(industry="x", value=D("0"), unit="t", source="s")
    with pytest.raises(ValidationError):
        Benchmark(industry="x", value=D("1"), unit="t", source="")
