"""Activity data from meter readings (issue 4, item 3).

Readings of one or many devices, each with the Merkle leaf it was logged at, become
consumption per device, local day and tariff band, in exact fixed point, with every
gap, substitution, rollover, replacement and anomaly counted and its leaves named.
Totals roll up per device, site or enterprise and per day, month, quarter or year.

Two paths give bit-identical results:

- :func:`compute_activity`: per-reading :class:`ReadingPoint` objects, the reference;
- :func:`compute_activity_columnar`: numpy columns (:class:`ReadingColumns`), for tens
  of millions of readings.

Example (a month of purchased electricity, case 18: AD in MWh)::

    points = [ReadingPoint.from_reading(r, leaf) for leaf, r in logged]
    data = compute_activity(points, ActivityConfig(target_unit="MWh"))
    january = data.totals("enterprise", "month")[("*", "2026-01", "*")]
    emissions = purchased_energy(january.amount, grid_factor)
    january.quality.clean, data.leaves, data.flagged["gap"]

The rules are in :mod:`carbon_rules.activity.registers` (deltas, rollover,
replacement, gaps), :mod:`~carbon_rules.activity.aggregate` (conversion and roll-up),
:mod:`~carbon_rules.activity.periods` (local periods) and
:mod:`~carbon_rules.activity.tariffs` (peak/valley bands).
"""

from .aggregate import UNASSIGNED_SITE, ActivityData, LeafRanges, Level, QualityCounts, Totals
from .columnar import ReadingColumns, compute_activity_columnar
from .exact import compute_activity
from .model import QUALITIES, ActivityConfig, MeterConfig, MeterReplacement, Quality, ReadingPoint
from .periods import DEFAULT_TIMEZONE, PERIODS, Period
from .registers import COUNTS, FLAGS
from .tariffs import ALL_DAY, TariffSchedule
from .units import UNITS, convert

__all__ = [
    "ALL_DAY",
    "COUNTS",
    "DEFAULT_TIMEZONE",
    "FLAGS",
    "PERIODS",
    "QUALITIES",
    "UNASSIGNED_SITE",
    "UNITS",
    "ActivityConfig",
    "ActivityData",
    "LeafRanges",
    "Level",
    "MeterConfig",
    "MeterReplacement",
    "Period",
    "Quality",
    "QualityCounts",
    "ReadingColumns",
    "ReadingPoint",
    "TariffSchedule",
    "Totals",
    "compute_activity",
    "compute_activity_columnar",
    "convert",
]
