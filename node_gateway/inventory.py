"""Inventories at the gateway: compute from the readings it signed, sign, submit.

The gateway holds every reading it signed, and for each one the ledger acknowledged,
the receipt naming its leaf in the ledger's Merkle log. An inventory for a period is
computed from those readings (:func:`carbon_rules.inventory.compute_inventory`) with the
methodology version in force on the period, read from the ``RuleRegistry`` on chain
(:class:`~carbon_rules.registry_client.RuleRegistryClient`) or, for a gateway that cannot
reach the chain, relayed by the ledger with its parameters hash checked here. It is
signed with the gateway's own key (kept in the keystore under the gateway's identifier,
registered with the ledger once) and submitted; the ledger recomputes it and refuses
it unless every number agrees.

A reading of the period that the ledger has not acknowledged yet has no leaf index,
so the inventory would be incomplete: :class:`InventoryNotReadyError` says to flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from carbon_protocol.errors import ProtocolError
from carbon_protocol.inventory import Period, SignedInventory, sign_inventory
from carbon_protocol.suites import PublicKey
from carbon_rules.errors import RulesError
from carbon_rules.inventory import (
    LoggedReading,
    UnsupportedSourceError,
    compute_inventory,
    source_of,
)
from carbon_rules.inventory_rules import methodology_from_json
from carbon_rules.models import Methodology
from carbon_rules.registry_client import RuleRegistryClient

from .errors import ConfigurationError, GatewayError, LedgerProtocolError
from .gateway import Gateway

__all__ = [
    "InventoryNotReadyError",
    "InventoryRefusedError",
    "InventoryRun",
    "Rules",
    "compute",
    "ensure_gateway_key",
    "fetch_rules",
    "logged_readings",
    "submit",
]


class InventoryNotReadyError(GatewayError):
    """Readings of the period are still waiting for the ledger's acknowledgement."""

    code = "inventory_not_ready"


class InventoryRefusedError(GatewayError):
    """The rules refuse the inventory here, or the ledger refused it (its typed error)."""

    code = "inventory_refused"


@dataclass(frozen=True)
class Rules:
    """A methodology and the registry (chain id, address) it was read from."""

    methodology: Methodology
    chain_id: int
    registry: str


@dataclass
class InventoryRun:
    """What :func:`compute` made: the signed inventory and the devices left out."""

    signed: SignedInventory
    skipped: dict[str, str] = field(default_factory=dict)
    """Device -> why it has no line (no emission source for its unit, no readings)."""


def _gateway_id(gateway: Gateway) -> str:
    if gateway.gateway_id is None:
        raise ConfigurationError("this gateway has no identifier: register its organisation "
                                 "or set GATEWAY_GATEWAY_ID")
    return gateway.gateway_id


def ensure_gateway_key(gateway: Gateway) -> PublicKey:
    """The gateway's inventory-signing key: created in its keystore on first use and
    registered with the ledger (again harmlessly if it already is)."""
    gateway_id = _gateway_id(gateway)
    if not gateway.keystore.exists(gateway_id):
        gateway.keystore.create(gateway_id, gateway.suite)
    pub = gateway.keystore.public(gateway_id)
    resp = gateway.client.call("POST", f"/v1/gateways/{gateway_id}/keys",
                               {"suite": pub.suite, "public_key": pub.hex()})
    if resp.status not in (200, 201):
        raise InventoryRefusedError(f"ledger refused gateway key {pub.key_id}: HTTP "
                                    f"{resp.status} {resp.body}", status=resp.status)
    return pub


def fetch_rules(gateway: Gateway, methodology_id: str,
                registry: RuleRegistryClient | None = None) -> Rules:
    """``methodology_id`` from the registry on chain, or relayed by the ledger when no
    registry client is given (each version checked against its parameters hash)."""
    try:
        if registry is not None:
            return Rules(registry.methodology(methodology_id), int(registry.w3.eth.chain_id),
                         registry.address.lower())
        resp = gateway.client.call("GET", f"/v1/rules/{methodology_id}")
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise LedgerProtocolError(f"GET /v1/rules/{methodology_id}: HTTP {resp.status} "
                                      f"{resp.body}", status=resp.status)
        body: dict[str, Any] = resp.body
        return Rules(methodology_from_json(body["methodology"]), int(body["chain_id"]),
                     str(body["registry"]))
    except RulesError as exc:
        raise InventoryRefusedError(f"cannot read {methodology_id}: {exc}",
                                    code=exc.code, **exc.details) from exc


def logged_readings(gateway: Gateway, devices: Sequence[str], period: Period
                    ) -> dict[str, list[LoggedReading]]:
    """Each device's readings in ``period`` (interval ending in ``(start, end]``) with
    the leaf index the ledger's receipt gave them."""
    out: dict[str, list[LoggedReading]] = {}
    for device in devices:
        chosen = []
        waiting = 0
        for entry in gateway.outbox.entries(device):
            # RFC 3339 UTC text with whole seconds sorts as time does.
            if not period.start < entry.measured_at <= period.end:
                continue
            if entry.state != "acked" or entry.receipt is None:
                waiting += 1
                continue
            chosen.append(LoggedReading(int(entry.receipt["leaf_index"]),
                                        entry.signed_reading().reading))
        if waiting:
            raise InventoryNotReadyError(
                f"{waiting} readings of {device} in {period.label} have no ledger receipt "
                "yet (pending or rejected); flush the outbox first",
                device=device, waiting=waiting)
        out[device] = chosen
    return out


def compute(gateway: Gateway, period: Period, rules: Rules, *,
            devices: Sequence[str] | None = None,
            measured: dict[str, dict[str, int]] | None = None) -> InventoryRun:
    """Compute and sign the inventory of ``devices`` (default: every device of this
    gateway with an emission source and readings in the period) for ``period``."""
    gateway_id = _gateway_id(gateway)
    domain = gateway.outbox.domain()
    if domain is None:
        raise ConfigurationError("this gateway has no ledger domain yet: provision first")
    skipped: dict[str, str] = {}
    chosen = list(devices) if devices is not None else []
    if devices is None:
        for row in gateway.outbox.devices():
            try:
                source_of(row.quantity, row.unit)
            except UnsupportedSourceError as exc:
                skipped[row.device] = str(exc)
                continue
            chosen.append(row.device)
    by_device = logged_readings(gateway, chosen, period)
    if devices is None:
        for device in [d for d, rs in by_device.items() if not rs]:
            skipped[device] = f"no readings in {period.label}"
            del by_device[device]
    if not gateway.keystore.exists(gateway_id):
        raise ConfigurationError(f"gateway {gateway_id} has no inventory key: register it "
                                 "first (ensure_gateway_key)")
    key = gateway.keystore.load(gateway_id)
    pub = key.public_key()
    try:
        inventory = compute_inventory(
            rules.methodology, period, by_device, chain_id=rules.chain_id,
            registry=rules.registry, gateway=gateway_id, domain=domain, suite=pub.suite,
            key_id=pub.key_id, measured=measured)
        return InventoryRun(sign_inventory(inventory, key), skipped)
    except RulesError as exc:
        raise InventoryRefusedError(str(exc), code=exc.code, **exc.details) from exc
    except ProtocolError as exc:
        raise InventoryRefusedError(str(exc), code=exc.code) from exc


def submit(gateway: Gateway, signed: SignedInventory) -> dict[str, Any]:
    """Submit to the ledger; its receipt, or :class:`InventoryRefusedError` carrying the
    ledger's typed problem (``code``, and e.g. the line and field that differ)."""
    resp = gateway.client.call("POST", "/v1/inventories", signed.model_dump(mode="json"))
    if resp.status in (200, 201) and isinstance(resp.body, dict):
        return resp.body
    problem = resp.body if isinstance(resp.body, dict) else {}
    raise InventoryRefusedError(
        f"ledger refused the inventory: {resp.status} {problem.get('code')}: "
        f"{problem.get('message')}", status=resp.status, problem=problem)
