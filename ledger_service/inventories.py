"""Inventories at the ledger: check a gateway's signed inventory, store it, log it.

On receipt (:func:`submit`) the ledger trusts nothing the inventory says about itself:

1. it was signed for this deployment (chain, anchor contract, log);
2. the gateway key it names is registered for the gateway it names, valid now, and
   signed it (RFC 8785 bytes through ``carbon_protocol``);
3. every device of every line is registered behind that gateway;
4. the rule is this chain's ``RuleRegistry`` and the version named is in force on the
   whole period (else the contract's own error, e.g. ``version_not_yet_in_force``);
5. every leaf index claimed holds a reading of that line's device, measured inside the
   period, within the claimed sequence range; a leaf that is missing or holds
   something else is ``missing_readings``, and a reading of the device in the period
   that the ledger holds but the line leaves out is ``readings_omitted`` (a gateway
   cannot drop its high readings);
6. the inventory is recomputed from those readings and the on-chain rule; the first
   line and field that differ are named (``inventory_mismatch``).

Only then is it stored and its canonical form appended as a leaf of the Merkle log, so
the normal anchor loop anchors it and it gets an inclusion proof like any reading.
Resubmitting the same signed inventory returns the same receipt.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, or_, select, update

from carbon_protocol.errors import ProtocolError
from carbon_protocol.gateway_keys import GatewayKeyRevocation, revocation_record_id
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import (
    InventoryProof,
    ProvenReadings,
    SignedInventory,
    inventory_id,
    inventory_leaf_bytes,
    inventory_leaf_hash,
    verify_inventory_signature,
)
from carbon_protocol.models import (
    AnchorRef,
    PublicKeyHex,
    PublicKeyInfo,
    SignedReading,
    SuiteField,
    UtcTimestamp,
)
from carbon_protocol.suites import PublicKey
from carbon_rules.errors import RulesError
from carbon_rules.inventory import (
    InventoryMismatchError,
    LoggedReading,
    recompute_inventory,
    rule_for_period,
)
from carbon_rules.models import Methodology
from carbon_rules.registry_client import RuleRegistryClient

from ._internal.chain import ChainClient
from ._internal.clock import utc_text
from ._internal.db import anchors, devices, gateway_keys, gateways, inventories, readings
from .errors import (
    BadSignatureError,
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    UnknownKeyError,
    WrongDomainError,
)
from .models import KeyRevoke
from .registry import device_key_info

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = [
    "DeviceNotOfGatewayError",
    "GatewayKeyCreate",
    "GatewayKeyPublic",
    "InventoryMismatch",
    "InventoryReceipt",
    "InventoryRuleError",
    "MissingReadingsError",
    "NoRuleRegistryError",
    "ReadingsOmittedError",
    "StoredInventory",
    "add_gateway_key",
    "revoke_gateway_key",
    "anchor_covering",
    "association_key",
    "embedded_chain_with_rules",
    "get",
    "proof",
    "registry_client",
    "submit",
]


# -- errors ---------------------------------------------------------------------------


class DeviceNotOfGatewayError(LedgerError):
    """An inventory covers a device registered behind another gateway (or none)."""

    code = "device_not_of_gateway"
    http_status = 403


class NoRuleRegistryError(LedgerError):
    """This ledger's chain has no ``RuleRegistry``, or the inventory names another one."""

    code = "no_rule_registry"
    http_status = 422


class InventoryRuleError(LedgerError):
    """The rule refuses the inventory: a version not in force on the period, a measured
    factor outside its plausible range... ``code`` is the rules package's own code."""

    http_status = 422

    def __init__(self, cause: RulesError) -> None:
        super().__init__(str(cause), **cause.details)
        self.code = cause.code


class MissingReadingsError(LedgerError):
    """A claimed leaf is not in the log, or is not a reading of that line's device in
    the period and sequence range."""

    code = "missing_readings"
    http_status = 422


class ReadingsOmittedError(LedgerError):
    """The ledger holds readings of a device in the period that its line leaves out."""

    code = "readings_omitted"
    http_status = 422


class InventoryMismatch(LedgerError):
    """The recomputed inventory differs; ``details`` name the line and field."""

    code = "inventory_mismatch"
    http_status = 422


# -- API shapes -------------------------------------------------------------------------


class GatewayKeyCreate(BaseModel):
    """A gateway's inventory-signing public key."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    suite: SuiteField
    public_key: PublicKeyHex
    valid_from: UtcTimestamp | None = None


class GatewayKeyPublic(BaseModel):
    """A registered gateway key, as the API answers it."""

    model_config = ConfigDict(frozen=True)

    gateway: str
    suite: str
    public_key: str
    key_id: str
    valid_from: str
    revoked_at: str | None = None


class InventoryReceipt(BaseModel):
    """The ledger's answer for an accepted inventory."""

    model_config = ConfigDict(frozen=True)

    inventory_id: str
    gateway: IdentifierStr
    period: str
    methodology_id: str
    rule_version: int
    total: str
    """tCO2e."""
    leaf_index: int
    leaf_hash: str
    log_id: str


class StoredInventory(BaseModel):
    """An accepted inventory as stored, with its receipt."""

    model_config = ConfigDict(frozen=True)

    receipt: InventoryReceipt
    signed_inventory: SignedInventory
    received_at: str


# -- the chain's rules ----------------------------------------------------------------


def embedded_chain_with_rules(data_dir: Path, anchor_key: str) -> ChainClient:
    """The embedded chain with a ``RuleRegistry`` beside ``CarbonAnchor``.

    The registry is deployed, and the default methodology published, by an association
    key kept in ``data_dir`` (0600), in blocks dated before the methodology takes effect
    (:func:`carbon_rules.inventory_rules.embedded_rules_chain`); the anchor contract is
    then deployed by ``anchor_key`` as on a plain embedded chain (same address).
    """
    from carbon_rules.inventory_rules import embedded_rules_chain

    rules = embedded_rules_chain(association_key(data_dir))
    chain = ChainClient.embedded(private_key=anchor_key, w3=rules.w3)
    chain.rule_registry_address = rules.registry.address
    return chain


def association_key(data_dir: Path) -> str:
    """The embedded chain's association key (made on first use): it deploys the
    ``RuleRegistry`` and publishes the default methodology."""
    from .ledger import _write_private

    key_file = data_dir / "embedded_association_key.hex"
    if not key_file.exists():
        _write_private(key_file, secrets.token_hex(32).encode())
    return key_file.read_text().strip()


def registry_client(chain: ChainClient, rpc_url: str | None = None) -> RuleRegistryClient:
    """A read-only client of the chain's ``RuleRegistry``."""
    if chain.rule_registry_address is None:
        raise NoRuleRegistryError(
            "this ledger's chain has no RuleRegistry: open the embedded ledger with rules "
            "(`carbon-ledger serve` and the demo do) or use a deployment file written by "
            "`carbon-ledger devchain`")
    if rpc_url is not None:
        return RuleRegistryClient.connect(rpc_url, chain.rule_registry_address,
                                          expected_chain_id=chain.chain_id)
    return RuleRegistryClient(chain.w3, chain.rule_registry_address)


@contextmanager
def _rules_boundary() -> Iterator[None]:
    try:
        yield
    except InventoryMismatchError as exc:
        raise InventoryMismatch(str(exc), **exc.details) from exc
    except RulesError as exc:
        raise InventoryRuleError(exc) from exc


# -- gateway keys -----------------------------------------------------------------------


def add_gateway_key(conn: Connection, gateway_id: str, body: GatewayKeyCreate, *,
                    now: datetime | None = None) -> GatewayKeyPublic:
    """Register a gateway's inventory-signing key (idempotent for the same key)."""
    if conn.execute(select(gateways.c.id).where(gateways.c.id == gateway_id)).first() is None:
        raise NotFoundError(f"gateway {gateway_id} is not registered", id=gateway_id)
    try:
        key = PublicKey.from_hex(body.suite, body.public_key)
    except ProtocolError as exc:
        raise InvalidInputError(f"public key does not parse for suite {body.suite}: {exc}") from exc
    existing = conn.execute(select(gateway_keys).where(
        gateway_keys.c.key_id == key.key_id)).mappings().first()
    if existing is not None:
        if existing["gateway_id"] != gateway_id:
            raise ConflictError(f"key {key.key_id} is registered for gateway "
                                f"{existing['gateway_id']}", id=key.key_id)
        return _key_public(existing)
    row = {"key_id": key.key_id, "gateway_id": gateway_id, "suite": body.suite,
           "public_key": key.hex(), "valid_from": body.valid_from or utc_text(now),
           "revoked_at": None}
    conn.execute(gateway_keys.insert().values(**row))
    return _key_public(row)


def revoke_gateway_key(ledger: Ledger, gateway_id: str, key_id: str, body: KeyRevoke, *,
                       now: datetime | None = None) -> GatewayKeyPublic:
    """Revoke a gateway key from a time on: inventories it signed before stay valid, any
    received from then on are refused.

    The revocation, with its reason, is appended to the log (a ``gateway_key_revoked``
    record), so who revoked what and from when stays provable after the key row
    changes. Revoking twice keeps the earlier time; a later one changes and logs nothing.
    """
    from .log_records import append_record  # log_records builds on this module

    at = body.revoked_at or utc_text(now)
    with ledger.engine.begin() as conn:
        # The earlier time wins in the UPDATE itself, as for device keys.
        changed = conn.execute(
            update(gateway_keys)
            .where(gateway_keys.c.key_id == key_id, gateway_keys.c.gateway_id == gateway_id,
                   or_(gateway_keys.c.revoked_at.is_(None), gateway_keys.c.revoked_at > at))
            .values(revoked_at=at)).rowcount > 0
        row = conn.execute(
            select(gateway_keys, gateways.c.enterprise_id)
            .join(gateways, gateways.c.id == gateway_keys.c.gateway_id)
            .where(gateway_keys.c.key_id == key_id, gateway_keys.c.gateway_id == gateway_id)
        ).mappings().first()
    if row is None:
        raise NotFoundError(f"key {key_id} is not registered for gateway {gateway_id}",
                            id=key_id)
    revoked = _key_public(row)
    if changed:
        record = GatewayKeyRevocation(gateway=gateway_id, key_id=key_id,
                                      revoked_at=row["revoked_at"], reason=body.reason)
        append_record(ledger, kind="gateway_key_revoked",
                      record_id=revocation_record_id(record),
                      enterprise_id=row["enterprise_id"], document=record.model_dump(mode="json"))
    return revoked


def _key_public(row: Mapping[Any, Any]) -> GatewayKeyPublic:
    return GatewayKeyPublic(gateway=row["gateway_id"], suite=row["suite"],
                            public_key=row["public_key"], key_id=row["key_id"],
                            valid_from=row["valid_from"], revoked_at=row["revoked_at"])


def _check_signer(conn: Connection, signed: SignedInventory, now: str) -> None:
    inv = signed.inventory
    row = conn.execute(select(gateway_keys).where(
        gateway_keys.c.key_id == inv.key_id)).mappings().first()
    if row is None or row["gateway_id"] != inv.gateway:
        raise UnknownKeyError(f"key {inv.key_id} is not registered for gateway {inv.gateway}",
                              key_id=inv.key_id, gateway=inv.gateway)
    if row["valid_from"] > now or (row["revoked_at"] is not None and row["revoked_at"] <= now):
        from .errors import RevokedKeyError

        raise RevokedKeyError(f"gateway key {inv.key_id} is not valid at {now}",
                              key_id=inv.key_id, valid_from=row["valid_from"],
                              revoked_at=row["revoked_at"])
    try:
        verify_inventory_signature(signed, PublicKey.from_hex(row["suite"], row["public_key"]))
    except ProtocolError as exc:
        raise BadSignatureError(f"inventory signature does not verify under gateway key "
                                f"{inv.key_id}: {exc}", key_id=inv.key_id) from exc


def _check_devices(conn: Connection, signed: SignedInventory) -> None:
    inv = signed.inventory
    wanted = inv.devices()
    owners = {row.id: row.gateway_id for row in conn.execute(
        select(devices.c.id, devices.c.gateway_id).where(devices.c.id.in_(wanted)))}
    for device in wanted:
        if owners.get(device) != inv.gateway:
            raise DeviceNotOfGatewayError(
                f"device {device} is not registered behind gateway {inv.gateway}"
                + (f" (it is behind {owners[device]})" if owners.get(device) else
                   " (it is not registered)" if device not in owners else ""),
                device=device, gateway=inv.gateway)


def _held(conn: Connection, device: str, start: str, end: str) -> dict[int, Any]:
    """The readings of ``device`` the ledger holds for ``(start, end]``, by leaf index:
    one indexed query, however the device's leaves interleave with others' in the log."""
    return {int(row.leaf_index): row for row in conn.execute(
        select(readings.c.leaf_index, readings.c.seq, readings.c.leaf_data).where(and_(
            readings.c.device_id == device, readings.c.measured_at > start,
            readings.c.measured_at <= end)))}


def _why_not(conn: Connection, index: int, device: str, start: str, end: str) -> str:
    row = conn.execute(select(readings.c.device_id, readings.c.measured_at).where(
        readings.c.leaf_index == index)).first()
    if row is None:
        return "holds no reading"
    if row.device_id != device:
        return f"is a reading of {row.device_id}"
    return f"was measured at {row.measured_at}, outside {start}..{end}"


def _load_readings(conn: Connection, signed: SignedInventory) -> dict[str, list[LoggedReading]]:
    inv = signed.inventory
    start, end = inv.period.start, inv.period.end
    out: dict[str, list[LoggedReading]] = {}
    for line in inv.lines:
        rs = line.readings
        held = _held(conn, rs.device, start, end)
        claimed = rs.leaf_indices()
        absent = [i for i in claimed if i not in held]
        if absent:
            raise MissingReadingsError(
                f"line {line.line} ({rs.device}) claims leaf {absent[0]}, which "
                f"{_why_not(conn, absent[0], rs.device, start, end)}"
                + (f" ({len(absent)} claimed leaves are not its readings in "
                   f"{inv.period.label})" if len(absent) > 1 else ""),
                line=line.line, device=rs.device, missing=absent[:20])
        if len(held) != len(claimed):
            raise ReadingsOmittedError(
                f"line {line.line} ({rs.device}) uses {len(claimed)} readings, but the "
                f"ledger holds {len(held)} of that device in {inv.period.label}",
                line=line.line, device=rs.device, claimed=len(claimed), held=len(held))
        found: list[LoggedReading] = []
        for index in claimed:
            row = held[index]
            if not rs.first_seq <= row.seq <= rs.last_seq:
                raise MissingReadingsError(
                    f"line {line.line} ({rs.device}) claims leaf {index}, whose sequence "
                    f"{row.seq} is outside {rs.first_seq}..{rs.last_seq}", line=line.line,
                    device=rs.device, missing=[index])
            reading = SignedReading.model_validate_json(bytes(row.leaf_data)).reading
            found.append(LoggedReading(index, reading))
        out[rs.device] = found
    return out


def _receipt(row: Mapping[Any, Any], ledger: Ledger) -> InventoryReceipt:
    return InventoryReceipt(
        inventory_id=row["id"], gateway=row["gateway_id"], period=row["period_label"],
        methodology_id=row["methodology_id"], rule_version=int(row["rule_version"]),
        total=row["total"], leaf_index=int(row["leaf_index"]),
        leaf_hash=bytes(row["leaf_hash"]).hex(), log_id=ledger.settings.log_id)


def _existing(conn: Connection, ident: str) -> Mapping[Any, Any] | None:
    return conn.execute(select(inventories).where(inventories.c.id == ident)).mappings().first()


def submit(ledger: Ledger, signed: SignedInventory, methodology: Methodology, *,
           now: datetime | None = None) -> tuple[bool, InventoryReceipt]:
    """Check ``signed`` (module docstring, steps 1-6) against ``methodology`` as read
    from this ledger's chain, then store and log it. Returns ``(created, receipt)``;
    ``created`` is ``False`` for a resubmission of an inventory already held."""
    inv = signed.inventory
    leaf = inventory_leaf_hash(signed, ledger.settings.log_suite)
    ident = inventory_id(ledger.settings.prefix, leaf)
    with ledger.reader.connect() as conn:
        row = _existing(conn, ident)
        if row is not None:
            return False, _receipt(row, ledger)
        if inv.domain != ledger.domain:
            raise WrongDomainError(
                f"inventory was signed for {inv.domain.model_dump()}, this ledger is "
                f"{ledger.domain.model_dump()}", expected=ledger.domain.model_dump(),
                got=inv.domain.model_dump())
        when = utc_text(now)
        _check_signer(conn, signed, when)
        _check_devices(conn, signed)
        registry = ledger.chain.rule_registry_address
        if registry is None or (inv.rule.chain_id, inv.rule.registry) != (
                ledger.domain.chain_id, registry.lower()):
            raise NoRuleRegistryError(
                f"inventory names registry {inv.rule.registry} on chain {inv.rule.chain_id}; "
                f"this ledger reads rules from {registry} on chain {ledger.domain.chain_id}",
                expected=registry, got=inv.rule.registry)
        with _rules_boundary():
            rule_for_period(methodology, inv.period, inv.rule.version)
        logged = _load_readings(conn, signed)
        conn.rollback()
    with _rules_boundary():
        recompute_inventory(inv, methodology, logged)
    data = inventory_leaf_bytes(signed)

    def write(conn: Connection, index: int) -> bytes:
        conn.execute(inventories.insert().values(
            id=ident, gateway_id=inv.gateway, key_id=inv.key_id,
            period_label=inv.period.label, period_start=inv.period.start,
            period_end=inv.period.end, methodology_id=inv.rule.methodology_id,
            rule_version=inv.rule.version, total=inv.totals.total, leaf_index=index,
            leaf_hash=leaf, leaf_data=data, received_at=when))
        return leaf

    ledger.append_leaf(write, unless=lambda conn: _existing(conn, ident) is not None)
    with ledger.reader.connect() as conn:
        row = _existing(conn, ident)
    assert row is not None
    return True, _receipt(row, ledger)


def get(ledger: Ledger, ident: str) -> StoredInventory:
    """A stored inventory by id."""
    with ledger.reader.connect() as conn:
        row = _existing(conn, ident)
    if row is None:
        raise NotFoundError(f"inventory {ident} is not stored", id=ident)
    return StoredInventory(receipt=_receipt(row, ledger), received_at=row["received_at"],
                           signed_inventory=SignedInventory.model_validate_json(
                               bytes(row["leaf_data"])))


def _proven_readings(ledger: Ledger, signed: SignedInventory, size: int) -> ProvenReadings:
    inv = signed.inventory
    data: dict[int, bytes] = {}
    with ledger.reader.connect() as conn:
        for line in inv.lines:
            held = _held(conn, line.readings.device, inv.period.start, inv.period.end)
            data.update((i, bytes(held[i].leaf_data)) for i in line.readings.leaf_indices())
        indices = sorted(data)
        hashes = ledger.log.leaf_set_proof(conn, indices, size)
        used = [SignedReading.model_validate_json(data[i]) for i in indices]
        keys = [device_key_info(conn, k) for k in sorted({u.reading.key_id for u in used})]
    return ProvenReadings(indices=indices, proof=[x.hex() for x in hashes], readings=used,
                          device_keys=keys)


def anchor_covering(ledger: Ledger, index: int, what: str) -> AnchorRef:
    """The first final anchor whose tree holds leaf ``index`` (``what`` names the leaf
    in the error when none does yet)."""
    with ledger.reader.connect() as conn:
        anchor = conn.execute(
            select(anchors).where(anchors.c.status == "final", anchors.c.tree_size > index)
            .order_by(anchors.c.tree_size).limit(1)).mappings().first()
    if anchor is None:
        raise NotFoundError(f"{what} is not yet covered by a final anchor; "
                            "try again after the next anchor", leaf_index=index)
    from carbon_protocol.chain_view import log_key as log_key_of

    return AnchorRef(
        chain_id=ledger.domain.chain_id, contract=ledger.domain.contract,
        log_key=log_key_of(ledger.settings.log_id).hex(), tree_size=int(anchor["tree_size"]),
        root_hash=bytes(anchor["root_hash"]).hex(), tx_hash=anchor["tx_hash"],
        block_number=anchor["block_number"], block_hash=anchor["block_hash"],
        block_timestamp=anchor["block_timestamp"], submitter=anchor["submitter"])


def proof(ledger: Ledger, ident: str, *, with_readings: bool = False) -> InventoryProof:
    """The inventory's proof: its leaf, inclusion in the first final anchored tree head
    covering it, the gateway key, the log key and the anchor; with ``with_readings``,
    every reading it used and their leaf-set proof against the same tree head."""
    stored = get(ledger, ident)
    index = stored.receipt.leaf_index
    anchor = anchor_covering(ledger, index, f"inventory {ident}")
    with ledger.reader.connect() as conn:
        key = conn.execute(select(gateway_keys).where(
            gateway_keys.c.key_id == stored.signed_inventory.inventory.key_id)).mappings().one()
    size = anchor.tree_size
    path = ledger.inclusion_proof(index, size)
    sth = ledger.tree_head(size)
    assert sth is not None
    return InventoryProof(
        inventory_id=ident, signed_inventory=stored.signed_inventory,
        gateway_key=PublicKeyInfo(suite=key["suite"], public_key=key["public_key"],
                                  key_id=key["key_id"]),
        leaf_index=index, leaf_hash=stored.receipt.leaf_hash,
        inclusion_proof=[p.hex() for p in path], signed_tree_head=sth,
        log_key=ledger.log_key_info(), anchor=anchor,
        readings=_proven_readings(ledger, stored.signed_inventory, size)
        if with_readings else None)
