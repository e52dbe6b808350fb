"""Writes: signed record versions, and maintenance and calibration events of devices.

Nodes never sign records: every body is already signed by the owner of the prefix,
and is refused (403 ``bad_signature``) otherwise. A write to a node that is not
authoritative for the prefix is refused with 421 ``not_authoritative``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from ..errors import DeactivatedError, InvalidRequestError, NotFoundError
from ..models import RecordBatch, RecordQuery, RecordReceipt, RecordsFound, SignedRecord
from ..resolver import Resolver
from .deps import ResolverDep

router = APIRouter(tags=["records"])


@router.post("/records", status_code=201, response_model=list[RecordReceipt])
def submit_records(body: RecordBatch, resolver: ResolverDep) -> list[RecordReceipt]:
    """Store record versions in order, atomically; each gets a log leaf."""
    return resolver.submit(body.records)


@router.post("/records/query", response_model=RecordsFound)
def query_records(body: RecordQuery, resolver: ResolverDep) -> RecordsFound:
    """The current signed versions of the identifiers held here (others are absent)."""
    return RecordsFound(records=resolver.current_records(body.ids))


def _device_event(resolver: Resolver, device_id: str, signed: SignedRecord,
                  kind: Literal["maintenance", "calibration"]) -> RecordReceipt:
    record = signed.record
    rel = "performed_on" if kind == "maintenance" else "calibrates"
    if record.type != kind:
        raise InvalidRequestError(f"expected a {kind} record, got a {record.type}")
    if [(link.rel, link.target) for link in record.links] != [(rel, device_id)]:
        raise InvalidRequestError(f"a {kind} record of {device_id} links exactly "
                                  f"{rel} -> {device_id}")
    device = resolver.current_records([device_id]).get(device_id)
    if device is None or device.record.type != "device":
        raise NotFoundError(f"device {device_id} is not registered here", id=device_id)
    if device.record.status != "active":
        raise DeactivatedError(f"device {device_id} is deactivated", id=device_id)
    return resolver.submit([signed])[0]


@router.post("/devices/{device_id:path}/maintenance", status_code=201,
             response_model=RecordReceipt)
def register_maintenance(device_id: str, body: SignedRecord,
                         resolver: ResolverDep) -> RecordReceipt:
    """Register a maintenance operation of an active device (a signed ``maintenance``
    record linking ``performed_on`` the device)."""
    return _device_event(resolver, device_id, body, "maintenance")


@router.post("/devices/{device_id:path}/calibrations", status_code=201,
             response_model=RecordReceipt)
def register_calibration(device_id: str, body: SignedRecord,
                         resolver: ResolverDep) -> RecordReceipt:
    """Register a calibration of an active device (a signed ``calibration`` record
    linking ``calibrates`` the device)."""
    return _device_event(resolver, device_id, body, "calibration")
