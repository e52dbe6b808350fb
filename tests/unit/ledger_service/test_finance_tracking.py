"""Loan-project tracking: hand-checked quarters, the on-track boundary, pending quarters."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from carbon_protocol.inventory import Inventory, Period
from carbon_protocol.models import Domain, Reading, parse_utc
from carbon_protocol.suites import PrivateKey
from carbon_rules.factors import default_factors
from carbon_rules.fixed_point import parse
from carbon_rules.inventory import LoggedReading, compute_inventory
from carbon_rules.models import Factor, Methodology, MethodologyVersion, VersionDraft
from ledger_service.errors import InvalidInputError
from ledger_service.finance.tracking import quarterly_emissions, track_reductions

PLAN = {"2026-Q1": D(100), "2026-Q2": D(120), "2026-Q3": D(150), "2026-Q4": D(150)}
BASELINE = dict.fromkeys(PLAN, D(1000))
DOMAIN = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id="86.1000.1/log.main")


def test_quarters_on_track_behind_and_pending() -> None:
    emissions = {"2026-Q1": D(880), "2026-Q2": D(910), "2026-Q3": D(850)}
    rows = track_reductions(PLAN, BASELINE, emissions)
    assert [r.quarter for r in rows] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    q1, q2, q3, q4 = rows
    assert (q1.actual, q1.achieved_pct, q1.status) == (D(120), D(120), "on_track")
    assert (q2.actual, q2.achieved_pct, q2.status) == (D(90), D(75), "behind")
    assert (q3.actual, q3.achieved_pct, q3.status) == (D(150), D(100), "on_track")  # boundary
    assert (q4.actual, q4.achieved_pct, q4.status) == (None, None, "pending")
    assert (q3.cumulative_planned, q3.cumulative_actual) == (D(370), D(360))
    assert q3.cumulative_pct == D("97.30")  # 360 / 370 = 97.297...%
    assert (q4.cumulative_planned, q4.cumulative_actual) == (D(370), D(360))


def test_emissions_above_baseline_is_a_negative_reduction() -> None:
    rows = track_reductions({"2027-Q1": D(10)}, {"2027-Q1": D(100)}, {"2027-Q1": D(105)})
    assert (rows[0].actual, rows[0].achieved_pct, rows[0].status) == (D(-5), D(-50), "behind")


@pytest.mark.parametrize(("plan", "baseline", "emissions"), [
    ({"2026-Q5": D(1)}, {"2026-Q5": D(1)}, {}),
    ({"2026-Q1": D(1)}, {"2026-Q2": D(1)}, {}),
    ({"2026-Q1": D(1)}, {"2026-Q1": D(1)}, {"2026-Q2": D(1)}),
    ({"2026-Q1": D(0)}, {"2026-Q1": D(1)}, {}),
], ids=["bad_label", "baseline_mismatch", "unplanned_quarter", "zero_plan"])
def test_bad_plans_are_refused(plan: Any, baseline: Any, emissions: Any) -> None:
    with pytest.raises(InvalidInputError):
        track_reductions(plan, baseline, emissions)


def _rules(grid: str) -> Methodology:
    factors = []
    for f in default_factors():
        if f.id == "ef.grid.CN":
            f = Factor(f.id, parse(grid), f.min_value, f.max_value, f.unit, f.region, f.year,
                       f.source)
        factors.append(f)
    draft = VersionDraft("IPCC-AR5-GWP100", "doc v1", tuple(factors))
    version = MethodologyVersion("cn.enterprise-ghg", 1, 1_672_531_200, 1_672_531_200,
                                 "0x" + "11" * 20, draft.parameters_hash, draft.gwp_set,
                                 draft.document, draft.factors)
    return Methodology("cn.enterprise-ghg", (version,))


RULES = _rules("0.5")
KEY = PrivateKey.generate("intl")


def _inventory(gateway: str, label: str, start: str, end: str, kwh: str) -> Inventory:
    """A real inventory (carbon_rules, grid factor 0.5 tCO2/MWh) of one reading of ``kwh``."""
    device = "86.1000.1/dev." + gateway.rsplit(".", 1)[1]
    at = (parse_utc(start) + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reading = Reading(suite="intl", key_id="00" * 16, device=device, seq=1, measured_at=at,
                      quantity="active_energy", unit="kWh", value=kwh, quality="measured",
                      salt="00" * 16, domain=DOMAIN)
    pub = KEY.public_key()
    return compute_inventory(RULES, Period(label=label, start=start, end=end),
                             {device: [LoggedReading(0, reading)]}, chain_id=1337,
                             registry="0x" + "cd" * 20, gateway=gateway, domain=DOMAIN,
                             suite=pub.suite, key_id=pub.key_id)


def test_quarterly_emissions_from_local_month_inventories() -> None:
    # Local (UTC+8) months: 2026-10 starts 2026-09-30T16:00Z, which is still Q4 locally.
    invs = [
        _inventory("86.1000.1/gw.a", "2026-10", "2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z",
                   "21000"),
        _inventory("86.1000.1/gw.a", "2026-11", "2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z",
                   "22000"),
        _inventory("86.1000.1/gw.b", "2026-Q4", "2026-09-30T16:00:00Z", "2026-12-31T16:00:00Z",
                   "60000"),
        _inventory("86.1000.1/gw.a", "2027-01", "2026-12-31T16:00:00Z", "2027-01-31T16:00:00Z",
                   "8000"),
    ]
    # kWh / 1000 x 0.5 tCO2/MWh: 10.5 + 11 + 30 in Q4, 4 in Q1.
    assert [i.totals.total for i in invs] == ["10.5", "11", "30", "4"]
    assert quarterly_emissions(invs) == {"2026-Q4": D("51.5"), "2027-Q1": D(4)}


def test_quarterly_emissions_refuses_overlaps_and_straddles() -> None:
    month = _inventory("86.1000.1/gw.a", "2026-10", "2026-09-30T16:00:00Z",
                       "2026-10-31T16:00:00Z", "1000")
    quarter = _inventory("86.1000.1/gw.a", "2026-Q4", "2026-09-30T16:00:00Z",
                         "2026-12-31T16:00:00Z", "3000")
    with pytest.raises(InvalidInputError, match="overlap"):
        quarterly_emissions([month, quarter])
    straddle = _inventory("86.1000.1/gw.a", "x", "2026-11-30T16:00:00Z", "2027-01-31T16:00:00Z",
                          "1000")
    with pytest.raises(InvalidInputError, match="spans quarters"):
        quarterly_emissions([straddle])
