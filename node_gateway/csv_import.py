"""CSV import of meter measurements: every row validated, a bad file imports nothing.

The file is UTF-8 (a byte-order mark is tolerated) with a required header naming
exactly these columns, in any order::

    device,measured_at,quantity,unit,value,cumulative,quality

* ``device``       an identifier such as ``86.1000.1/dev.meter-0001``;
* ``measured_at``  end of the interval, ``YYYY-MM-DDTHH:MM:SSZ`` (UTC);
* ``quantity``     one of the protocol quantities (``active_energy``, ``gas_volume``...);
* ``unit``         a unit valid for the quantity (``kWh``, ``m3``, ``Nm3``, ``GJ``...);
                   for ``gas_volume``, ``m3`` is the volume at line conditions (imported,
                   but left out of inventories: it needs a pressure and temperature
                   correction) and ``Nm3`` the volume a volume corrector reports at 0 °C
                   and 101.325 kPa (accounted as natural gas combustion);
* ``value``        the interval value as a decimal (``12.345``), never negative;
* ``cumulative``   the register after the interval, or empty when not read;
* ``quality``      ``measured``, ``estimated``, ``manual`` or ``substituted``.

Each row is parsed by a strict pydantic model using the wire protocol's own field
types, so a row that imports is a row the ledger will accept. Across rows, a
measurement may appear once per file, and a register may not run backwards. Every
problem is collected before anything is refused, and each names the file, the line
and the field (:class:`~node_gateway.errors.CsvProblem`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.models import (
    QUANTITY_UNITS,
    DecimalStr,
    Quality,
    Quantity,
    UtcTimestamp,
    parse_utc,
)

from .errors import CsvImportError, CsvProblem
from .simulator import Measurement

__all__ = ["COLUMNS", "CsvRow", "ImportedRow", "parse_csv", "MAX_PROBLEMS"]

COLUMNS = ("device", "measured_at", "quantity", "unit", "value", "cumulative", "quality")
MAX_PROBLEMS = 1000


class CsvRow(BaseModel):
    """One data row, validated with the wire protocol's field types."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    device: IdentifierStr
    measured_at: UtcTimestamp
    quantity: Quantity
    unit: str
    value: DecimalStr
    cumulative: DecimalStr | None
    quality: Quality

    @field_validator("value")
    @classmethod
    def _not_negative(cls, v: str) -> str:
        if v.startswith("-"):
            raise ValueError("an interval value cannot be negative")
        return v

    @field_validator("cumulative")
    @classmethod
    def _register_not_negative(cls, v: str | None) -> str | None:
        if v is not None and v.startswith("-"):
            raise ValueError("a register cannot be negative")
        return v

    @field_validator("unit")
    @classmethod
    def _unit_fits_quantity(cls, v: str, info: ValidationInfo) -> str:
        quantity = info.data.get("quantity")
        if quantity is None:
            return v  # the quantity itself is reported
        allowed = QUANTITY_UNITS[quantity]
        if v not in allowed:
            raise ValueError(f"unit {v!r} is not valid for {quantity} "
                             f"(use {', '.join(sorted(allowed))})")
        return v

    def measurement(self) -> Measurement:
        """The row as a :class:`Measurement`."""
        return Measurement(self.device, parse_utc(self.measured_at), self.quantity, self.unit,
                           self.value, self.cumulative, self.quality)


class ImportedRow(NamedTuple):
    """A valid row and the line it came from (for errors found later, e.g. conflicts)."""

    line: int
    measurement: Measurement


def _field_of(error: dict[str, object]) -> str | None:
    loc = error.get("loc") or ()
    if isinstance(loc, tuple) and loc:
        return str(loc[0])
    return None


def _rows(
    fh: Iterator[str], name: str, problems: list[CsvProblem]
) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(fh, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(CsvProblem(name, reader.line_num, None, f"not valid CSV: {exc}"))
        return
    if header is None:
        problems.append(CsvProblem(name, 1, None, "the file is empty; a header is required: "
                                   + ",".join(COLUMNS)))
        return
    cols = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in cols]
    unknown = [c for c in cols if c not in COLUMNS]
    doubled = sorted({c for c in cols if cols.count(c) > 1})
    if missing or unknown or doubled:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(c) for c in unknown))
        if doubled:
            parts.append("repeated " + ", ".join(doubled))
        problems.append(CsvProblem(name, 1, None, "header must name the columns "
                                   + ",".join(COLUMNS) + ": " + "; ".join(parts)))
        return
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(CsvProblem(name, reader.line_num, None, f"not valid CSV: {exc}"))
            return
        line = reader.line_num
        if not record or all(not c.strip() for c in record):
            continue  # blank line
        if len(record) != len(cols):
            problems.append(CsvProblem(name, line, None, f"expected {len(cols)} columns, "
                                       f"found {len(record)}"))
            continue
        yield line, dict(zip(cols, (c.strip() for c in record), strict=True))


def parse_csv(path: Path | str) -> list[ImportedRow]:
    """Read and validate a whole CSV file; raise :class:`CsvImportError` listing every
    problem (file, line, field) if any row is bad, so that nothing of it is imported."""
    path = Path(path)
    name = str(path)
    problems: list[CsvProblem] = []
    out: list[ImportedRow] = []
    seen: dict[tuple[str, str, str], int] = {}
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            for line, raw in _rows(fh, name, problems):
                if len(problems) >= MAX_PROBLEMS:
                    break
                values: dict[str, str | None] = dict(raw)
                if values["cumulative"] == "":
                    values["cumulative"] = None
                try:
                    row = CsvRow.model_validate(values)
                except ValidationError as exc:
                    for err in exc.errors():
                        field = _field_of(dict(err))
                        msg = str(err.get("msg", "invalid"))
                        if field is not None and field in raw:
                            msg = f"{msg} (got {raw[field]!r})"
                        problems.append(CsvProblem(name, line, field, msg))
                    continue
                key = (row.device, row.measured_at, row.quantity)
                if key in seen:
                    problems.append(CsvProblem(
                        name, line, "measured_at",
                        f"{row.device} {row.quantity} at {row.measured_at} already appears "
                        f"on line {seen[key]}"))
                    continue
                seen[key] = line
                out.append(ImportedRow(line, row.measurement()))
    except UnicodeDecodeError as exc:
        problems.append(CsvProblem(name, 0, None, f"not UTF-8 text: {exc.reason} at byte "
                                   f"{exc.start}"))
    except OSError as exc:
        raise CsvImportError(name, [CsvProblem(name, 0, None,
                                               f"cannot read the file: {exc.strerror}")]) from None
    problems.extend(_check_registers(name, out))
    if problems:
        problems.sort(key=lambda p: p.line)
        raise CsvImportError(name, problems)
    return out


def _check_registers(name: str, rows: list[ImportedRow]) -> list[CsvProblem]:
    """A register may not run backwards (in measurement time) within one file."""
    problems = []
    by_meter: dict[tuple[str, str], list[ImportedRow]] = {}
    for r in rows:
        by_meter.setdefault((r.measurement.device_id, r.measurement.quantity), []).append(r)
    for series in by_meter.values():
        series.sort(key=lambda r: r.measurement.measured_at)
        last: ImportedRow | None = None
        for r in series:
            if r.measurement.cumulative is None:
                continue
            if last is not None and last.measurement.cumulative is not None and (
                    Decimal(r.measurement.cumulative) < Decimal(last.measurement.cumulative)):
                problems.append(CsvProblem(
                    name, r.line, "cumulative",
                    f"register runs backwards: {r.measurement.cumulative} after "
                    f"{last.measurement.cumulative} on line {last.line}"))
            last = r
    return problems
