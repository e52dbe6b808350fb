"""The verifier's side: check a sample's evidence, draft and sign the attestation.

Runs wherever the verifier runs (its own machine, with its own key): it takes what
the ledger answered (``GET /v1/verifications/{id}/sample`` and ``GET
/v1/verifications/{id}``), trusts none of it, and signs only what it checked. The CLI
(``carbon-ledger verification check|attest``) and the tests share these functions.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal

from carbon_protocol.attestation import (
    Attestation,
    FindingRef,
    SampleEvidence,
    SampleRow,
    SignedAttestation,
    check_sample_evidence,
    sign_attestation,
)
from carbon_protocol.chain_view import ChainView
from carbon_protocol.inventory import inventory_leaf_hash
from carbon_protocol.models import format_utc
from carbon_protocol.suites import PrivateKey

from .._internal.clock import utc_now
from .errors import AttestationRefusedError
from .workflow import VerificationStatus

__all__ = ["check_evidence", "draft_attestation"]


def check_evidence(evidence: SampleEvidence, *, chain: ChainView | None = None,
                   trusted_log_keys: Collection[str] | None = None) -> list[SampleRow]:
    """Every check of :func:`carbon_protocol.attestation.check_sample_evidence`: the
    rows checked, or the protocol error naming the first failure."""
    return check_sample_evidence(evidence, chain=chain, trusted_log_keys=trusted_log_keys)


def draft_attestation(evidence: SampleEvidence, status: VerificationStatus, *, verifier: str,
                      key: PrivateKey, verdict: Literal["attest", "reject"],
                      now: datetime | None = None) -> SignedAttestation:
    """Sign the attestation of ``evidence`` (which the caller has checked) with ``key``.

    The findings are those ``status`` lists; the status must be of the same
    verification and inventory as the evidence, or nothing is signed.
    """
    if (status.verification_id, status.inventory_id) != (evidence.verification_id,
                                                         evidence.inventory_id):
        raise AttestationRefusedError(
            f"status is of {status.verification_id} ({status.inventory_id}), the evidence of "
            f"{evidence.verification_id} ({evidence.inventory_id})")
    pub = key.public_key()
    inventory = evidence.signed_inventory
    attestation = Attestation(
        verification_id=evidence.verification_id, verifier=verifier, suite=pub.suite,
        key_id=pub.key_id, enterprise=evidence.enterprise, inventory_id=evidence.inventory_id,
        inventory_leaf_hash=inventory_leaf_hash(inventory, evidence.spec.suite).hex(),
        period=inventory.inventory.period, sample=evidence.spec,
        sampled_leaves=list(evidence.leaves),
        findings=[FindingRef(record_id=f.record_id, leaf_hash=f.leaf_hash)
                  for f in status.findings],
        verdict=verdict, signed_at=format_utc(now or utc_now()))
    return sign_attestation(attestation, key)
