"""Routes for enterprises, sites, gateways, devices and device keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from carbon_protocol.models import DeviceKeyInfo

from .. import registry
from ..auth import Role, access, body, path
from ..models import (
    DeviceCreate,
    DeviceKeyCreate,
    DevicePublic,
    EnterpriseCreate,
    EnterprisePublic,
    GatewayCreate,
    GatewayPublic,
    KeyRevoke,
    SequenceReport,
    SiteCreate,
    SitePublic,
)
from .deps import LedgerDep

router = APIRouter(prefix="/v1", tags=["registry"])


@router.post("/enterprises", status_code=201, response_model=EnterprisePublic)
@access(Role.ADMIN, Role.REGULATOR, Role.ENTERPRISE, Role.GATEWAY,
        owners=[body("id", "enterprise")])
def create_enterprise(body: EnterpriseCreate, ledger: LedgerDep) -> Any:
    return ledger.call(registry.create_enterprise, body)


@router.get("/enterprises/{enterprise_id:path}", response_model=EnterprisePublic)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE, Role.GATEWAY,
        owners=[path("enterprise_id", "enterprise")])
def get_enterprise(enterprise_id: str, ledger: LedgerDep) -> Any:
    return ledger.call(registry.get_enterprise, enterprise_id)


@router.post("/sites", status_code=201, response_model=SitePublic)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[body("enterprise_id", "enterprise")])
def create_site(body: SiteCreate, ledger: LedgerDep) -> Any:
    return ledger.call(registry.create_site, body)


@router.post("/gateways", status_code=201, response_model=GatewayPublic)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[body("enterprise_id", "enterprise")])
def create_gateway(body: GatewayCreate, ledger: LedgerDep) -> Any:
    return ledger.call(registry.create_gateway, body)


@router.post("/devices", status_code=201, response_model=DevicePublic)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY,
        owners=[body("site_id", "site"), body("gateway_id", "gateway")])
def create_device(body: DeviceCreate, ledger: LedgerDep) -> Any:
    return ledger.call(registry.create_device, body)


@router.get("/devices/{device_id:path}/sequence", response_model=SequenceReport)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.ENTERPRISE, Role.GATEWAY,
        owners=[path("device_id", "device")])
def device_sequence(device_id: str, ledger: LedgerDep) -> Any:
    return ledger.sequence_report(device_id)


@router.post("/devices/{device_id:path}/keys", status_code=201, response_model=DeviceKeyInfo)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[path("device_id", "device")])
def add_device_key(device_id: str, body: DeviceKeyCreate, ledger: LedgerDep) -> Any:
    return ledger.call(registry.add_device_key, device_id, body)


@router.post("/devices/{device_id:path}/keys/{key_id}/revoke", response_model=DeviceKeyInfo)
@access(Role.ADMIN, Role.ENTERPRISE, Role.GATEWAY, owners=[path("device_id", "device")])
def revoke_device_key(device_id: str, key_id: str, body: KeyRevoke, ledger: LedgerDep) -> Any:
    return ledger.call(registry.revoke_device_key, device_id, key_id, body)


@router.get("/devices/{device_id:path}", response_model=DevicePublic)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.ENTERPRISE, Role.GATEWAY,
        owners=[path("device_id", "device")])
def get_device(device_id: str, ledger: LedgerDep) -> Any:
    return ledger.call(registry.get_device, device_id)
