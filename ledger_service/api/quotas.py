"""Routes for quotas (配额): read the regulator's quota from a ``QuotaRegistry`` on the
ledger's chain, and reconcile monthly emissions against the quota in force."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from carbon_protocol.models import Address
from carbon_rules.errors import RulesError
from carbon_rules.fixed_point import to_decimal
from carbon_rules.quotas_reconcile import ReconcileInput, Reconciliation

from ..auth import Role, access, body, query
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
    whose quota, if issued, overrides ``internal``."""

    registry: Address | None = None


@router.get("", response_model=QuotaHistory)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE,
        owners=[query("enterprise", "enterprise")])
def quota(ledger: LedgerDep, registry: Annotated[Address, Query()],
          enterprise: Annotated[str, Query(min_length=1, max_length=256)],
          year: Annotated[int, Query(ge=1, le=9999)]) -> Any:
    """The regulator's quota for ``enterprise`` and ``year`` with its revisions; 404
    ``quota_not_issued`` if none was issued."""
    client = quota_client(ledger, registry)
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
        chain = None if body.registry is None else quota_client(ledger, body.registry)
        return body.run(chain)
    except RulesError as exc:
        raise ReportServiceError(exc) from exc
