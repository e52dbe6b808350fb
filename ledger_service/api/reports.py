"""Routes for inventory reports and offsets: build a report from inventories the ledger
holds, read it back by id (the proof link its QR code carries) as JSON or PDF, and
claim offsets against inventories' gross emissions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from carbon_rules.offsets_ledger import NettingResult
from carbon_rules.reports import report_hash
from carbon_rules.reports.pdf import render_pdf

from .. import reports
from ..auth import Role, access, body, path
from ..reports import BuiltReport, OffsetClaimRequest, ReportRequest
from .deps import LedgerDep

router = APIRouter(prefix="/v1", tags=["reports"])


@router.post("/reports", status_code=201, response_model=BuiltReport)
@access(Role.ADMIN, Role.ENTERPRISE,
        owners=[body("enterprise.id", "enterprise"), body("inventory_ids[]", "inventory")])
def build_report(body: ReportRequest, ledger: LedgerDep) -> Any:
    """Build a report (GB/T 32151 / ISO 14064-1 structure) from stored inventories,
    with quota reconciliation and recorded offsets if asked; returns its id and hash."""
    return reports.build(ledger, body)


@router.get("/reports/{report_id:path}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE,
        owners=[path("report_id", "report")])
def report_pdf(report_id: str, ledger: LedgerDep) -> Response:
    """The report as PDF: charts, the hash on every page, a QR code of its proof link."""
    report = reports.load_report(ledger, report_id)
    name = report_id.split("/")[-1]
    return Response(render_pdf(report, ledger.settings.log_suite), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


@router.get("/reports/{report_id:path}", response_model=BuiltReport)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ENTERPRISE,
        owners=[path("report_id", "report")])
def get_report(report_id: str, ledger: LedgerDep) -> Any:
    """A built report with its hash (what its QR code leads to)."""
    report = reports.load_report(ledger, report_id)
    suite = ledger.settings.log_suite
    return BuiltReport(report_id=report_id, hash=report_hash(report, suite).hex(), suite=suite,
                       report=report)


@router.post("/offsets/claims", response_model=NettingResult)
@access(Role.ADMIN, Role.ENTERPRISE, owners=[body("inventory_ids[]", "inventory")])
def claim_offsets(body: OffsetClaimRequest, ledger: LedgerDep) -> Any:
    """Consume offsets (green power, GEC, CCER) against inventories' gross emissions:
    all or nothing; a serial or MWh already claimed is 409 ``offset_double_claim``."""
    return reports.claim_offsets(ledger, body)
