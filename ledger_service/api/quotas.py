"""Routes for quotas (配额): read the regulator's quota from a ``QuotaRegistry`` on the
ledger's chain (the ledger's own, :mod:`ledger_service.quotas`, unless one is named),
and reconcile monthly emissions against the quota in force."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from carbon_protocol.models import Address
from carbon_rules.errors import RulesError
from carbon_rules.fixed_point import to_decimal
from carbon_rules.quotas_reconcile import ReconcileInput, Reconciliation

from ..auth import Role, access, body, query
from ..quotas import default_registry
from ..reports import ReportServiceError, quota_client
from .deps import LedgerDep

router = APIRouter(prefix="/v1/quotas", tags=["quotas"])


class QuotaRevision(BaseModel):
    """One revision of an on-chain quota."""

    revision: int
    allocation: str
    document: str
    regulator: str
    set_at: int


class QuotaHistory(BaseModel):
    """The quota in force and every revision before it."""

    registry: str
    enterprise: str
    year: int
    allocation: str
    revisions: list[QuotaRevision]


class ReconcileRequest(ReconcileInput):
    """A reconciliation; ``registry`` names a ``QuotaRegistry`` on the ledger's chain
    (default: the ledger's own, if it has one) whose quota, if issued, overrides
    ``internal``."""

    registry: Address | None = None


@router.get("", response_model=QuotaHistory)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE,
        owners=[query("enterprise", "enterprise")])
def quota(ledger: LedgerDep, enterprise: Annotated[str, Query(min_length=1, max_length=256)],
          year: Annotated[int, Query(ge=1, le=9999)],
          registry: Annotated[Address | None, Query()] = None) -> Any:
    """The regulator's quota for ``enterprise`` and ``year`` with its revisions, from
    ``registry`` or the ledger's own; 404 ``quota_not_issued`` if none was issued, 422
    ``no_quota_registry`` if no registry is named and the ledger has none."""
    client = quota_client(ledger, default_registry(registry, ledger.quota_registry_address))
    try:
        current = client.quota(enterprise, year)
        history = client.history(enterprise, year)
    except RulesError as exc:
        raise ReportServiceError(exc) from exc
    return QuotaHistory(
        registry=client.address, enterprise=enterprise, year=year,
        allocation=to_decimal(current.allocation),
        revisions=[QuotaRevision(revision=h.revision, allocation=to_decimal(h.allocation),
                                 document=h.document, regulator=h.regulator, set_at=h.set_at)
                   for h in history if h.revision <= current.revision])


@router.post("/reconcile", response_model=Reconciliation)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE,
        owners=[body("enterprise", "enterprise")])
def reconcile_quota(body: ReconcileRequest, ledger: LedgerDep) -> Any:
    """Emissions to date, year-end forecast and surplus or deficit against the quota in
    force: the regulator's on chain (``registry``) overrides the ``internal`` one."""
    try:
        registry = body.registry or ledger.quota_registry_address
        chain = None if registry is None else quota_client(ledger, registry)
        return body.run(chain)
    except RulesError as exc:
        raise ReportServiceError(exc) from exc
