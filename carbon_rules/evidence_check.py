"""The accounting half of an evidence bundle's check: rules, inventories, reports.

:func:`carbon_protocol.evidence.verify_evidence` proves that every object in a bundle is
what the log holds and the chain anchors; it cannot say whether the numbers follow from
the readings, because the rules live here (``carbon_rules`` imports the protocol, never
the other way round). :class:`RulesRecomputer` is the piece it is handed for that, and
it uses the very functions the ledger and the stranger-side inventory verifier use:

* a methodology document is rebuilt with :func:`~carbon_rules.inventory_rules.
  methodology_from_json`, which refuses factors that do not hash to the published
  parameters hash the inventory names (and the registry on chain holds);
* each inventory is recomputed offline from its proven readings
  (:func:`~carbon_rules.inventory.recompute_inventory`): the first line and field that
  differ are named;
* each report is rebuilt from the inventories it names and compared byte for byte
  (:func:`~carbon_rules.reports.verify.verify_report`).

Every rule error leaves as :class:`~carbon_protocol.evidence.EvidenceCheckError`, so the
verifier reports it as the failing step with the claimed and recomputed values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from carbon_protocol.canonical import canonical_json
from carbon_protocol.evidence import EvidenceCheckError, InventoryItem, MethodologyDoc
from carbon_protocol.inventory import Inventory
from carbon_protocol.models import AnchorRef, Reading

from .errors import RulesError
from .inventory import LoggedReading, recompute_inventory
from .inventory_rules import methodology_from_json
from .models import Methodology
from .reports import InventoryReport, LoggedInventory, report_bytes
from .reports.verify import verify_report

__all__ = ["RulesRecomputer"]


def _refused(exc: RulesError) -> EvidenceCheckError:
    details = exc.diagnostics().get("details", {})
    return EvidenceCheckError(str(exc), expected=details.get("recomputed"),
                              found=details.get("claimed"))


class RulesRecomputer:
    """:class:`carbon_protocol.evidence.Recomputer` with this package's rules."""

    def __init__(self) -> None:
        self._methodologies: dict[str, Methodology] = {}

    def _methodology(self, doc: MethodologyDoc) -> Methodology:
        cached = self._methodologies.get(doc.id)
        if cached is None:
            try:
                cached = methodology_from_json(doc.model_dump(mode="json"))
            except RulesError as exc:
                raise _refused(exc) from exc
            self._methodologies[doc.id] = cached
        return cached

    def rule(self, methodology: MethodologyDoc) -> None:
        """Rebuild the methodology: each version's factors must hash to its parameters
        hash (:class:`~carbon_rules.models.MethodologyVersion` checks it)."""
        self._methodology(methodology)

    def inventory(self, inventory: Inventory, methodology: MethodologyDoc,
                  readings: Mapping[str, Sequence[tuple[int, Reading]]]) -> None:
        """Recompute ``inventory`` offline and raise at the first field that differs."""
        logged = {device: [LoggedReading(i, r) for i, r in items]
                  for device, items in readings.items()}
        try:
            recompute_inventory(inventory, self._methodology(methodology), logged)
        except RulesError as exc:
            raise _refused(exc) from exc

    def report(self, report: Mapping[str, Any],
               inventories: Sequence[tuple[InventoryItem, AnchorRef | None]]) -> None:
        """Rebuild ``report`` from its inventories and compare the bytes."""
        try:
            parsed = InventoryReport.model_validate(dict(report))
        except ValidationError as exc:
            raise EvidenceCheckError(
                f"not an inventory report: {exc.errors()[0]['msg']}") from None
        if report_bytes(parsed) != canonical_json(dict(report)):
            raise EvidenceCheckError("the report does not survive a round trip through its "
                                     "model (unknown or non-canonical fields)")
        logged = [LoggedInventory(id=item.inventory_id, leaf_index=item.leaf_index,
                                  anchor=anchor, inventory=item.signed_inventory.inventory)
                  for item, anchor in inventories]
        try:
            verify_report(parsed, logged)
        except RulesError as exc:
            raise _refused(exc) from exc
