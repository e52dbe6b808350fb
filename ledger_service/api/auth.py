"""Routes for API keys (admin only) and for a caller to see its own key; the 401
answer with its ``WWW-Authenticate`` challenge (RFC 6750)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..auth import ApiKeyPublic, IssuedKey, KeyCreate, Role, UnauthenticatedError, access
from ..auth import keys as api_keys
from .deps import LedgerDep, PrincipalDep

__all__ = ["install_auth", "router"]

router = APIRouter(prefix="/v1/auth", tags=["auth"])
log = logging.getLogger("ledger_service.access")
_EVERY_ROLE = tuple(Role)


class Caller(BaseModel):
    """Who the presented key says the caller is."""

    key_id: str
    role: Role
    enterprises: list[str]
    party: str | None
    """The organisation the key belongs to (a bank's, a verifier's)."""


@router.post("/keys", status_code=201, response_model=IssuedKey)
@access(Role.ADMIN)
def create_key(body: KeyCreate, ledger: LedgerDep, caller: PrincipalDep) -> Any:
    """Issue a key: the answer is the only time its secret (``api_key``) is shown."""
    with ledger.engine.begin() as conn:
        issued = api_keys.create_key(conn, body)
    log.info("API key %s (%s %s, party %s) issued by key %s", issued.key_id,
             issued.role.value, ",".join(issued.enterprises) or "-", issued.party or "-",
             caller.key_id if caller else "?")
    return issued


@router.get("/keys", response_model=list[ApiKeyPublic])
@access(Role.ADMIN)
def list_keys(ledger: LedgerDep) -> Any:
    """Every key, revoked ones included, without secrets."""
    with ledger.reader.connect() as conn:
        return api_keys.list_keys(conn)


@router.post("/keys/{key_id}/revoke", response_model=ApiKeyPublic)
@access(Role.ADMIN)
def revoke_key(key_id: str, ledger: LedgerDep, caller: PrincipalDep) -> Any:
    """Revoke a key: every later request with it is 401."""
    with ledger.engine.begin() as conn:
        revoked = api_keys.revoke_key(conn, key_id)
    log.info("API key %s revoked by key %s", key_id, caller.key_id if caller else "?")
    return revoked


@router.get("/whoami", response_model=Caller)
@access(*_EVERY_ROLE, self_service=True)
def whoami(caller: PrincipalDep) -> Any:
    """The key's id, role, enterprises and party: a quick check of a configured key."""
    if caller is None:  # cannot happen: the route is not public
        raise UnauthenticatedError("an API key is required")
    return Caller(key_id=caller.key_id, role=caller.role,
                  enterprises=sorted(caller.enterprises), party=caller.party)


def install_auth(app: FastAPI) -> None:
    """Add the key routes, and the RFC 6750 challenge to every 401 answer."""

    @app.exception_handler(UnauthenticatedError)
    async def _unauthenticated(_: Request, exc: UnauthenticatedError) -> JSONResponse:
        return JSONResponse(exc.diagnostics(), status_code=exc.http_status,
                            headers={"WWW-Authenticate": 'Bearer realm="carbon-ledger"'})

    app.include_router(router)
