"""Inventories: compute one from logged readings and a rule version, or check one.

The gateway calls :func:`compute_inventory` with the readings it signed (each with the
leaf index the ledger's receipt gave it) and the methodology it fetched from the
``RuleRegistry``; the ledger and any verifier call :func:`recompute_inventory` with the
readings loaded from the log, which rebuilds every line from scratch and raises
:class:`InventoryMismatchError` naming the first line and field that differ. Both use
the same code path, so "same inputs, same rule" gives the same bytes.

Accounting, per device (one line per meter):

* the readings of a period ``[start, end)`` are those whose interval ends in
  ``(start, end]``; every one is used, and missing sequence numbers are counted in
  the line's data quality, never filled in silently;
* activity data follows :mod:`carbon_rules.activity` over exactly those readings:
  register deltas where the meter's register is read, the interval value otherwise,
  rollovers and anomalies flagged, missing intervals filled with the larger
  neighbouring interval and counted (never silent); it is then converted exactly to
  the formula's unit: kWh or MWh to MWh for purchased electricity, GJ or MJ to GJ for
  purchased heat, Nm3 to 10^4 Nm3 for natural gas.
  Gas metered in m3 at line conditions is refused: it needs a temperature and
  pressure correction this module does not guess;
* emissions come from :class:`~carbon_rules.models.Methodology` (the offline twin of
  the contract's ``computePurchasedEnergy`` / ``computeFuelCombustion``), with the
  registry's defaults unless a measured value is given (then range-checked as the
  contract does);
* the rule version is the one in force at the period's start, and it must still be
  in force at its last second (a version superseded mid-period is refused).

The wire model lives in :mod:`carbon_protocol.inventory` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carbon_protocol.inventory import (
    ActivityData,
    DataQuality,
    FactorApplied,
    Inventory,
    InventoryLine,
    LeafRange,
    Period,
    ReadingSet,
    RuleVersionRef,
    Scope,
    SignedInventory,
    SourceKind,
    Totals,
)
from carbon_protocol.models import Domain, Reading, format_utc, parse_utc

from .activity import ActivityConfig, QualityCounts, ReadingPoint, compute_activity
from .errors import RulesError
from .fixed_point import Fixed, add, mul_ratio, parse, to_decimal
from .models import FuelUse, Methodology, MethodologyVersion, Param, RuleRef

__all__ = [
    "ActivityData",
    "DataQuality",
    "FactorApplied",
    "Inventory",
    "InventoryError",
    "InventoryLine",
    "InventoryMismatchError",
    "LeafRange",
    "LoggedReading",
    "Period",
    "ReadingSet",
    "RuleVersionRef",
    "SignedInventory",
    "SourceSpec",
    "Totals",
    "UnsupportedSourceError",
    "compute_inventory",
    "compute_lines",
    "leaf_ranges",
    "period_from_label",
    "recompute_inventory",
    "rule_for_period",
    "source_of",
]


class InventoryError(RulesError, ValueError):
    """The inputs cannot make an inventory (no readings, readings of another device)."""

    code = "invalid_inventory"


class UnsupportedSourceError(InventoryError):
    """A meter's quantity and unit map to no emission source this module accounts for."""

    code = "unsupported_source"


class InventoryMismatchError(InventoryError):
    """A claimed inventory differs from its recomputation; ``details`` names where."""

    code = "inventory_mismatch"


@dataclass(frozen=True)
class LoggedReading:
    """A reading and the index of its leaf in the ledger's Merkle log."""

    leaf_index: int
    reading: Reading


@dataclass(frozen=True)
class SourceSpec:
    """How a meter's readings become activity data and emissions."""

    source: SourceKind
    scope: Scope
    ad_unit: str
    to_ad: tuple[int, int]
    """``AD = metered x num / den`` (exact for wire values)."""
    factors: tuple[str, ...]
    """Factor ids: ``(EF,)`` for ``E = AD x EF``, ``(NCV, CC, OF)`` for combustion."""


_GAS_FACTORS = ("ncv.natural_gas", "cc.natural_gas", "of.natural_gas")

_SOURCES: dict[tuple[str, str], SourceSpec] = {
    ("active_energy", "kWh"): SourceSpec("purchased_electricity", 2, "MWh", (1, 1000),
                                         ("ef.grid.CN",)),
    ("active_energy", "MWh"): SourceSpec("purchased_electricity", 2, "MWh", (1, 1),
                                         ("ef.grid.CN",)),
    ("heat", "GJ"): SourceSpec("purchased_heat", 2, "GJ", (1, 1), ("ef.heat.CN",)),
    ("heat", "MJ"): SourceSpec("purchased_heat", 2, "GJ", (1, 1000), ("ef.heat.CN",)),
    ("gas_volume", "Nm3"): SourceSpec("fuel_combustion", 1, "10^4Nm3", (1, 10_000),
                                      _GAS_FACTORS),
}


def source_of(quantity: str, unit: str) -> SourceSpec:
    """The emission source a meter of ``quantity`` in ``unit`` feeds."""
    spec = _SOURCES.get((quantity, unit))
    if spec is None:
        hint = (" (gas in m3 at line conditions needs a correction to Nm3 first)"
                if quantity == "gas_volume" else "")
        raise UnsupportedSourceError(
            f"no emission source for {quantity} in {unit}{hint}; accounted: "
            + ", ".join(f"{q} in {u}" for q, u in _SOURCES), quantity=quantity, unit=unit)
    return spec


def _seconds(text: str) -> int:
    return int(parse_utc(text).timestamp())


def rule_for_period(methodology: Methodology, period: Period,
                    version: int | None = None) -> MethodologyVersion:
    """The version in force on the whole of ``period``: ``version`` if given (a claim
    to check), else the one ``versionAt(start)`` names.

    Raises the contract's errors: ``NoVersionInForce`` (nothing at the start),
    ``UnknownVersion`` / ``VersionNotYetInForce`` (the claimed version is not in force
    at the start), ``VersionSuperseded`` (another version takes over before the end).
    """
    start, end = _seconds(period.start), _seconds(period.end)
    number = methodology.version_at(start) if version is None else version
    methodology.require_in_force(RuleRef(methodology.id, number, start))
    return methodology.require_in_force(RuleRef(methodology.id, number, end - 1))


def period_from_label(label: str, timezone: str = "UTC") -> Period:
    """The period a label names: ``2026`` (year), ``2026-Q4`` (quarter), ``2026-10``
    (month) or ``2026-10-05`` (day), in the calendar of ``timezone`` (an IANA name;
    ``Asia/Shanghai`` for the months a Chinese regulator means). Outside UTC the
    timezone is part of the label, since the bounds depend on it."""
    from datetime import UTC, date
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InventoryError(f"unknown timezone {timezone!r}", timezone=timezone) from None

    def at(d: date) -> str:
        return format_utc(datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC))

    try:
        parts = label.split("-")
        year = int(parts[0])
        if len(parts) == 1:
            first, after = date(year, 1, 1), date(year + 1, 1, 1)
        elif len(parts) == 2 and parts[1].startswith("Q"):
            q = int(parts[1][1:])
            if not 1 <= q <= 4:
                raise ValueError(f"quarter {q}")
            first = date(year, 3 * q - 2, 1)
            after = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
        elif len(parts) == 2:
            month = int(parts[1])
            first = date(year, month, 1)
            after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        elif len(parts) == 3:
            from datetime import timedelta

            first = date(year, int(parts[1]), int(parts[2]))
            after = first + timedelta(days=1)
        else:
            raise ValueError("too many parts")
    except ValueError as exc:
        raise InventoryError(f"not a period label (2026, 2026-Q4, 2026-10, 2026-10-05): "
                             f"{label!r} ({exc})", label=label) from None
    shown = label if timezone == "UTC" else f"{label} {timezone}"
    if len(shown) > 32:
        raise InventoryError(f"period label {shown!r} is longer than 32 characters")
    return Period(label=shown, start=at(first), end=at(after))


def leaf_ranges(indices: Iterable[int]) -> list[LeafRange]:
    """Leaf indices as maximal arithmetic progressions, taken greedily from the lowest
    index: the one canonical form an inventory may use (a recomputation compares it)."""
    xs = sorted(indices)
    ranges: list[LeafRange] = []
    i = 0
    while i < len(xs):
        if i + 1 == len(xs):
            ranges.append(LeafRange(first=xs[i], last=xs[i]))
            break
        step = xs[i + 1] - xs[i]
        j = i + 1
        while j + 1 < len(xs) and xs[j + 1] - xs[j] == step:
            j += 1
        ranges.append(LeafRange(first=xs[i], last=xs[j], step=step))
        i = j + 1
    return ranges


def _in_period(reading: Reading, period: Period) -> bool:
    # Protocol times are all ``YYYY-MM-DDTHH:MM:SSZ``: as text they sort as time does.
    return period.start < reading.measured_at <= period.end


def _metered(device: str, readings: Sequence[LoggedReading], unit: str
             ) -> tuple[Fixed, QualityCounts]:
    """The device's consumption over ``readings`` in its own unit, by the activity-data
    rules (register deltas, rollovers, conservative gap filling), and their counters."""
    for r in readings:
        if r.reading.value.startswith("-"):
            raise InventoryError(f"reading {device}#{r.reading.seq} has a negative interval "
                                 f"value {r.reading.value}", device=device, seq=r.reading.seq)
    data = compute_activity((ReadingPoint.from_reading(r.reading, r.leaf_index)
                             for r in readings), ActivityConfig(target_unit=unit))
    total = data.total()
    return total.amount, total.quality


def _quality(readings: Sequence[Reading], counts: QualityCounts) -> DataQuality:
    flags = {"measured": 0, "estimated": 0, "manual": 0, "substituted": 0}
    for r in readings:
        flags[r.quality] += 1
    gaps = readings[-1].seq - readings[0].seq + 1 - len(readings) if readings else 0
    return DataQuality(readings=len(readings), sequence_gaps=gaps, **flags,
                       missing_bridged=counts.missing_bridged,
                       missing_filled=counts.missing_filled, rollovers=counts.rollovers,
                       replacements=counts.replacements, anomalies=counts.anomalies)


def _sum_quality(parts: Iterable[DataQuality]) -> DataQuality:
    fields = ("readings", "measured", "estimated", "manual", "substituted", "sequence_gaps",
              "missing_bridged", "missing_filled", "rollovers", "replacements", "anomalies")
    totals = dict.fromkeys(fields, 0)
    for q in parts:
        for f in fields:
            totals[f] += getattr(q, f)
    return DataQuality(**totals)


def _param(factor: str, measured: Mapping[str, int]) -> Param:
    if factor in measured:
        return Param.measured_value(factor, measured[factor])
    return Param.default(factor)


def _line(number: int, device: str, readings: Sequence[LoggedReading], period: Period,
          methodology: Methodology, version: MethodologyVersion,
          measured: Mapping[str, int], site: str | None) -> InventoryLine:
    start = _seconds(period.start)
    chosen = sorted((r for r in readings if _in_period(r.reading, period)),
                    key=lambda r: r.reading.seq)
    if not chosen:
        raise InventoryError(f"device {device} has no readings in {period.label} "
                             f"({period.start} to {period.end})", device=device)
    first = chosen[0].reading
    for r in chosen:
        if r.reading.device != device:
            raise InventoryError(f"leaf {r.leaf_index} is a reading of {r.reading.device}, "
                                 f"not of {device}", device=device, leaf_index=r.leaf_index)
        if (r.reading.quantity, r.reading.unit) != (first.quantity, first.unit):
            raise InventoryError(f"device {device} reports both {first.quantity} in "
                                 f"{first.unit} and {r.reading.quantity} in {r.reading.unit}",
                                 device=device)
    seqs = [r.reading.seq for r in chosen]
    if len(set(seqs)) != len(seqs):
        raise InventoryError(f"device {device} has two readings with one sequence number",
                             device=device)
    spec = source_of(first.quantity, first.unit)
    unknown = sorted(set(measured) - set(spec.factors))
    if unknown:
        raise InventoryError(f"measured values for {unknown} do not apply to a "
                             f"{spec.source} line ({', '.join(spec.factors)})", device=device)
    metered, counts = _metered(device, chosen, first.unit)
    ad = mul_ratio(metered, *spec.to_ad)
    rule = RuleRef(methodology.id, version.version, start)
    params = [_param(f, measured) for f in spec.factors]
    if spec.source == "fuel_combustion":
        ncv, cc, of = params
        emissions = methodology.compute_fuel_combustion(rule, [FuelUse(ad, ncv, cc, of)])
        formula = "E = FC x NCV x CC x OF x 44/12"
    else:
        emissions = methodology.compute_purchased_energy(rule, ad, params[0])
        formula = "E = AD x EF"
    applied = []
    for p in params:
        factor = version.factor(p.factor)
        applied.append(FactorApplied(
            id=factor.id, value=to_decimal(p.value if p.measured else factor.value),
            unit=factor.unit, measured=p.measured, source=factor.source, year=factor.year))
    return InventoryLine(
        line=number, source=spec.source, scope=spec.scope, site=site,
        readings=ReadingSet(
            device=device, quantity=first.quantity, unit=first.unit, count=len(chosen),
            first_seq=seqs[0], last_seq=seqs[-1],
            leaves=leaf_ranges(r.leaf_index for r in chosen)),
        activity=ActivityData(value=to_decimal(ad), unit=spec.ad_unit,
                              metered=to_decimal(metered), metered_unit=first.unit),
        factors=applied, formula=formula,  # type: ignore[arg-type]
        emissions=to_decimal(emissions), quality=_quality([r.reading for r in chosen], counts))


def compute_lines(
    methodology: Methodology,
    period: Period,
    readings: Mapping[str, Sequence[LoggedReading]],
    *,
    measured: Mapping[str, Mapping[str, int]] | None = None,
    sites: Mapping[str, str] | None = None,
    version: int | None = None,
) -> tuple[MethodologyVersion, list[InventoryLine], Totals, DataQuality]:
    """Lines (in the order of ``readings``' keys), totals and quality of an inventory.

    ``measured`` maps a device to measured parameter values (fixed point) that replace
    the registry's defaults on its line; ``sites`` names each device's site;
    ``version`` pins the rule version (default: the one in force at the start).
    """
    if not readings:
        raise InventoryError("an inventory needs at least one device")
    rule = rule_for_period(methodology, period, version)
    lines = [
        _line(n, device, rs, period, methodology, rule,
              (measured or {}).get(device, {}), (sites or {}).get(device))
        for n, (device, rs) in enumerate(readings.items(), start=1)
    ]
    scope1, scope2 = Fixed(0), Fixed(0)
    for line in lines:
        value = parse(line.emissions)
        if line.scope == 1:
            scope1 = add(scope1, value)
        else:
            scope2 = add(scope2, value)
    totals = Totals(scope1=to_decimal(scope1), scope2=to_decimal(scope2),
                    total=to_decimal(add(scope1, scope2)))
    return rule, lines, totals, _sum_quality(line.quality for line in lines)


def compute_inventory(
    methodology: Methodology,
    period: Period,
    readings: Mapping[str, Sequence[LoggedReading]],
    *,
    chain_id: int,
    registry: str,
    gateway: str,
    domain: Domain,
    suite: str,
    key_id: str,
    measured: Mapping[str, Mapping[str, int]] | None = None,
    sites: Mapping[str, str] | None = None,
    computed_at: datetime | None = None,
) -> Inventory:
    """The unsigned inventory of ``readings`` (device -> its logged readings) for
    ``period``, computed with the version of ``methodology`` in force on it."""
    from datetime import UTC

    version, lines, totals, quality = compute_lines(
        methodology, period, readings, measured=measured, sites=sites)
    return Inventory(
        suite=suite, key_id=key_id, gateway=gateway, domain=domain,  # type: ignore[arg-type]
        period=period,
        rule=RuleVersionRef(chain_id=chain_id, registry=registry.lower(),
                            methodology_id=methodology.id, version=version.version,
                            parameters_hash=version.parameters_hash.hex()),
        lines=lines, totals=totals, quality=quality,
        computed_at=format_utc(computed_at or datetime.now(UTC)))


def _measured_of(line: InventoryLine) -> dict[str, int]:
    return {f.id: parse(f.value) for f in line.factors if f.measured}


def _diff(a: Any, b: Any, path: str) -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _diff(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _diff(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def recompute_inventory(
    inventory: Inventory,
    methodology: Methodology,
    readings: Mapping[str, Sequence[LoggedReading]],
) -> None:
    """Rebuild ``inventory`` from ``readings`` (device -> the readings its line names,
    as loaded from the log) with ``methodology``; raise unless every field matches.

    Checks, in order: the methodology is the one named; the version named is in force
    on the whole period, with the same parameters hash; then each line
    (:class:`InventoryMismatchError` with ``line``, ``device``, ``field``, ``claimed``
    and ``recomputed``), then totals and quality. Errors of the rule itself (version
    not in force, a measured factor outside its plausible range) propagate as the
    contract's errors.
    """
    rule = inventory.rule
    if methodology.id != rule.methodology_id:
        raise InventoryMismatchError(f"inventory names methodology {rule.methodology_id}, "
                                     f"recomputed with {methodology.id}", field="rule")
    version = rule_for_period(methodology, inventory.period, rule.version)
    if version.parameters_hash.hex() != rule.parameters_hash:
        raise InventoryMismatchError(
            f"{rule.methodology_id} v{rule.version} has parameters hash "
            f"{version.parameters_hash.hex()}, the inventory claims {rule.parameters_hash}",
            field="rule.parameters_hash", claimed=rule.parameters_hash,
            recomputed=version.parameters_hash.hex())
    measured = {line.readings.device: _measured_of(line) for line in inventory.lines}
    sites = {line.readings.device: line.site for line in inventory.lines
             if line.site is not None}
    ordered = {device: readings.get(device, ()) for device in inventory.devices()}
    _, lines, totals, quality = compute_lines(methodology, inventory.period, ordered,
                                              measured=measured, sites=sites,
                                              version=version.version)
    for claimed, fresh in zip(inventory.lines, lines, strict=True):
        found = _diff(claimed.model_dump(mode="json"), fresh.model_dump(mode="json"), "")
        if found:
            where, was, now = found
            raise InventoryMismatchError(
                f"line {claimed.line} ({claimed.readings.device}) differs at {where}: "
                f"claimed {was!r}, recomputed {now!r}", line=claimed.line,
                device=claimed.readings.device, field=where, claimed=was, recomputed=now)
    for name, claimed_part, fresh_part in (("totals", inventory.totals, totals),
                                           ("quality", inventory.quality, quality)):
        found = _diff(claimed_part.model_dump(mode="json"), fresh_part.model_dump(mode="json"),
                      name)
        if found:
            where, was, now = found
            raise InventoryMismatchError(f"{where} differs: claimed {was!r}, recomputed "
                                         f"{now!r}", field=where, claimed=was, recomputed=now)
