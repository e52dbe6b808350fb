"""Green grade (深绿 / 中绿 / 浅绿 / 非绿) from carbon intensity against an industry benchmark.

Intensity is emissions per unit of output: tCO2e per tonne of steel, per MWh, or per
10k CNY of revenue where no physical output fits. The grade compares it with the
benchmark of the enterprise's industry, in the same unit:

=============  =====================================
grade          when (``I`` intensity, ``B`` benchmark)
=============  =====================================
dark_green     ``I <= dark_green x B``
medium_green   ``I <= medium_green x B``
light_green    ``I <= light_green x B``
not_green      otherwise
=============  =====================================

Boundaries are inclusive and compared exactly (``E <= f x B x Q`` on the emissions
``E`` and output ``Q``, no division), so a value on a threshold gets the better grade.

Defaults (0.8 / 0.9 / 1.0) are a **documented placeholder**: the seed document says
banks grade "per PBoC requirements and national standards" but names no metric or
threshold, and no national standard fixes these factors. An operator must set the
factors and, always, the benchmark (with its source), which has no default at all.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from carbon_protocol.financing_code import GREEN_GRADE_LABELS, GreenGrade

from ..errors import InvalidInputError
from ._numbers import EXACT

__all__ = ["GradeThresholds", "Benchmark", "GradeResult", "green_grade"]

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]

class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

class GradeThresholds(_Config):
    """Factors of the benchmark at or below which each grade is given."""

    dark_green: PositiveDecimal = Decimal("0.8")
    medium_green: PositiveDecimal = Decimal("0.9")
    light_green: PositiveDecimal = Decimal("1.0")

    @model_validator(mode="after")
    def _ordered(self) -> GradeThresholds:
        if not self.dark_green <= self.medium_green <= self.light_green:
            raise ValueError("grade factors must satisfy dark_green <= medium_green <= "
                             f"light_green, got {self.dark_green}, {self.medium_green}, "
                             f"{self.light_green}")
        return self

class Benchmark(_Config):
    """An industry's reference intensity; ``source`` says whose number it is."""

    industry: Annotated[str, Field(min_length=1, max_length=100)]
    value: PositiveDecimal
    unit: Annotated[str, Field(pattern=r"^[\x20-\x7e]{1,32}$")]
    """Same unit as the intensity graded against it, e.g. ``tCO2e/t``."""
    source: Annotated[str, Field(min_length=1, max_length=500)]

class GradeResult(BaseModel):
    """A grade with the numbers it came from."""

    model_config = ConfigDict(frozen=True)

    grade: GreenGrade
    label: str
    """The Chinese grade name banks print (深绿 ...)."""
    intensity: Decimal
    benchmark: Benchmark
    ratio: Decimal
    """Intensity divided by the benchmark (for display; grading compares exactly)."""

def green_grade(
    emissions: Decimal,
    output: Decimal,
    benchmark: Benchmark,
    thresholds: GradeThresholds | None = None,
) -> GradeResult:
    """Grade ``emissions`` (tCO2e) over ``output`` (in the benchmark unit's denominator).

    Raises :class:`InvalidInputError` for negative emissions or a non-positive output.
    """
    t = thresholds or GradeThresholds()
    if not emissions.is_finite() or emissions < 0:
        raise InvalidInputError(f"emissions must be a finite number >= 0, got {emissions}")
    if not output.is_finite() or output <= 0:
        raise InvalidInputError(f"output must be a finite number > 0, got {output}")
    scale = EXACT.multiply(benchmark.value, output)
    grade: GreenGrade = "not_green"
    steps: tuple[tuple[GreenGrade, Decimal], ...] = (
        ("dark_green", t.dark_green), ("medium_green", t.medium_green),
        ("light_green", t.light_green))
    for name, factor in steps:
        if emissions <= EXACT.multiply(factor, scale):
            grade = name
            break
    intensity = EXACT.divide(emissions, output)
    return GradeResult(grade=grade, label=GREEN_GRADE_LABELS[grade], intensity=intensity,
                       benchmark=benchmark, ratio=EXACT.divide(intensity, benchmark.value))
