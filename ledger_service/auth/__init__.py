"""Who may call the ledger's API: principals with API keys, and per-route policies.

:mod:`.roles` names the actors, :mod:`.keys` issues, checks and revokes API keys,
:mod:`.policy` is how a route declares who may call it and which enterprise a request
touches, :mod:`.owners` finds the enterprise that owns an identifier. The one FastAPI
dependency that enforces all of it is :func:`ledger_service.api.deps.authorize`.
"""

from .errors import AccessError, ForbiddenError, UnauthenticatedError
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
from .policy import Policy, Ref, access, body, decide, path, policy_of, public, query
from .roles import Role

__all__ = [
    "AccessError", "ApiKeyPublic", "ForbiddenError", "IssuedKey", "KeyCreate", "Policy",
    "Principal", "Ref", "Role", "UnauthenticatedError", "access", "authenticate", "body",
    "create_key", "decide", "list_keys", "path", "policy_of", "public", "query", "revoke_key",
]
