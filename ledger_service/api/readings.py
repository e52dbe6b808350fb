"""Routes for ingesting signed readings and fetching their proofs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from carbon_protocol.models import ProofBundle, SignedReading

from ..auth import Role, access, body, path
from ..models import IngestResult, ReadingBatch, Receipt
from .deps import LedgerDep

router = APIRouter(prefix="/v1/readings", tags=["readings"])


@router.post("", status_code=201, response_model=Receipt)
@access(Role.ADMIN, Role.GATEWAY, owners=[body("reading.device", "device")])
def ingest_one(body: SignedReading, ledger: LedgerDep, response: Response) -> Any:
    """Ingest one reading: 201 with a receipt, 200 for an identical resubmission, or a
    typed 4xx error with nothing stored."""
    status, receipt = ledger.ingest_one(body)
    if status == "duplicate":
        response.status_code = 200
    return receipt


@router.post("/batch", response_model=IngestResult)
@access(Role.ADMIN, Role.GATEWAY, owners=[body("readings[].reading.device", "device")])
def ingest_batch(body: ReadingBatch, ledger: LedgerDep) -> Any:
    """Ingest up to ``max_batch`` readings; each gets a receipt or its own typed error."""
    return ledger.ingest(body.readings)


@router.get("/{reading_id:path}/proof", response_model=ProofBundle)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.ENTERPRISE,
        owners=[path("reading_id", "reading")])
def proof_bundle(reading_id: str, ledger: LedgerDep) -> Any:
    """The offline proof bundle of a reading (once a final anchor covers it)."""
    return ledger.export_proof(reading_id)
