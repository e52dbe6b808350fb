"""Who may call the ledger's API: principals with API keys, and per-route policies.

:mod:`.roles` names the actors, :mod:`.keys` issues, checks and revokes API keys,
:mod:`.policy` is how a route declares who may call it and which enterprise a request
touches, :mod:`.owners` finds the enterprise that owns an identifier, :mod:`.parties`
checks that a bank or verifier acts on its own organisation's records. The one FastAPI
dependency that enforces roles and enterprises is
:func:`ledger_service.api.deps.authorize`; parties are in log records, which the routes
that read them check with :func:`.require_party`.
"""

from .errors import AccessError, ForbiddenError, UnauthenticatedError, WrongPartyError
from .keys import (
    ApiKeyPublic,
    IssuedKey,
    KeyCreate,
    Principal,
    authenticate,
    create_key,
    list_keys,
    revoke_key,
)
from .parties import party_of, require_party
from .policy import Policy, Ref, access, body, decide, path, policy_of, public, query
from .roles import Role

__all__ = [
    "AccessError", "ApiKeyPublic", "ForbiddenError", "IssuedKey", "KeyCreate", "Policy",
    "Principal", "Ref", "Role", "UnauthenticatedError", "access", "authenticate", "body",
    "WrongPartyError", "create_key", "decide", "list_keys", "party_of", "path", "policy_of",
    "public", "query", "require_party", "revoke_key",
]
