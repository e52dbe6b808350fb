"""Who and what may write to the ledger: enterprises, sites, gateways, devices, keys.

Device keys carry a validity period. Revocation is time-aware: a key revoked at T
stops readings *received* from T on, while readings anchored before T keep verifying
(the verifier compares the anchor's block time with the revocation time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from carbon_protocol.errors import ProtocolError
from carbon_protocol.models import QUANTITY_UNITS, DeviceKeyInfo
from carbon_protocol.suites import PublicKey

from ._internal.clock import utc_text
from ._internal.db import device_keys, devices, enterprises, gateways, sites
from .errors import ConflictError, InvalidInputError, NotFoundError
from .models import (
    DeviceCreate,
    DeviceKeyCreate,
    DevicePublic,
    EnterpriseCreate,
    EnterprisePublic,
    GatewayCreate,
    GatewayPublic,
    KeyRevoke,
    SiteCreate,
    SitePublic,
)

__all__ = [
    "create_enterprise", "create_site", "create_gateway", "create_device", "get_device",
    "add_device_key", "revoke_device_key", "device_key_info", "get_enterprise",
]


def _insert(conn: Connection, table: object, values: Mapping[str, object], what: str) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(table), values)  # type: ignore[arg-type]
    except IntegrityError as exc:
        raise ConflictError(f"{what} {values.get('id') or values.get('key_id')} already exists "
                            "or refers to something unknown", error=str(exc.orig)) from exc


def _require(conn: Connection, table: object, ident: str, what: str) -> None:
    if conn.execute(select(table.c.id).where(table.c.id == ident)).first() is None:  # type: ignore[attr-defined]
        raise NotFoundError(f"{what} {ident} is not registered", id=ident)


def create_enterprise(conn: Connection, body: EnterpriseCreate) -> EnterprisePublic:
    """Register an enterprise (控排企业)."""
    row = {"id": body.id, "name": body.name, "created_at": utc_text()}
    _insert(conn, enterprises, row, "enterprise")
    return EnterprisePublic(**row)


def get_enterprise(conn: Connection, ident: str) -> EnterprisePublic:
    """Look up an enterprise."""
    row = conn.execute(select(enterprises).where(enterprises.c.id == ident)).mappings().first()
    if row is None:
        raise NotFoundError(f"enterprise {ident} is not registered", id=ident)
    return EnterprisePublic(**row)


def create_site(conn: Connection, body: SiteCreate) -> SitePublic:
    """Register a site of an enterprise."""
    _require(conn, enterprises, body.enterprise_id, "enterprise")
    row = {**body.model_dump(), "created_at": utc_text()}
    _insert(conn, sites, row, "site")
    return SitePublic(**row)


def create_gateway(conn: Connection, body: GatewayCreate) -> GatewayPublic:
    """Register an edge gateway of an enterprise."""
    _require(conn, enterprises, body.enterprise_id, "enterprise")
    row = {**body.model_dump(), "created_at": utc_text()}
    _insert(conn, gateways, row, "gateway")
    return GatewayPublic(**row)


def create_device(conn: Connection, body: DeviceCreate) -> DevicePublic:
    """Register a meter at a site, optionally behind a gateway."""
    if body.unit not in QUANTITY_UNITS[body.quantity]:
        allowed = ", ".join(sorted(QUANTITY_UNITS[body.quantity]))
        raise InvalidInputError(f"unit {body.unit!r} is not valid for {body.quantity} "
                                f"(use {allowed})")
    _require(conn, sites, body.site_id, "site")
    if body.gateway_id is not None:
        _require(conn, gateways, body.gateway_id, "gateway")
    row = {
        **body.model_dump(exclude={"calibration"}),
        "calibration": json.dumps(body.calibration, sort_keys=True),
        "created_at": utc_text(),
        "last_seq": 0,
    }
    _insert(conn, devices, row, "device")
    return get_device(conn, body.id)


def get_device(conn: Connection, ident: str) -> DevicePublic:
    """A device with all its keys, current and past."""
    row = conn.execute(select(devices).where(devices.c.id == ident)).mappings().first()
    if row is None:
        raise NotFoundError(f"device {ident} is not registered", id=ident)
    keys = conn.execute(
        select(device_keys).where(device_keys.c.device_id == ident)
        .order_by(device_keys.c.valid_from)
    ).mappings().all()
    return DevicePublic(
        **{**row, "calibration": json.loads(row["calibration"])},
        keys=[_key_info(k) for k in keys],
    )


def _key_info(row: object) -> DeviceKeyInfo:
    r = dict(row)  # type: ignore[call-overload]
    return DeviceKeyInfo(
        suite=r["suite"], public_key=r["public_key"], key_id=r["key_id"],
        device=r["device_id"], valid_from=r["valid_from"], revoked_at=r["revoked_at"],
    )


def add_device_key(
    conn: Connection, device_id: str, body: DeviceKeyCreate, *, now: datetime | None = None
) -> DeviceKeyInfo:
    """Register a public key for a device (first key or a rotation)."""
    _require(conn, devices, device_id, "device")
    try:
        key = PublicKey.from_hex(body.suite, body.public_key)
    except ProtocolError as exc:
        raise InvalidInputError(f"public key does not parse for suite {body.suite}: {exc}") from exc
    row = {
        "key_id": key.key_id, "device_id": device_id, "suite": body.suite,
        "public_key": key.hex(), "valid_from": body.valid_from or utc_text(now),
        "revoked_at": None, "revocation_reason": None,
    }
    _insert(conn, device_keys, row, "key")
    return _key_info(row)


def revoke_device_key(
    conn: Connection, device_id: str, key_id: str, body: KeyRevoke, *, now: datetime | None = None
) -> DeviceKeyInfo:
    """Revoke a device key from a time on; revoking twice keeps the earlier time."""
    row = conn.execute(
        select(device_keys).where(device_keys.c.key_id == key_id,
                                  device_keys.c.device_id == device_id)
    ).mappings().first()
    if row is None:
        raise NotFoundError(f"key {key_id} is not registered for device {device_id}", id=key_id)
    at = body.revoked_at or utc_text(now)
    # The earlier time wins in the UPDATE itself, so two revocations racing from two
    # processes cannot move a revocation later.
    conn.execute(
        update(device_keys)
        .where(device_keys.c.key_id == key_id,
               or_(device_keys.c.revoked_at.is_(None), device_keys.c.revoked_at > at))
        .values(revoked_at=at, revocation_reason=body.reason)
    )
    return device_key_info(conn, key_id)


def device_key_info(conn: Connection, key_id: str) -> DeviceKeyInfo:
    """One device key by id."""
    row = conn.execute(select(device_keys).where(device_keys.c.key_id == key_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"key {key_id} is not registered", id=key_id)
    return _key_info(row)
