"""Routes for inventories: submit one signed at a gateway, read it back, prove it; and
the rules inventories are computed with (gateway keys, the chain's methodology)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from carbon_protocol.inventory import InventoryProof, SignedInventory
from carbon_rules.inventory_rules import methodology_to_json

from .. import inventories
from ..auth import Role, access, body, path, public
from ..inventories import GatewayKeyCreate, GatewayKeyPublic, InventoryReceipt, StoredInventory
from ..models import KeyRevoke
from .deps import LedgerDep

router = APIRouter(prefix="/v1", tags=["inventories"])


@router.post("/inventories", status_code=201, response_model=InventoryReceipt)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[body("inventory.gateway", "gateway")])
def submit_inventory(body: SignedInventory, ledger: LedgerDep, response: Response) -> Any:
    """Check, recompute, store and log an inventory: 201 with a receipt, 200 for the same
    inventory again, or a typed 4xx error (which line differs, which readings are
    missing, which rule is not in force) with nothing stored."""
    created, receipt = ledger.submit_inventory(body)
    if not created:
        response.status_code = 200
    return receipt


@router.get("/inventories/{inventory_id:path}/proof", response_model=InventoryProof,
            response_model_exclude_none=True)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE, Role.GATEWAY,
        owners=[path("inventory_id", "inventory")])
def inventory_proof(inventory_id: str, ledger: LedgerDep,
                    readings: bool = Query(False, description="include every reading used "
                                           "and their leaf-set proof")) -> Any:
    """The inventory's proof against the first final anchor covering it."""
    return ledger.inventory_proof(inventory_id, with_readings=readings)


@router.get("/inventories/{inventory_id:path}", response_model=StoredInventory)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE, Role.GATEWAY,
        owners=[path("inventory_id", "inventory")])
def get_inventory(inventory_id: str, ledger: LedgerDep) -> Any:
    """A stored inventory with its receipt."""
    return ledger.inventory(inventory_id)


@router.post("/gateways/{gateway_id:path}/keys", status_code=201,
             response_model=GatewayKeyPublic)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[path("gateway_id", "gateway")])
def add_gateway_key(gateway_id: str, body: GatewayKeyCreate, ledger: LedgerDep) -> Any:
    """Register the key a gateway signs its inventories with."""
    return ledger.call(inventories.add_gateway_key, gateway_id, body)


@router.post("/gateways/{gateway_id:path}/keys/{key_id}/revoke", response_model=GatewayKeyPublic)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[path("gateway_id", "gateway")])
def revoke_gateway_key(gateway_id: str, key_id: str, body: KeyRevoke, ledger: LedgerDep) -> Any:
    """Revoke a gateway's inventory-signing key from ``revoked_at`` (default now): an
    inventory it signs from then on is refused as ``revoked_key``; the revocation and
    its reason are logged (:func:`ledger_service.inventories.revoke_gateway_key`)."""
    return inventories.revoke_gateway_key(ledger, gateway_id, key_id, body)


@router.get("/rules/{methodology_id}")
@public("a copy of the RuleRegistry, which the chain publishes to everyone")
def methodology(methodology_id: str, ledger: LedgerDep) -> Any:
    """Every version of a methodology as this ledger's chain publishes it, with the
    registry's address: for a gateway without its own connection to the chain (it
    checks each version's parameters hash; a gateway that can reach the chain should
    read the registry itself)."""
    rules = ledger.rules()
    return {"chain_id": ledger.domain.chain_id, "registry": rules.address.lower(),
            "methodology": methodology_to_json(ledger.methodology(methodology_id))}
