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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eth_utils.address import to_checksum_address
from pydantic import ValidationError

from carbon_protocol.canonical import canonical_json
from carbon_protocol.evidence import EvidenceCheckError, InventoryItem, MethodologyDoc
from carbon_protocol.inventory import Inventory
from carbon_protocol.models import AnchorRef, Reading

from .errors import RulesError
from .inventory import LoggedReading, recompute_inventory
from .inventory_rules import methodology_from_json, methodology_to_json
from .models import Methodology
from .registry_client import RuleRegistryClient
from .reports import InventoryReport, LoggedInventory, report_bytes
from .reports.verify import verify_report

__all__ = ["RegistryAt", "RulesRecomputer", "registry_over_rpc"]


def _refused(exc: RulesError) -> EvidenceCheckError:
    details = exc.diagnostics().get("details", {})
    return EvidenceCheckError(str(exc), expected=details.get("recomputed"),
                              found=details.get("claimed"))


RegistryAt = Callable[[int, str], RuleRegistryClient]
"""A read-only client of the ``RuleRegistry`` at ``(chain_id, address)``."""


def registry_over_rpc(rpc_url: str) -> RegistryAt:
    """Clients over one JSON-RPC endpoint; the chain id must be the one named (and the
    code at the address this build's ``RuleRegistry``, :meth:`RuleRegistryClient.connect`)."""
    def at(chain_id: int, address: str) -> RuleRegistryClient:
        return RuleRegistryClient.connect(rpc_url, to_checksum_address(address),
                                          expected_chain_id=chain_id)
    return at


class RulesRecomputer:
    """:class:`carbon_protocol.evidence.Recomputer` with this package's rules.

    With ``registry``, the carried methodology is also compared with the registry the
    inventories name: every version it carries must be the one published there (a
    later version published since the export is no difference)."""

    def __init__(self, registry: RegistryAt | None = None) -> None:
        self._methodologies: dict[str, Methodology] = {}
        self._registry = registry

    def _methodology(self, doc: MethodologyDoc) -> Methodology:
        cached = self._methodologies.get(doc.id)
        if cached is None:
            try:
                cached = methodology_from_json(doc.model_dump(mode="json"))
            except RulesError as exc:
                raise _refused(exc) from exc
            self._methodologies[doc.id] = cached
        return cached

    def rule(self, methodology: MethodologyDoc, registries: Sequence[tuple[int, str]]) -> None:
        """Rebuild the methodology: each version's factors must hash to its parameters
        hash (:class:`~carbon_rules.models.MethodologyVersion` checks it); with a
        registry, each version must be the one published on chain."""
        self._methodology(methodology)
        if self._registry is None:
            return
        carried = methodology.model_dump(mode="json")["versions"]
        for chain_id, address in registries:
            try:
                published = methodology_to_json(
                    self._registry(chain_id, address).methodology(methodology.id))["versions"]
            except RulesError as exc:
                raise _refused(exc) from exc
            for version in carried:
                number = version["version"]
                held = published[number - 1] if number <= len(published) else None
                if held != version:
                    raise EvidenceCheckError(
                        f"{methodology.id} v{number} differs from the RuleRegistry's at "
                        f"{address} on chain {chain_id}",
                        expected=None if held is None else held["parameters_hash"],
                        found=version["parameters_hash"])

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
