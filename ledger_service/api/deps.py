"""Request dependencies as ``Annotated`` aliases, in the FastAPI template's manner.

:func:`authorize` is the one access check of the API: the app installs it on every
route, and it enforces the policy each route declared with
:func:`ledger_service.auth.access` or :func:`ledger_service.auth.public`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..auth import ForbiddenError, Policy, Principal, authenticate, decide, policy_of
from ..auth.errors import AccessError
from ..auth.owners import owners_of
from ..auth.policy import Kind
from ..ledger import Ledger

__all__ = ["LedgerDep", "PrincipalDep", "authorize", "check_access", "get_ledger"]

log = logging.getLogger("ledger_service.access")


def get_ledger(request: Request) -> Ledger:
    """The ledger the app was created with."""
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def _field(value: Any, segments: list[str]) -> Iterator[Any]:
    if not segments:
        yield value
        return
    head, rest = segments[0], segments[1:]
    each = head.endswith("[]")
    name = head[:-2] if each else head
    if not isinstance(value, dict) or name not in value:
        return
    inner = value[name]
    if each:
        for item in inner if isinstance(inner, list) else ():
            yield from _field(item, rest)
    else:
        yield from _field(inner, rest)


def _named(policy: Policy, path: Mapping[str, Any], query: Mapping[str, list[str]],
           payload: Any) -> dict[Kind, set[str]]:
    """The identifiers of each kind the request names where the policy says to look.

    A field that is absent or not a string is skipped: the request's validation then
    refuses it before the route does anything."""
    named: dict[Kind, set[str]] = {}
    for ref in policy.owners:
        if ref.source == "path":
            values: list[Any] = [path.get(ref.name)]
        elif ref.source == "query":
            values = list(query.get(ref.name, []))
        else:
            values = list(_field(payload, ref.name.split(".")))
        named.setdefault(ref.kind, set()).update(v for v in values if isinstance(v, str))
    return named


def check_access(ledger: Ledger, policy: Policy, header: str | None,
                 path: Mapping[str, Any], query: Mapping[str, list[str]],
                 payload: Any) -> Principal:
    """The blocking part of :func:`authorize`: authenticate the ``Authorization`` header,
    find the owners of what the request names, apply ``policy``."""
    with ledger.reader.connect() as conn:
        principal = authenticate(conn, header)
        owners: dict[tuple[Kind, str], str | None] = {}
        if principal.scoped:
            for kind, ids in _named(policy, path, query, payload).items():
                if ids:
                    owners.update(((kind, i), o)
                                  for i, o in owners_of(ledger, conn, kind, ids).items())
        conn.rollback()
    decide(policy, principal, owners)
    return principal


async def authorize(request: Request) -> Principal | None:
    """Authenticate the caller and apply the route's declared policy (the caller, or
    ``None`` on a public route). A route that declared none is refused."""
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    policy = policy_of(endpoint) if endpoint is not None else None
    if policy is None:
        log.error("route %s %s declares no access policy: refused", request.method,
                  getattr(route, "path", request.url.path))
        raise ForbiddenError("this route declares no access policy")
    if policy.public:
        return None
    payload: Any = None
    if policy.body_refs:
        try:
            payload = await request.json()  # cached: FastAPI parsed it already
        except (ValueError, UnicodeDecodeError):
            payload = None  # validation answers for a body that is not JSON
    query = {k: request.query_params.getlist(k) for k in request.query_params}
    try:
        principal = await run_in_threadpool(
            check_access, get_ledger(request), policy, request.headers.get("authorization"),
            dict(request.path_params), query, payload)
    except AccessError as exc:
        log.info("access refused: %s %s: %s", request.method, request.url.path, exc)
        raise
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal | None, Depends(authorize)]
"""The caller (``None`` on a public route)."""


