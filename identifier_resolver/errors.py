"""The identifier resolver's one error family.

Every failure the resolver raises on purpose derives from :class:`ResolverError`, which
carries its HTTP status and a stable problem ``code``; the API maps the whole family in
one exception handler and the CLI prints :meth:`~ResolverError.diagnostics`.

Resolution has a fixed vocabulary, whatever the input:

======================  ======  =========================================================
error                   status  meaning
======================  ======  =========================================================
InvalidIdentifierError  400     the text is not an ``<prefix>/<suffix>`` identifier
InvalidRequestError     400     a parameter or body is malformed (depth, direction, JSON)
NotFoundError           404     no record, or no node is authoritative for the prefix
DeactivatedError        410     the identifier existed and was deactivated; carries history
======================  ======  =========================================================

Writes add ``bad_signature`` (403), ``not_authoritative`` (421) and ``conflict`` (409).
Client-side failures (an answer that does not verify, a referral loop, a node that
cannot be reached) are :class:`VerificationError`, :class:`ReferralError` and
:class:`NodeUnavailableError`. Subclasses that replace a builtin also derive from it
(``NotFoundError`` is a ``LookupError``), in web3.py's manner.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ResolverError",
    "InvalidIdentifierError",
    "InvalidRequestError",
    "NotFoundError",
    "DeactivatedError",
    "ConflictError",
    "BadSignatureError",
    "NotAuthoritativeError",
    "VerificationError",
    "ReferralError",
    "NodeUnavailableError",
    "AnchorFailedError",
]


class ResolverError(Exception):
    """Base of every error raised by :mod:`identifier_resolver`."""

    code: str = "resolver_error"
    http_status: int = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-ready problem document: stable ``code``, human ``message``, details."""
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details:
            out["details"] = self.details
        return out


class InvalidIdentifierError(ResolverError, ValueError):
    """The text is not a valid ``<prefix>/<suffix>`` identifier."""

    code = "invalid_identifier"
    http_status = 400


class InvalidRequestError(ResolverError, ValueError):
    """A request parameter or body is malformed (not the identifier itself)."""

    code = "invalid_request"
    http_status = 400


class NotFoundError(ResolverError, LookupError):
    """No such record here, or no node is authoritative for the identifier's prefix."""

    code = "not_found"
    http_status = 404


class DeactivatedError(ResolverError):
    """The identifier was deactivated; ``answer`` holds its record, proof and history.

    Deactivation is final: the record's history stays resolvable (HTTP 410 with the
    whole answer), so a deactivated identifier never resolves to silence.
    """

    code = "deactivated"
    http_status = 410

    def __init__(self, message: str, answer: Any = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.answer = answer


class ConflictError(ResolverError):
    """A change does not follow the stored version (wrong version, ``prev`` or type)."""

    code = "conflict"
    http_status = 409


class BadSignatureError(ResolverError):
    """A record is not signed by the owner key of its prefix."""

    code = "bad_signature"
    http_status = 403


class NotAuthoritativeError(ResolverError):
    """A write was sent to a node that is not authoritative for the identifier's prefix."""

    code = "not_authoritative"
    http_status = 421


class VerificationError(ResolverError):
    """An answer failed a numbered verification step (client side).

    ``step`` and ``step_name`` say where verification stopped; ``expected`` and
    ``found`` carry the two values that disagreed, when there are two.
    """

    code = "verification_failed"
    http_status = 502

    def __init__(
        self,
        step: int,
        step_name: str,
        message: str,
        *,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        detail = message
        if expected is not None or found is not None:
            detail = f"{message}: expected {expected}, found {found}"
        super().__init__(f"step {step} ({step_name}) failed: {detail}")
        self.step = step
        self.step_name = step_name
        self.expected = expected
        self.found = found

    def diagnostics(self) -> dict[str, Any]:
        out = super().diagnostics()
        out.update(step=self.step, step_name=self.step_name, expected=self.expected,
                   found=self.found)
        return out


class ReferralError(ResolverError):
    """Following referrals failed: hop limit reached, a loop, or a referral that does
    not narrow the prefix."""

    code = "referral_failed"
    http_status = 508


class NodeUnavailableError(ResolverError, ConnectionError):
    """A resolver node could not be reached or answered something that is not ours."""

    code = "node_unavailable"
    http_status = 502


class AnchorFailedError(ResolverError):
    """Anchoring the resolver log's tree head on chain failed (retried next round)."""

    code = "anchor_failed"
    http_status = 503
