"""The access matrix of an app, rendered from the policies its routes declare.

``docs/access-control.md`` is this rendering of :func:`ledger_service.api.create_app`;
a test keeps the two equal, so the document a security review reads is the code that
runs. Regenerate it with ``python -m ledger_service.auth.matrix > docs/access-control.md``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from .policy import Policy, policy_of
from .roles import SCOPED_ROLES, Role

__all__ = ["FRAMEWORK_PATHS", "DeclaredRoute", "declared_routes", "render_matrix"]

FRAMEWORK_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""FastAPI's own pages (the API's description): public, and outside the policies."""

_COLUMNS = (Role.ADMIN, Role.REGULATOR, Role.VERIFIER, Role.BANK, Role.ASSOCIATION,
            Role.ENTERPRISE, Role.GATEWAY, Role.BUYER)

_HEADER = """\
# Access control

Generated from the policies the routes declare (`python -m ledger_service.auth.matrix >
docs/access-control.md`); a test keeps this file equal to the code.

Every caller presents an API key, `Authorization: Bearer clk_<key id>_<secret>`. The
secret is 32 random bytes, shown once when the key is issued (`carbon-ledger apikey
create --role R [--enterprise E] [--party P]`, or `POST /v1/auth/keys` as admin); the
ledger keeps SHA-256 of the key and compares in constant time. A missing, malformed,
unknown or revoked key is **401** `unauthenticated` (with `WWW-Authenticate: Bearer`); a
known key whose role may not call the route, or a request naming another enterprise's
identifiers, is **403** `forbidden`. A route without a declared policy is refused.

Scope: enterprise, gateway and buyer keys name one enterprise; a verifier key names
the enterprises it is engaged by (none: all of them); regulator, bank, association and
admin keys name none. A scoped key may only touch identifiers its enterprises own:
device -> site -> enterprise, gateway -> enterprise, reading -> device, inventory ->
gateway, report -> its enterprise. An identifier that does not exist counts as another
enterprise's (403), so a scoped key cannot probe what exists.

Party: a bank or verifier key names the organisation it belongs to (`party`, an
identifier such as `86.1000.1/bank.icbc-ln` or `86.1000.1/vfr.acme`; required for these
two roles, optional for regulator and admin keys, refused for the others, whose
enterprise says whose they are; `GET /v1/auth/whoami` shows it). What such a caller
registers or opens belongs to its organisation, not to the key, so a rotated or second
key of the same organisation reaches it and another organisation's does not: a loan
project is read only by keys of the bank it names (`POST /v1/finance/loans` records the
caller's party as `bank`); a verifier key opens verifications only in its own party's
name, and findings and attestations on a verification are accepted only from keys of
the verifier that opened it. Those refusals are **403** `wrong_party` (details: `party`,
the key's, and `owner`); a bank or verifier key issued before keys named a party acts
for no organisation there. An admin keeps its powers (registering a loan, it names the
`bank`). The matrix below is by role and enterprise; the party check is made by those
routes, on the log record that names the organisation.

Why the matrix looks as it does: only gateways (and the operator) post readings, and
device signatures make even theirs unforgeable; enterprises and their gateways manage
their own registry entries; a regulator reads everything and registers enterprises; a
verifier reads readings, proofs, inventories and reports of what it verifies, and
samples, records findings and attests; a bank reads inventories, reports, grades and
financing codes (the basis of a green loan) but not raw readings; the association
publishes rules on chain, so through this API it needs only the public reads and the
data window; a buyer browses the window, requests datasets and reads only what a grant
gives it, checked per grant by the delivery route; only an admin manages keys.

Cells: **all** = any identifier; **own** = only its enterprise's identifiers (a verifier:
those of the enterprises it names; a verifier naming none is like a regulator: all);
**self** = only about itself: its own key, or for the data window's reads and a
delivery, what the route checks against the caller (the grant's buyer); **-** = refused
(403); **public** = no key needed.

"""


@dataclass(frozen=True)
class DeclaredRoute:
    """One method of one API route, with what it declared."""

    method: str
    path: str
    endpoint: Callable[..., Any]
    policy: Policy | None
    dependencies: tuple[Callable[..., Any], ...]
    """The callables of the route's dependencies (the app's included)."""


def _api_routes(app: FastAPI) -> Iterator[tuple[str, set[str], Callable[..., Any], list[Any]]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before route contexts: included routes are flat
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, set(route.methods or ()), route.endpoint, list(route.dependencies)
        return
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            yield (str(ctx.path), set(ctx.methods or ()), ctx.original_route.endpoint,
                   list(ctx.dependencies or ()))


def declared_routes(app: FastAPI) -> list[DeclaredRoute]:
    """Every method of every API route of ``app``, sorted by path then method."""
    rows = [DeclaredRoute(method, path, endpoint, policy_of(endpoint),
                          tuple(d.dependency for d in deps if d.dependency is not None))
            for path, methods, endpoint, deps in _api_routes(app) for method in methods]
    return sorted(rows, key=lambda r: (r.path, r.method))


def _cell(policy: Policy, role: Role) -> str:
    if policy.public:
        return "public"
    if role not in policy.roles:
        return "-"
    if role in SCOPED_ROLES or role == Role.VERIFIER:
        return "own" if policy.owners else ("self" if policy.self_service else "-")
    return "all"


def render_matrix(app: FastAPI) -> str:
    """The Markdown access matrix of ``app``."""
    lines = [_HEADER, "| route | " + " | ".join(r.value for r in _COLUMNS)
             + " | enterprise found from |",
             "|---|" + "---|" * (len(_COLUMNS) + 1)]
    public: list[str] = []
    for declared in declared_routes(app):
        route, policy = f"`{declared.method} {declared.path}`", declared.policy
        if policy is None:
            lines.append(f"| {route} | " + " | ".join("UNDECLARED" for _ in _COLUMNS) + " | |")
            continue
        owners = ", ".join(r.describe() for r in policy.owners)
        lines.append(f"| {route} | " + " | ".join(_cell(policy, r) for r in _COLUMNS)
                     + f" | {owners} |")
        if policy.public:
            public.append(f"- {route}: {policy.reason}.")
    lines += ["", "## Public routes, and why", "", *public,
              "- FastAPI's own pages (" + ", ".join(f"`{p}`" for p in sorted(FRAMEWORK_PATHS))
              + "): the API's description, which holds no data.", ""]
    return "\n".join(lines)


def main() -> None:
    """Print the matrix of the service's app (built on a throwaway embedded ledger)."""
    from ..api import create_app
    from ..ledger import Ledger
    from ..settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(Settings(data_dir=Path(tmp)))
        try:
            sys.stdout.write(render_matrix(create_app(ledger)))
        finally:
            ledger.engine.dispose()


if __name__ == "__main__":
    main()
