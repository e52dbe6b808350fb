"""Routes for third-party verification: register verifier keys, open a verification,
fetch its sample with proofs, record findings, attest or reject, read where it stands;
and the regulator's overview of every enterprise."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from carbon_protocol.attestation import SampleEvidence, SignedAttestation

from ..auth import Principal, Role, access, body, path, public, query, require_party
from ..errors import NotFoundError
from ..ledger import Ledger
from ..verification import evidence, keys, regulator, workflow
from ..verification.keys import RegisteredVerifierKey, VerifierKeyCreate, VerifierKeyRevoke
from ..verification.regulator import RegulatorStatus
from ..verification.workflow import (
    AttestationReceipt,
    FindingsPost,
    RecordRef,
    VerificationOpen,
    VerificationStatus,
)
from .deps import LedgerDep, PrincipalDep

router = APIRouter(prefix="/v1", tags=["verification"])

_READERS = (Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.ENTERPRISE)
_VID = path("verification_id", "verification")


@router.post("/verifiers", status_code=201, response_model=RegisteredVerifierKey)
@access(Role.ADMIN, Role.REGULATOR)
def register_verifier_key(body: VerifierKeyCreate, ledger: LedgerDep, response: Response) -> Any:
    """Register a verifier organisation's public key (appended to the log); the same key
    again is 200 with its first registration."""
    created, registered = keys.register_key(ledger, body)
    if not created:
        response.status_code = 200
    return registered


@router.post("/verifiers/{verifier_id:path}/keys/{key_id}/revoke",
             response_model=RegisteredVerifierKey)
@access(Role.ADMIN, Role.REGULATOR)
def revoke_verifier_key(verifier_id: str, key_id: str, body: VerifierKeyRevoke,
                        ledger: LedgerDep) -> Any:
    """Withdraw a verifier key (appended to the log): from now on no attestation signed
    with it is accepted; those recorded before stay valid."""
    return keys.revoke_key(ledger, verifier_id, key_id, body)[1]


@router.get("/verifiers/{verifier_id:path}", response_model=list[RegisteredVerifierKey])
@public("verifier keys are public keys: anyone checking an attestation needs them")
def verifier_keys(verifier_id: str, ledger: LedgerDep) -> Any:
    """The keys registered for a verifier, with their log records (404 if none)."""
    found = keys.verifier_keys(ledger, verifier_id)
    if not found:
        raise NotFoundError(f"no key is registered for verifier {verifier_id}",
                            verifier=verifier_id)
    return found


@router.post("/verifications", status_code=201, response_model=VerificationStatus)
@access(Role.ADMIN, Role.VERIFIER, owners=[body("inventory_id", "inventory")])
def open_verification(body: VerificationOpen, ledger: LedgerDep, caller: PrincipalDep) -> Any:
    """Open a verification of an inventory: logged, then anchored, which mines the seed
    block that decides the sample. A verifier key opens it only for its own party."""
    require_party(caller, body.verifier, f"opening a verification for {body.verifier}")
    return workflow.open_verification(ledger, body)


def _require_opener(ledger: Ledger, verification_id: str, caller: Principal | None) -> None:
    """Only the verifier organisation that opened a verification (or an admin) adds to it
    (404 first for a verification that does not exist)."""
    _, opened = workflow.opened(ledger, verification_id)
    require_party(caller, opened.verifier, f"verification {verification_id}")


@router.get("/verifications", response_model=list[VerificationStatus])
@access(*_READERS, owners=[query("enterprise", "enterprise")])
def list_verifications(ledger: LedgerDep, enterprise: str = Query(
        ..., description="the enterprise whose inventories were verified")) -> Any:
    """Every verification of an enterprise's inventories, oldest first."""
    return workflow.list_verifications(ledger, enterprise)


@router.get("/verifications/{verification_id:path}/sample", response_model=SampleEvidence)
@access(Role.ADMIN, Role.REGULATOR, Role.VERIFIER, owners=[_VID])
def verification_sample(verification_id: str, ledger: LedgerDep) -> Any:
    """The sample (spec, leaves) with every sampled reading's proof, the inventory's, and
    the anchored head they lead to; 409 ``seed_not_mined`` before the seed block."""
    return evidence.sample_evidence(ledger, verification_id)


@router.post("/verifications/{verification_id:path}/findings", status_code=201,
             response_model=list[RecordRef])
@access(Role.ADMIN, Role.VERIFIER, owners=[_VID])
def add_findings(verification_id: str, body: FindingsPost, ledger: LedgerDep,
                 caller: PrincipalDep) -> Any:
    """Record findings on sampled leaves (or the inventory), one log record each; only
    from the verifier organisation that opened the verification."""
    _require_opener(ledger, verification_id, caller)
    return workflow.add_findings(ledger, verification_id, body)


@router.post("/verifications/{verification_id:path}/attestation", status_code=201,
             response_model=AttestationReceipt)
@access(Role.ADMIN, Role.VERIFIER, owners=[_VID])
def submit_attestation(verification_id: str, body: SignedAttestation, ledger: LedgerDep,
                       caller: PrincipalDep, response: Response) -> Any:
    """Accept the verifier's signed verdict: checked against the registered key, the
    seed's sample and the recorded findings, logged and anchored. The same attestation
    again is 200; another one is 409. Only from the verifier organisation that opened the
    verification."""
    _require_opener(ledger, verification_id, caller)
    created, receipt = workflow.submit_attestation(ledger, verification_id, body)
    if not created:
        response.status_code = 200
    return receipt


@router.get("/verifications/{verification_id:path}", response_model=VerificationStatus)
@access(*_READERS, owners=[_VID])
def verification_status(verification_id: str, ledger: LedgerDep) -> Any:
    """Where a verification stands (open, attested, rejected) with its records."""
    return workflow.status(ledger, verification_id)


@router.get("/regulator/status", response_model=RegulatorStatus)
@access(Role.ADMIN, Role.REGULATOR)
def regulator_status(ledger: LedgerDep) -> Any:
    """Every registered enterprise: inventories, open verifications, the latest verdict
    per period; and the log's last anchor."""
    return regulator.regulator_status(ledger)
