"""Access policies: each route declares who may call it and which enterprise it touches.

A route is decorated with :func:`access` (roles, and where the request names the
identifiers whose owner must be the caller's enterprise) or :func:`public` (with the
reason). The declaration is data on the endpoint; one dependency
(:func:`ledger_service.api.deps.authorize`) reads it on every request and calls
:func:`decide`. A route with no declaration is refused at run time and fails a test.

Ownership: a caller with a scoped key (enterprise, gateway, buyer, or a verifier
engaged by named enterprises) may only touch identifiers whose owning enterprise
(:mod:`.owners`: device -> site -> enterprise, gateway -> enterprise, ...) is one of its
own. An identifier that does not exist has no owner and is refused for such callers
like another enterprise's, so a 403 tells them nothing about what exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from .errors import ForbiddenError, UnauthenticatedError
from .keys import Principal
from .roles import Role

__all__ = ["Kind", "Policy", "Ref", "access", "body", "decide", "path", "policy_of",
           "public", "query"]

Kind = Literal["enterprise", "site", "gateway", "device", "reading", "inventory", "report",
               "verification", "loan",
               "dataset", "data_request", "grant"]
"""What an identifier names, which decides how its owning enterprise is found."""

_ATTRIBUTE = "__access_policy__"
F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class Ref:
    """Where a request names an identifier of ``kind``.

    ``source`` is the path parameter, query parameter or JSON body; ``name`` is the
    parameter, or for the body a dotted field path where ``[]`` after a segment means
    every item of that list (``readings[].device_id``)."""

    source: Literal["path", "query", "body"]
    name: str
    kind: Kind

    def describe(self) -> str:
        return f"{self.source} `{self.name}` ({self.kind})"


def path(name: str, kind: Kind) -> Ref:
    """The path parameter ``name`` names a ``kind``."""
    return Ref("path", name, kind)


def query(name: str, kind: Kind) -> Ref:
    """The query parameter ``name`` names a ``kind``."""
    return Ref("query", name, kind)


def body(name: str, kind: Kind) -> Ref:
    """The JSON body field ``name`` (dotted, ``[]`` for each list item) names a ``kind``."""
    return Ref("body", name, kind)


@dataclass(frozen=True)
class Policy:
    """Who may call a route.

    ``public``: anyone, without a key (``reason`` says why). Otherwise the caller's
    role must be in ``roles``; a scoped caller must own every identifier the ``owners``
    refs find in the request, and is refused on a route with no ``owners`` unless
    ``self_service`` (the route is about the caller itself, e.g. ``whoami``)."""

    roles: frozenset[Role] = frozenset()
    owners: tuple[Ref, ...] = ()
    public: bool = False
    self_service: bool = False
    reason: str = ""
    body_refs: tuple[Ref, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body_refs", tuple(r for r in self.owners
                                                    if r.source == "body"))


def access(*roles: Role, owners: Iterable[Ref] = (), self_service: bool = False,
           reason: str = "") -> Callable[[F], F]:
    """Declare that ``roles`` may call the decorated route, touching ``owners``."""
    if not roles:
        raise ValueError("a non-public route names at least one role")
    policy = Policy(roles=frozenset(roles), owners=tuple(owners), self_service=self_service,
                    reason=reason)
    return _declare(policy)


def public(reason: str) -> Callable[[F], F]:
    """Declare that anyone may call the decorated route without a key, and why."""
    if not reason:
        raise ValueError("a public route says why it is public")
    return _declare(Policy(public=True, reason=reason))


def _declare(policy: Policy) -> Callable[[F], F]:
    def mark(endpoint: F) -> F:
        if getattr(endpoint, _ATTRIBUTE, None) is not None:
            raise ValueError(f"{endpoint.__qualname__} declares two access policies")
        setattr(endpoint, _ATTRIBUTE, policy)
        return endpoint
    return mark


def policy_of(endpoint: Callable[..., object]) -> Policy | None:
    """The policy a route's endpoint declared, or ``None``."""
    found = getattr(endpoint, _ATTRIBUTE, None)
    return found if isinstance(found, Policy) else None


def decide(policy: Policy, principal: Principal | None,
           owners: Mapping[tuple[Kind, str], str | None]) -> None:
    """Allow, or raise the :class:`~.errors.AccessError` that says why not.

    ``owners`` maps every ``(kind, identifier)`` the request names (per
    ``policy.owners``) to its owning enterprise, ``None`` if it has none (does not
    exist)."""
    if policy.public:
        return
    if principal is None:
        raise UnauthenticatedError("an API key is required: Authorization: Bearer <key>")
    if principal.role not in policy.roles:
        raise ForbiddenError(f"the {principal.role} role may not call this route",
                             role=principal.role.value)
    if not principal.scoped:
        return
    if not policy.owners and not policy.self_service:
        raise ForbiddenError(f"this route is not scoped to an enterprise; a {principal.role} "
                             "key scoped to enterprises may not call it",
                             role=principal.role.value)
    foreign = sorted(i for (_, i), owner in owners.items()
                     if owner not in principal.enterprises)
    if foreign:
        raise ForbiddenError("the request touches identifiers outside this key's "
                             "enterprises", identifiers=foreign[:20])
