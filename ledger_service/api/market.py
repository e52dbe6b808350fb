"""Routes of the data marketplace: the data window, requests, grants and sales,
encrypted deliveries, revocations and each dataset's audit trail.

Ownership: a listing names its owner and devices, a request names its buyer, so the
access check sees the caller's own enterprise there. A buyer's request and delivery
touch *another* enterprise's dataset; those routes let the buyer role through
(``self_service``) and the service checks that the grant was made to the caller."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..auth import Role, access, body, path, query
from ..market import datasets, delivery, grants
from ..market.contract import Scene
from ..market.models import (
    DataRequestCreate,
    DataRequestPublic,
    DatasetCreate,
    DatasetPublic,
    Delivery,
    GrantCreate,
    GrantPublic,
    MarketEvent,
    RevokeCreate,
)
from .deps import LedgerDep, PrincipalDep

router = APIRouter(prefix="/v1/market", tags=["market"])

_WINDOW = (Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ASSOCIATION, Role.BUYER,
           Role.ENTERPRISE)
"""Who may browse the data window: every market participant (metadata only)."""


@router.post("/datasets", status_code=201, response_model=DatasetPublic)
@access(Role.ADMIN, Role.ENTERPRISE,
        owners=[body("owner", "enterprise"), body("devices[]", "device")])
def list_dataset(body: DatasetCreate, ledger: LedgerDep) -> Any:
    """List a dataset in the window: the owner's readings of the devices in the period,
    hashed (content hash), recorded on chain and logged (``data_listing``)."""
    return datasets.list_dataset(ledger, body)


@router.get("/datasets", response_model=list[DatasetPublic])
@access(*_WINDOW, self_service=True,
        reason="the window is the market's catalogue: metadata and hashes, no readings")
def window(ledger: LedgerDep, scene: Scene | None = None) -> Any:
    """The data window: every listed dataset, or those of one business ``scene``."""
    return datasets.window(ledger, scene)


@router.post("/datasets/{dataset_id:path}/requests", status_code=201,
             response_model=DataRequestPublic)
@access(Role.ADMIN, Role.BUYER, owners=[body("buyer", "enterprise")])
def request_dataset(dataset_id: str, body: DataRequestCreate, ledger: LedgerDep) -> Any:
    """A buyer requests a dataset with a purpose and its encryption key (logged,
    ``data_request``)."""
    return grants.request(ledger, dataset_id, body)


@router.get("/datasets/{dataset_id:path}/accesses", response_model=list[MarketEvent])
@access(Role.ADMIN, Role.REGULATOR, Role.ENTERPRISE, owners=[path("dataset_id", "dataset")])
def dataset_accesses(dataset_id: str, ledger: LedgerDep) -> Any:
    """Every listing, request, grant, revocation and read of the dataset, in log order,
    with the record id whose inclusion proof proves it."""
    return grants.accesses(ledger, dataset_id)


@router.get("/datasets/{dataset_id:path}", response_model=DatasetPublic)
@access(*_WINDOW, self_service=True,
        reason="the window is the market's catalogue: metadata and hashes, no readings")
def get_dataset(dataset_id: str, ledger: LedgerDep) -> Any:
    """One dataset of the window (metadata only)."""
    return datasets.get_dataset(ledger, dataset_id)


@router.get("/requests", response_model=list[DataRequestPublic])
@access(Role.ADMIN, Role.REGULATOR, Role.ENTERPRISE, Role.BUYER,
        owners=[query("enterprise", "enterprise")])
def list_requests(ledger: LedgerDep, enterprise: str) -> Any:
    """Requests made by ``enterprise`` (a buyer's own) or for its datasets (an owner's)."""
    return grants.list_requests(ledger, enterprise)


@router.post("/requests/{request_id:path}/grant", status_code=201, response_model=GrantPublic)
@access(Role.ADMIN, Role.ENTERPRISE, owners=[path("request_id", "data_request")])
def grant_request(request_id: str, body: GrantCreate, ledger: LedgerDep) -> Any:
    """The owner grants or sells a request until an expiry: on chain, then logged
    (``data_grant``). A request granted already is 409 ``already_granted``."""
    return grants.grant(ledger, request_id, body)


@router.get("/grants", response_model=list[GrantPublic])
@access(Role.ADMIN, Role.REGULATOR, Role.ENTERPRISE, Role.BUYER,
        owners=[query("enterprise", "enterprise")])
def list_grants(ledger: LedgerDep, enterprise: str) -> Any:
    """Grants made to ``enterprise`` (a buyer's own) or on its datasets (an owner's)."""
    return grants.list_grants(ledger, enterprise)


@router.post("/grants/{grant_id:path}/revoke", response_model=GrantPublic)
@access(Role.ADMIN, Role.ENTERPRISE, owners=[path("grant_id", "grant")])
def revoke_grant(grant_id: str, body: RevokeCreate, ledger: LedgerDep) -> Any:
    """The owner revokes a grant: on chain, then logged (``data_revocation``); later
    deliveries are 410 ``grant_inactive``."""
    return grants.revoke(ledger, grant_id, body)


@router.get("/grants/{grant_id:path}/delivery", response_model=Delivery)
@access(Role.BUYER, self_service=True,
        reason="the grant's buyer only: checked against the grant, not an owner look-up")
def grant_delivery(grant_id: str, ledger: LedgerDep, principal: PrincipalDep) -> Any:
    """The dataset encrypted to the buyer's key, with every reading's proofs; the read
    is logged (``data_access``) before the answer leaves. 403 ``not_grant_buyer`` for
    another enterprise's grant, 410 ``grant_inactive`` once revoked or expired."""
    return delivery.deliver(ledger, grant_id, principal)
