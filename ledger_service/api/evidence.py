"""Route for the offline evidence bundle: one enterprise, one period, one file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from .. import evidence
from ..auth import Role, access, path
from .deps import LedgerDep

router = APIRouter(prefix="/v1", tags=["evidence"])

PeriodLabel = Annotated[str, Query(
    pattern=evidence.PERIOD_PATTERN,
    description="year 2026, quarter 2026-Q1, month 2026-01 or day 2026-01-05 (UTC)")]


@router.get("/evidence/{enterprise_id:path}", response_class=Response,
            responses={200: {"content": {"application/json": {}}}})
@access(Role.ADMIN, Role.REGULATOR, Role.BANK, Role.ENTERPRISE,
        owners=[path("enterprise_id", "enterprise")])
def export_evidence(enterprise_id: str, period: PeriodLabel, ledger: LedgerDep) -> Response:
    """The enterprise's evidence bundle for the period (``carbon-ledger/evidence/v1``,
    ``docs/evidence-bundle.md``): inventories, their readings and keys, reports, log
    records, tree heads, anchors and every proof, against the latest final anchor.
    Compact JSON: a month of 20 meters is tens of megabytes, so it is not re-validated
    on the way out."""
    bundle = evidence.export_evidence(ledger, enterprise_id, period)
    return Response(bundle.model_dump_json(), media_type="application/json")
