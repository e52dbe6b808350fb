"""The finance configuration: grade factors, integrity rules, validity, benchmarks.

One JSON file, ``LEDGER_FINANCE_CONFIG_FILE`` (default ``<data_dir>/finance.json``),
read on every request so an operator's edit takes effect at once (the file is small).
A missing file means every default and **no benchmark**: grading then refuses with
:class:`.errors.NoBenchmarkError`, because a benchmark is a number somebody must stand
behind (see :mod:`.grading`). Format (every key optional)::

    {
      "timezone": "UTC",
      "finance": {"grade": {...}, "integrity": {...}, "valid_days": 30},
      "benchmarks": [{"industry": "crude steel", "value": "1.8", "unit": "tCO2e/t",
                      "source": "..."}],
      "industries": {"86.1000.1/ent.steel": "crude steel"}
    }

``finance`` is :class:`.issuing.FinanceConfig` (its hash, with the benchmark, is signed
into every code); ``timezone`` is the calendar of period labels, months and quarters,
and must be the one the gateways compute their inventories in (the gateway's default
is UTC). ``industries`` says which benchmark grades which enterprise: an operator's
decision, never the enterprise's own, which could pick the most lenient one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import Period

from ..errors import InvalidInputError
from .errors import FinanceConfigError, NoBenchmarkError
from .grading import Benchmark
from .issuing import FinanceConfig

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["OUTPUT_UNITS", "FinanceFile", "OutputUnit", "config_path", "load_finance_config",
           "output_unit_of", "parse_period"]

OutputUnit = Literal["t", "MWh", "10^4CNY"]
"""What output is counted in: tonnes of product, MWh, or 10k CNY of revenue."""
OUTPUT_UNITS: Final[tuple[str, ...]] = ("t", "MWh", "10^4CNY")
_EMISSIONS_UNIT: Final = "tCO2e/"


class FinanceFile(BaseModel):
    """The finance configuration file (format in the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    finance: FinanceConfig = FinanceConfig()
    benchmarks: list[Benchmark] = Field(default_factory=list, max_length=1000)
    industries: dict[IdentifierStr, Annotated[str, StringConstraints(min_length=1,
                                                                     max_length=100)]] = \
        Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _benchmarks_usable(self) -> FinanceFile:
        seen: set[str] = set()
        for b in self.benchmarks:
            if b.industry in seen:
                raise ValueError(f"industry {b.industry!r} has two benchmarks")
            seen.add(b.industry)
            unit = b.unit.removeprefix(_EMISSIONS_UNIT)
            if not b.unit.startswith(_EMISSIONS_UNIT) or unit not in OUTPUT_UNITS:
                units = [_EMISSIONS_UNIT + u for u in OUTPUT_UNITS]
                raise ValueError(f"benchmark of {b.industry!r} is in {b.unit!r}; expected "
                                 f"tCO2e per output unit, one of {units}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The calendar of periods."""
        return ZoneInfo(self.timezone)

    def benchmark_for(self, enterprise: str) -> Benchmark:
        """The benchmark that grades ``enterprise``, or :class:`NoBenchmarkError`."""
        industry = self.industries.get(enterprise)
        if industry is None:
            raise NoBenchmarkError(
                f"no industry is configured for {enterprise}: add it to \"industries\" in "
                "the finance configuration (there is no default benchmark)",
                enterprise=enterprise)
        for b in self.benchmarks:
            if b.industry == industry:
                return b
        raise NoBenchmarkError(
            f"industry {industry!r} of {enterprise} has no benchmark: add one with its "
            "value, unit and source to \"benchmarks\" in the finance configuration",
            enterprise=enterprise, industry=industry)


def output_unit_of(benchmark: Benchmark) -> str:
    """The output unit a benchmark's intensity is per (``tCO2e/t`` -> ``t``)."""
    return benchmark.unit.removeprefix(_EMISSIONS_UNIT)


def parse_period(label: str, zone: str) -> Period:
    """The period a label names (``2026``, ``2026-Q1``, ``2026-01``, ``2026-01-05``) in the
    calendar ``zone``; :class:`InvalidInputError` for anything else."""
    from carbon_rules.errors import RulesError
    from carbon_rules.inventory import period_from_label

    try:
        return period_from_label(label, zone)
    except RulesError as exc:
        raise InvalidInputError(str(exc), period=label) from None


def config_path(ledger: Ledger) -> Path:
    """Where the ledger reads its finance configuration."""
    return ledger.settings.finance_config_file or Path(ledger.settings.data_dir) / "finance.json"


def load_finance_config(ledger: Ledger) -> FinanceFile:
    """The configuration in force now (defaults if the file does not exist)."""
    path = config_path(ledger)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return FinanceFile()
    except OSError as exc:
        raise FinanceConfigError(f"cannot read the finance configuration {path}: {exc}",
                                 path=str(path)) from None
    try:
        return FinanceFile.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise FinanceConfigError(f"finance configuration {path} is invalid at {where}: "
                                 f"{first['msg']}", path=str(path)) from None
