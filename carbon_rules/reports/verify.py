"""Check a report as a stranger: rebuild it from the inventories it names and compare.

A report is a pure function of its inputs (:func:`~.structure.build_report`), and all
but the inventories are inside it. So whoever holds the report and the inventories'
proofs (``carbon-ledger inventory proof``, each checked against the chain with
:func:`carbon_rules.inventory_verify.verify_inventory`) can rebuild it and must get the
same bytes, hence the same hash: nothing in the report was edited, left out or added.
When it differs, :class:`ReportMismatchError` names the first section that does.

A quota the report says the regulator issued on chain is checked against the
``QuotaRegistry`` too, when a client of it is given: that revision must be there with
the same allocation and document (a later adjustment does not make an older report
wrong; it was reconciled against the quota then in force).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from carbon_protocol.inventory import InventoryProof

from ..errors import ReportError
from ..fixed_point import to_decimal
from ..quotas_client import ChainQuota
from .structure import InventoryReport, LoggedInventory, ReportInput, build_report, report_bytes

__all__ = ["QuotaHistorySource", "ReportMismatchError", "logged_from_proof", "verify_report"]


class QuotaHistorySource(Protocol):
    """What the check needs of the chain (a ``QuotaRegistryClient``)."""

    def history(self, enterprise: str, year: int) -> tuple[ChainQuota, ...]: ...


class ReportMismatchError(ReportError):
    """The report is not what its inventories and stated inputs rebuild to."""

    code = "report_mismatch"


def logged_from_proof(proof: InventoryProof) -> LoggedInventory:
    """The inventory of an inventory proof, with its leaf and anchor."""
    return LoggedInventory(id=proof.inventory_id, leaf_index=proof.leaf_index,
                           anchor=proof.anchor, inventory=proof.signed_inventory.inventory)


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return key
    return "(bytes)"


def verify_report(report: InventoryReport, inventories: Sequence[LoggedInventory], *,
                  quotas: QuotaHistorySource | None = None) -> None:
    """Raise :class:`ReportMismatchError` unless ``inventories`` rebuild ``report``
    exactly (and, with ``quotas``, its on-chain quota is the registry's)."""
    named = {a.inventory for a in report.anchors}
    given = {i.id for i in inventories}
    if named != given:
        raise ReportMismatchError(
            "the inventories given are not the ones the report names: "
            f"missing {sorted(named - given)}, extra {sorted(given - named)}",
            missing=sorted(named - given), extra=sorted(given - named))
    rebuilt = build_report(ReportInput(
        enterprise=report.enterprise, boundary=report.boundary, period=report.reporting_period,
        inventories=list(inventories), quota=report.quota, offsets=report.offsets,
        prepared_by=report.prepared_by, proof_base=report.proof_base))
    if report_bytes(rebuilt) != report_bytes(report):
        section = _first_difference(report.model_dump(mode="json"),
                                    rebuilt.model_dump(mode="json"))
        raise ReportMismatchError(f"section {section!r} differs from its rebuild from the "
                                  "inventories", section=section)
    stated = None if report.quota is None else report.quota.quota
    if quotas is not None and stated is not None and stated.chain is not None:
        revisions = {q.revision: q for q in quotas.history(stated.enterprise, stated.year)}
        held = revisions.get(stated.chain.revision)
        if held is None or (held.allocation, held.document) != (stated.allocation_fixed,
                                                                stated.chain.document):
            raise ReportMismatchError(
                f"the report states quota revision {stated.chain.revision} of "
                f"{stated.allocation} t ({stated.chain.document}); the registry holds "
                + ("no such revision" if held is None else
                   f"{to_decimal(held.allocation)} t ({held.document})"),
                section="quota", revision=stated.chain.revision)
