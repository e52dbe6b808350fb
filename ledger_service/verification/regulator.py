"""The regulator's view: every registered enterprise, where its data stands.

One answer per enterprise: its inventories (period, total, leaf), its open
verifications, the latest verdict per period, and the log's last anchor, so a
regulator sees at a glance which months are verified, which are under verification
and which nobody has looked at.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from carbon_protocol.inventory import Period

from .._internal.db import enterprises, gateways, inventories
from ..ledger import Ledger
from ..log_records import list_records
from ..models import AnchorPublic
from .workflow import ATTESTATION, OPENED

__all__ = ["EnterpriseStatus", "InventorySummary", "PeriodVerdict", "RegulatorStatus",
           "regulator_status"]


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class InventorySummary(_Response):
    inventory_id: str
    gateway: str
    period: Period
    total: str
    """tCO2e."""
    leaf_index: int


class PeriodVerdict(_Response):
    """The latest attestation (in log order) of one period."""

    period: Period
    verdict: str
    verification_id: str
    inventory_id: str
    record_id: str


class EnterpriseStatus(_Response):
    enterprise: str
    name: str
    inventories: list[InventorySummary]
    open_verifications: list[str]
    verdicts: list[PeriodVerdict]


class RegulatorStatus(_Response):
    tree_size: int
    last_anchor: AnchorPublic | None
    enterprises: list[EnterpriseStatus]


def _enterprise(ledger: Ledger, ident: str, name: str,
                invs: list[InventorySummary]) -> EnterpriseStatus:
    attested: dict[str, PeriodVerdict] = {}
    closed = set()
    for rec in list_records(ledger, enterprise_id=ident, kinds=(ATTESTATION,)):
        att = rec.document["attestation"]
        closed.add(att["verification_id"])
        period = Period.model_validate(att["period"])
        attested[f"{period.start}/{period.end}"] = PeriodVerdict(
            period=period, verdict=att["verdict"], verification_id=att["verification_id"],
            inventory_id=att["inventory_id"], record_id=rec.record_id)
    opened = [r.record_id for r in list_records(ledger, enterprise_id=ident, kinds=(OPENED,))
              if r.record_id not in closed]
    verdicts = sorted(attested.values(), key=lambda v: (v.period.start, v.period.end))
    return EnterpriseStatus(enterprise=ident, name=name, inventories=invs,
                            open_verifications=opened, verdicts=verdicts)


def regulator_status(ledger: Ledger) -> RegulatorStatus:
    """Every registered enterprise with its inventories, open verifications and latest
    verdict per period, and the last anchor of the log."""
    with ledger.reader.connect() as conn:
        names = {r.id: r.name for r in conn.execute(
            select(enterprises.c.id, enterprises.c.name).order_by(enterprises.c.id))}
        by_enterprise: dict[str, list[InventorySummary]] = {i: [] for i in names}
        for r in conn.execute(
                select(inventories.c.id, inventories.c.gateway_id, inventories.c.period_label,
                       inventories.c.period_start, inventories.c.period_end,
                       inventories.c.total, inventories.c.leaf_index, gateways.c.enterprise_id)
                .join(gateways, gateways.c.id == inventories.c.gateway_id)
                .order_by(inventories.c.leaf_index)).mappings():
            by_enterprise.setdefault(r["enterprise_id"], []).append(InventorySummary(
                inventory_id=r["id"], gateway=r["gateway_id"], total=r["total"],
                period=Period(label=r["period_label"], start=r["period_start"],
                              end=r["period_end"]), leaf_index=int(r["leaf_index"])))
    anchors = ledger.anchors()
    return RegulatorStatus(
        tree_size=ledger.tree_size(), last_anchor=anchors[-1] if anchors else None,
        enterprises=[_enterprise(ledger, i, names[i], by_enterprise[i]) for i in names])
