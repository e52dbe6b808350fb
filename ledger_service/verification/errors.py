"""The verification workflow's errors: each says what was wrong and maps to one status."""

from __future__ import annotations

from ..errors import LedgerError

__all__ = ["AttestationRefusedError", "RevokedVerifierKeyError", "SeedPendingError",
           "UnknownVerifierKeyError", "VerificationClosedError"]


class UnknownVerifierKeyError(LedgerError):
    """The verifier, or the key an attestation names, is not registered at this ledger."""

    code = "unknown_verifier_key"
    http_status = 422


class RevokedVerifierKeyError(LedgerError):
    """The verifier key an attestation names was revoked: it signs nothing any more."""

    code = "revoked_verifier_key"
    http_status = 422


class VerificationClosedError(LedgerError):
    """The verification already holds an attestation: nothing more may be added to it."""

    code = "verification_closed"
    http_status = 409


class SeedPendingError(LedgerError):
    """The seed block of the verification is not mined yet: no sample exists so far."""

    code = "seed_not_mined"
    http_status = 409


class AttestationRefusedError(LedgerError):
    """An attestation does not describe this verification (another inventory, period,
    verifier or set of findings), or is not internally consistent."""

    code = "invalid_attestation"
    http_status = 422
