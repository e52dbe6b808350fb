"""Routes for inventory reports and offsets: build a report from inventories the ledger
holds (its bytes are appended to the log), read it back by id as JSON or PDF, prove it
against an anchor (the link its QR code carries), and claim offsets against
inventories' gross emissions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from carbon_rules.offsets_ledger import NettingResult
from carbon_rules.reports.pdf import render_pdf

from .. import reports
from ..auth import Role, access, body, path, public
from ..reports import BuiltReport, OffsetClaimRequest, ReportProof, ReportRequest
from .deps import LedgerDep

router = APIRouter(prefix="/v1", tags=["reports"])


@router.post("/reports", status_code=201, response_model=BuiltReport)
@access(Role.ADMIN, Role.ENTERPRISE,
        owners=[body("enterprise.id", "enterprise"), body("inventory_ids[]", "inventory")])
def build_report(body: ReportRequest, ledger: LedgerDep, response: Response) -> Any:
    """Build a report (GB/T 32151 / ISO 14064-1 structure) from stored inventories,
    with quota reconciliation and recorded offsets if asked; appends it to the log
    (201; the same report again is 200 with the same leaf); returns its id, hash, leaf."""
    created, built = reports.build(ledger, body)
    if not created:
        response.status_code = 200
    return built


@router.get("/reports/{report_id:path}/proof", response_model=ReportProof)
@public("the link a report's QR code carries, for whoever holds the printed report: its id "
        "is the report's 128-bit hash, so only a holder of the report can name it, and the "
        "answer discloses nothing the report does not")
def report_proof(report_id: str, ledger: LedgerDep) -> Any:
    """The report with its leaf's inclusion proof against the first final anchor
    covering it (what its QR code leads to); 404 until an anchor covers it."""
    return reports.proof(ledger, report_id)


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
    """A built report with its hash and log leaf."""
    return reports.get(ledger, report_id)


@router.post("/offsets/claims", response_model=NettingResult)
@access(Role.ADMIN, Role.ENTERPRISE, owners=[body("inventory_ids[]", "inventory")])
def claim_offsets(body: OffsetClaimRequest, ledger: LedgerDep) -> Any:
    """Consume offsets (green power, GEC, CCER) against inventories' gross emissions:
    all or nothing; a serial or MWh already claimed is 409 ``offset_double_claim``."""
    return reports.claim_offsets(ledger, body)
