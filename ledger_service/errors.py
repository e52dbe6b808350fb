"""The ledger service's error family.

Every error the service raises on purpose derives from :class:`LedgerError`. The
HTTP layer maps the family to a status and a stable problem ``code`` in one
exception handler; the CLI prints ``diagnostics()`` and exits non-zero.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every error raised by :mod:`ledger_service`."""

    code: str = "ledger_error"
    http_status: int = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-ready problem description: stable ``code``, human ``message``, details."""
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details:
            out["details"] = self.details
        return out


class InvalidInputError(LedgerError, ValueError):
    """The request is well-formed JSON but violates the protocol or the API schema."""

    code = "invalid_input"
    http_status = 422


class NotFoundError(LedgerError, LookupError):
    """The named object does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(LedgerError):
    """The request conflicts with what is already stored."""

    code = "conflict"
    http_status = 409


class UnknownDeviceError(LedgerError):
    """A reading names a device that is not registered."""

    code = "unknown_device"
    http_status = 422


class UnknownKeyError(LedgerError):
    """A reading names a key that is not registered for its device."""

    code = "unknown_key"
    http_status = 422


class RevokedKeyError(LedgerError):
    """A reading is signed with a key that was revoked (or not yet valid) at receipt time."""

    code = "revoked_key"
    http_status = 422


class WrongDomainError(LedgerError):
    """A reading was signed for another deployment (chain id, contract or log)."""

    code = "wrong_domain"
    http_status = 422


class BadSignatureError(LedgerError):
    """A reading's signature does not verify under its device key."""

    code = "bad_signature"
    http_status = 422


class ReplayError(LedgerError):
    """A different reading was already accepted under the same device sequence number."""

    code = "replayed_sequence"
    http_status = 409


class AnchorError(LedgerError):
    """The anchor contract refused a transaction, or an anchor could not be made."""

    code = "anchor_failed"
    http_status = 502


class ChainUnavailableError(AnchorError, ConnectionError):
    """The chain endpoint cannot be reached or answers inconsistently."""

    code = "chain_unavailable"
    http_status = 503


class ChainMismatchError(AnchorError):
    """The endpoint is a different chain, or the contract code is not the deployed one."""

    code = "chain_mismatch"
    http_status = 503


class SampleMismatchError(LedgerError):
    """A verification sample is not the one its seed block determines."""

    code = "sample_mismatch"
    http_status = 422
