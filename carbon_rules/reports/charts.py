"""Charts of a report, drawn with matplotlib's Agg backend (no display needed).

Both charts are PNG bytes drawn only from the report, with the PNG's ``Software``
stamp removed, so the same report gives the same bytes on the same matplotlib build.
Quantities are plotted as floats: a chart is a picture of the exact figures the report
states, never a source of figures.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from ..fixed_point import parse  # noqa: E402
from .structure import InventoryReport  # noqa: E402

__all__ = ["cumulative_chart", "emissions_chart"]

_SIZE = (7.0, 3.0)
_DPI = 150


def _t(text: str) -> float:
    return parse(text) / 1e18


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def emissions_chart(report: InventoryReport) -> bytes:
    """Emissions per inventory period, stacked by scope (tCO2e)."""
    rows = report.emissions.by_period
    labels = [r.label for r in rows]
    s1 = [_t(r.scope1) for r in rows]
    s2 = [_t(r.scope2) for r in rows]
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    ax.bar(labels, s1, label="Scope 1 (direct)", color="#4c72b0")
    ax.bar(labels, s2, bottom=s1, label="Scope 2 (purchased energy)", color="#dd8452")
    ax.set_ylabel("tCO2e")
    ax.set_title("Emissions over time")
    ax.legend(loc="upper left", fontsize=8)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    return _png(fig)


def cumulative_chart(report: InventoryReport) -> bytes | None:
    """Cumulative monthly emissions against the annual quota and the year-end forecast,
    or ``None`` when the report has no quota reconciliation."""
    q = report.quota
    if q is None:
        return None
    months = [r.month for r in q.months]
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    ax.plot(months, [_t(r.cumulative) for r in q.months], marker="o", label="cumulative")
    ax.plot([months[-1], 12], [_t(q.emissions_to_date), _t(q.forecast)], linestyle="--",
            label=f"forecast ({q.forecast_method.replace('_', ' ')})")
    ax.axhline(_t(q.quota.allocation), color="#c44e52",
               label=f"quota ({q.quota.origin})")
    ax.set_xlim(0.5, 12.5)
    ax.set_xticks(range(1, 13))
    ax.set_xlabel(f"month of {q.year}")
    ax.set_ylabel("tCO2e")
    ax.set_title("Emissions against quota")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _png(fig)
