"""The enterprise that owns an identifier: the registry's chain of ownership.

device -> site -> enterprise, gateway -> enterprise, reading -> device, inventory ->
gateway, report -> the enterprise it was built for (checked against the caller when
it was built), verification -> the enterprise of the inventory verified (from its
``verification_opened`` log record), loan -> the financed project's enterprise (its
``loan_project`` record). One query per kind for any number of identifiers,
so a batch of 2,000 readings costs one look-up, not 2,000.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Executable, select

from .._internal.db import devices, gateways, inventories, log_records, readings, sites
from ..errors import LedgerError
from ..ledger import Ledger
from .policy import Kind

__all__ = ["owners_of"]


_MARKET_RECORDS: dict[str, str] = {"dataset": "data_listing", "data_request": "data_request",
                                   "grant": "data_grant"}
"""Marketplace id kinds and the log record kind that names each; its owner is the
dataset's owner (a buyer reaches its grants through routes that check the grant)."""


def _query(kind: Kind, ids: Collection[str]) -> Executable:
    if kind == "site":
        return select(sites.c.id, sites.c.enterprise_id).where(sites.c.id.in_(ids))
    if kind == "gateway":
        return select(gateways.c.id, gateways.c.enterprise_id).where(gateways.c.id.in_(ids))
    if kind == "device":
        return (select(devices.c.id, sites.c.enterprise_id)
                .join(sites, sites.c.id == devices.c.site_id).where(devices.c.id.in_(ids)))
    if kind == "reading":
        return (select(readings.c.id, sites.c.enterprise_id)
                .join(devices, devices.c.id == readings.c.device_id)
                .join(sites, sites.c.id == devices.c.site_id).where(readings.c.id.in_(ids)))
    if kind == "inventory":
        return (select(inventories.c.id, gateways.c.enterprise_id)
                .join(gateways, gateways.c.id == inventories.c.gateway_id)
                .where(inventories.c.id.in_(ids)))
    if kind == "verification":
        return select(log_records.c.id, log_records.c.enterprise_id).where(
            log_records.c.id.in_(ids), log_records.c.kind == "verification_opened")
    if kind == "loan":
        return select(log_records.c.id, log_records.c.enterprise_id).where(
            log_records.c.id.in_(ids), log_records.c.kind == "loan_project")
    if kind in _MARKET_RECORDS:  # marketplace records are filed under the data owner
        return select(log_records.c.id, log_records.c.enterprise_id).where(
            log_records.c.id.in_(ids), log_records.c.kind == _MARKET_RECORDS[kind])
    raise ValueError(f"no owner query for {kind}")


def _report_owner(ledger: Ledger, report_id: str) -> str | None:
    from ..reports import load_report  # the reports module needs the chain's rule stack

    try:
        return load_report(ledger, report_id).enterprise.id
    except LedgerError:
        return None


def owners_of(ledger: Ledger, conn: Connection, kind: Kind,
              ids: Collection[str]) -> dict[str, str | None]:
    """Each of ``ids`` (of ``kind``) with its owning enterprise, ``None`` if unknown."""
    if kind == "enterprise":
        return {i: i for i in ids}
    if kind == "report":
        return {i: _report_owner(ledger, i) for i in ids}
    found: dict[str, str | None] = dict.fromkeys(ids)
    for chunk in _chunks(sorted(ids), 500):
        for row in conn.execute(_query(kind, chunk)):
            found[row[0]] = row[1]
    return found


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
