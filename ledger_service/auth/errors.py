"""Access errors, in the service's :class:`~ledger_service.errors.LedgerError` family so
the API answers them as the same typed problem documents as every other error."""

from __future__ import annotations

from ..errors import LedgerError

__all__ = ["AccessError", "ForbiddenError", "UnauthenticatedError", "WrongPartyError"]


class AccessError(LedgerError):
    """Base of the access errors."""

    code = "access_denied"
    http_status = 403


class UnauthenticatedError(AccessError):
    """No API key, or one that is malformed, unknown or revoked (401).

    The message does not say which of these it was: a caller probing keys learns
    nothing from it."""

    code = "unauthenticated"
    http_status = 401


class ForbiddenError(AccessError):
    """A known key whose role may not call the route, or a request touching an
    enterprise the key is not scoped to (403)."""

    code = "forbidden"
    http_status = 403


class WrongPartyError(ForbiddenError):
    """A bank or verifier key acting on what belongs to another organisation (a loan
    project another bank registered, a verification another verifier opened), or naming
    another organisation than its own party, or naming no party at all (403)."""

    code = "wrong_party"
    http_status = 403
