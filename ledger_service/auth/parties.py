"""The organisation behind a key: what a bank or a verifier does belongs to its party.

Route policies (:mod:`.policy`) decide by role and enterprise before a route runs; who
owns a loan project or a verification is in its log record, which only the route reads.
So routes call :func:`require_party` with the party the record names. Admins keep
their powers (they act for whichever party a request names); every other role that
reaches such a route must be a key of that party.
"""

from __future__ import annotations

from .errors import UnauthenticatedError, WrongPartyError
from .keys import Principal
from .roles import Role

__all__ = ["party_of", "require_party"]


def party_of(principal: Principal) -> str:
    """The caller's party (:class:`WrongPartyError` for a key that names none, such as a
    bank or verifier key issued before keys named one)."""
    if principal.party is None:
        raise WrongPartyError(f"this {principal.role} key names no party (organisation); "
                              "an admin issues a new one with `party`", role=principal.role.value)
    return principal.party


def require_party(principal: Principal | None, party: str, what: str) -> None:
    """Allow ``principal`` to act on ``what``, which belongs to ``party``: an admin, or a
    key of that party; otherwise :class:`WrongPartyError`, naming both parties."""
    if principal is None:  # only a public route has none, and none of them calls this
        raise UnauthenticatedError("an API key is required: Authorization: Bearer <key>")
    if principal.role == Role.ADMIN:
        return
    mine = party_of(principal)
    if mine != party:
        raise WrongPartyError(f"{what} belongs to {party}; this key belongs to {mine}",
                              party=mine, owner=party)
