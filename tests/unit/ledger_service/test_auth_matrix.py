"""Every route of the built app, walked with every role, no key, a revoked key, a forged
key, and with the caller's own enterprise's ids and another enterprise's: the answer
must be what the route's declared policy says. Also: no route without a policy, and
``docs/access-control.md`` is the rendering of the policies."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import pytest
from fastapi.testclient import TestClient

from carbon_protocol.models import Reading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey
from ledger_service import registry
from ledger_service.api import create_app
from ledger_service.api.deps import authorize
from ledger_service.auth import Policy, Role, access, revoke_key
from ledger_service.auth.matrix import FRAMEWORK_PATHS, declared_routes, render_matrix
from ledger_service.auth.roles import SCOPED_ROLES
from ledger_service.models import (
    DeviceCreate,
    DeviceKeyCreate,
    EnterpriseCreate,
    GatewayCreate,
    SiteCreate,
)
from tests.worlds import api_key

A = "86.1000.1/ent.test"  # the conftest enterprise and site
A_SITE = "86.1000.1/site.test"
B = "86.1000.1/ent.other"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "access-control.md"


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role | None
    enterprises: tuple[str, ...] = ()

    @property
    def scoped(self) -> bool:
        return self.role in SCOPED_ROLES or bool(self.enterprises)


CALLERS = [Caller("admin", Role.ADMIN), Caller("regulator", Role.REGULATOR),
           Caller("bank", Role.BANK), Caller("association", Role.ASSOCIATION),
           Caller("verifier (all)", Role.VERIFIER), Caller("verifier of A", Role.VERIFIER, (A,)),
           Caller("enterprise A", Role.ENTERPRISE, (A,)), Caller("gateway A", Role.GATEWAY, (A,)),
           Caller("buyer A", Role.BUYER, (A,))]


def _key(led: Any, role: Role, enterprises: tuple[str, ...] = ()) -> str:
    return api_key(led, role, enterprises)  # a bank's or verifier's: of the test parties


def _world(led: Any, owner: str, site: str, name: str) -> dict[str, str]:
    """A gateway, a device with a key and one accepted reading of ``owner``; the ids by
    kind (an inventory and a report id that do not exist)."""
    gateway, device = f"86.1000.1/gw.{name}", f"86.1000.1/dev.{name}"
    led.call(registry.create_gateway, GatewayCreate(id=gateway, enterprise_id=owner, name=name))
    led.call(registry.create_device, DeviceCreate(id=device, site_id=site, gateway_id=gateway,
                                                  quantity="active_energy", unit="kWh",
                                                  serial=name))
    key = PrivateKey.generate("sm")
    led.call(registry.add_device_key, device, DeviceKeyCreate(
        suite="sm", public_key=key.public_key().hex(), valid_from="2026-01-01T00:00:00Z"))
    reading = Reading(suite="sm", key_id=key.public_key().key_id, device=device, seq=1,
                      measured_at="2026-01-01T00:15:00Z", quantity="active_energy", unit="kWh",
                      value="1", cumulative="1", quality="measured",
                      salt=secrets.token_hex(16), domain=led.domain)
    _, receipt = led.ingest_one(sign_reading(reading, key))
    return {"enterprise": owner, "site": site, "gateway": gateway, "device": device,
            "reading": receipt.reading_id, "inventory": f"86.1000.1/inv.{name}-none",
            "report": f"86.1000.1/rpt.{'0' * 32}", "verification": f"86.1000.1/ver.{name}-none",
            "dataset": f"86.1000.1/ds.{name}-none",
            "data_request": f"86.1000.1/dreq.{name}-none", "grant": f"86.1000.1/dg.{name}-none",
            "loan": f"86.1000.1/loan.{name}-none"}


def _put(body: dict[str, Any], dotted: str, value: str) -> None:
    """Set ``dotted`` (``[]``: a list of one item) in ``body`` to ``value``."""
    here: Any = body
    segments = dotted.split(".")
    for n, segment in enumerate(segments):
        last, each = n == len(segments) - 1, segment.endswith("[]")
        name = segment.removesuffix("[]")
        if each:
            items = here.setdefault(name, [])
            if last:
                items.append(value)
            else:
                if not items:
                    items.append({})
                here = items[0]
        elif last:
            here[name] = value
        else:
            here = here.setdefault(name, {})


def _request(method: str, path: str, policy: Policy,
             ids: dict[str, str]) -> tuple[str, str, dict[str, str], dict[str, Any] | None]:
    """A request naming ``ids`` wherever ``policy`` looks for an owner."""
    by_name = {r.name: ids[r.kind] for r in policy.owners if r.source == "path"}
    url = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: by_name.get(m.group(1), "00aa00aa00aa00aa"),
                 path)
    params = {r.name: ids[r.kind] for r in policy.owners if r.source == "query"}
    body: dict[str, Any] | None = None
    for ref in policy.owners:
        if ref.source == "body":
            body = body or {}
            _put(body, ref.name, ids[ref.kind])
    if body is None and method in ("POST", "PUT", "PATCH"):
        body = {}
    return method, url, params, body


def _expect_allowed(policy: Policy, caller: Caller | None, ids_of: str,
                    exists: dict[str, bool]) -> bool:
    """What the declared policy says for ``caller`` naming the ids of ``ids_of``."""
    if policy.public:
        return True
    if caller is None or caller.role not in policy.roles:
        return False
    if not caller.scoped:
        return True
    if not policy.owners:
        return policy.self_service
    return ids_of == A and all(exists[r.kind] for r in policy.owners)


def _refused(response: Any) -> int | None:
    """401 or 403 if access control refused the request, else ``None``."""
    if response.status_code == 401:
        assert response.json()["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")
        return 401
    if response.status_code == 403 and response.json().get("code") == "forbidden":
        return 403
    return None


def test_every_route_declares_a_policy_and_gets_the_one_check(ledger: Any) -> None:
    app = create_app(ledger)
    routes = declared_routes(app)
    assert len(routes) >= 30
    undeclared = [f"{r.method} {r.path}" for r in routes if r.policy is None]
    assert undeclared == [], f"routes without an access policy: {undeclared}"
    unchecked = [f"{r.method} {r.path}" for r in routes if authorize not in r.dependencies]
    assert unchecked == []
    others = {getattr(r, "path", None) for r in app.routes
              if type(r).__name__ == "Route"}  # FastAPI's own pages
    assert others <= FRAMEWORK_PATHS


def _field_type(model: Any, dotted: str) -> Any:
    """The type at ``dotted`` (``[]``: an item of a list) in a pydantic ``model``."""
    here = model
    for segment in dotted.split("."):
        fields = getattr(here, "model_fields", {})
        name = segment.removesuffix("[]")
        assert name in fields, f"{here.__name__} has no field {name!r}"
        here = fields[name].annotation
        if segment.endswith("[]"):
            assert get_origin(here) is list, f"{name} is not a list"
            here = get_args(here)[0]
        here = next((a for a in get_args(here) if a is not type(None)), here) \
            if get_origin(here) in (Union, UnionType) else here
        here = get_args(here)[0] if get_origin(here) is Annotated else here
    return here


def test_every_owner_ref_names_a_real_parameter_or_field(ledger: Any) -> None:
    """A renamed body field or path parameter must not silently skip the ownership
    check (absent fields are skipped, because validation refuses them)."""
    for route in declared_routes(create_app(ledger)):
        assert route.policy is not None
        hints = get_type_hints(route.endpoint, include_extras=True)
        for ref in route.policy.owners:
            where = f"{route.method} {route.path}: {ref.describe()}"
            if ref.source == "path":
                assert re.search(rf"\{{{ref.name}(:\w+)?\}}", route.path), where
            elif ref.source == "query":
                assert ref.name in hints, where
            else:
                assert _field_type(hints["body"], ref.name) is str, where


def test_a_route_without_a_policy_is_refused(ledger: Any, api_key_factory: Any) -> None:
    app = create_app(ledger)

    @app.get("/v1/undeclared")
    def undeclared() -> dict[str, str]:
        return {"secret": "data"}

    @app.get("/v1/declared")
    @access(Role.ADMIN)
    def declared() -> dict[str, str]:
        return {"ok": "yes"}

    admin = {"Authorization": f"Bearer {api_key_factory(ledger)}"}
    with TestClient(app) as http:
        refused = http.get("/v1/undeclared", headers=admin)
        assert refused.status_code == 403 and "declares no access policy" in refused.text
        assert http.get("/v1/declared", headers=admin).json() == {"ok": "yes"}
    assert "UNDECLARED" in render_matrix(app)


def test_docs_access_control_is_the_declared_matrix(ledger: Any) -> None:
    assert DOCS.read_text() == render_matrix(create_app(ledger)), (
        "regenerate: python -m ledger_service.auth.matrix > docs/access-control.md")


def test_walk_every_route_with_every_caller(ledger: Any) -> None:
    ledger.call(registry.create_enterprise, EnterpriseCreate(id=B, name="Other Co."))
    ledger.call(registry.create_site, SiteCreate(id="86.1000.1/site.other", enterprise_id=B,
                                                 name="Other plant", region="Hebei"))
    ids = {A: _world(ledger, A, A_SITE, "a"), B: _world(ledger, B, "86.1000.1/site.other", "b")}
    exists = {"enterprise": True, "site": True, "gateway": True, "device": True,
              "reading": True, "inventory": False, "report": False,
              "dataset": False, "data_request": False, "grant": False, "verification": False,
              "loan": False}
    keys = {c.name: _key(ledger, c.role, c.enterprises) for c in CALLERS if c.role}
    revoked = _key(ledger, Role.ADMIN)
    with ledger.engine.begin() as conn:
        revoke_key(conn, revoked.split("_")[1])
    admin_id = keys["admin"].split("_")[1]
    bad_keys = {"no key": None, "revoked admin key": f"Bearer {revoked}",
                "forged secret": f"Bearer clk_{admin_id}_{'A' * 43}",
                "malformed": "Bearer not-a-key", "basic scheme": f"Basic {keys['admin']}"}

    app = create_app(ledger)
    mismatches: list[str] = []
    walked = 0
    with TestClient(app) as http:
        for route in declared_routes(app):
            policy = route.policy
            assert policy is not None
            for ids_of in (A, B):
                method, url, params, body = _request(route.method, route.path, policy,
                                                     ids[ids_of])
                cases: list[tuple[str, Caller | None, str | None]] = [
                    (c.name, c, f"Bearer {keys[c.name]}") for c in CALLERS]
                if ids_of == A:
                    cases += [(name, None, header) for name, header in bad_keys.items()]
                for name, caller, header in cases:
                    headers = {} if header is None else {"Authorization": header}
                    response = http.request(method, url, params=params, json=body,
                                            headers=headers)
                    walked += 1
                    refused = _refused(response)
                    allowed = _expect_allowed(policy, caller, ids_of, exists)
                    if allowed and refused is not None:
                        mismatches.append(f"{method} {url} as {name}: refused {refused}, "
                                          f"policy allows: {response.text[:200]}")
                    elif not allowed and refused is None:
                        mismatches.append(f"{method} {url} as {name} ({ids_of} ids): "
                                          f"{response.status_code}, policy refuses")
                    elif not allowed and caller is None and refused != 401:
                        mismatches.append(f"{method} {url} as {name}: {refused}, not 401")
                    elif allowed and response.status_code >= 500 and route.path != "/health":
                        mismatches.append(f"{method} {url} as {name}: "
                                          f"{response.status_code} {response.text[:200]}")
    assert mismatches == []
    assert walked > 30 * (2 * len(CALLERS) + len(bad_keys))


@pytest.mark.parametrize(("route", "role", "allowed"), [
    # A hand-written slice of the matrix, so the walk's expectations are not only the
    # declarations checked against themselves.
    ("POST /v1/readings/batch", Role.GATEWAY, True),
    ("POST /v1/readings/batch", Role.ENTERPRISE, False),
    ("POST /v1/readings/batch", Role.REGULATOR, False),
    ("POST /v1/auth/keys", Role.ADMIN, True),
    ("POST /v1/auth/keys", Role.REGULATOR, False),
    ("POST /v1/auth/keys", Role.ENTERPRISE, False),
    ("GET /v1/inventories/{inventory_id:path}", Role.BANK, True),
    ("GET /v1/inventories/{inventory_id:path}", Role.BUYER, False),
    ("GET /v1/inventories/{inventory_id:path}", Role.ASSOCIATION, False),
    ("GET /v1/devices/{device_id:path}", Role.BANK, False),
    ("POST /v1/enterprises", Role.BANK, False),
    ("POST /v1/reports", Role.ENTERPRISE, True),
    ("POST /v1/reports", Role.REGULATOR, False),
    ("POST /v1/market/datasets", Role.ENTERPRISE, True),
    ("POST /v1/market/datasets", Role.BUYER, False),
    ("POST /v1/market/requests/{request_id:path}/grant", Role.BUYER, False),
    ("POST /v1/market/grants/{grant_id:path}/revoke", Role.BUYER, False),
    ("GET /v1/market/grants/{grant_id:path}/delivery", Role.BUYER, True),
    ("GET /v1/market/grants/{grant_id:path}/delivery", Role.ENTERPRISE, False),
    ("GET /v1/market/grants/{grant_id:path}/delivery", Role.REGULATOR, False),
    ("GET /v1/market/datasets/{dataset_id:path}/accesses", Role.REGULATOR, True),
    ("GET /v1/market/datasets/{dataset_id:path}/accesses", Role.BUYER, False),
    ("GET /v1/evidence/{enterprise_id:path}", Role.BANK, True),
    ("GET /v1/evidence/{enterprise_id:path}", Role.REGULATOR, True),
    ("GET /v1/evidence/{enterprise_id:path}", Role.BUYER, False),
    ("GET /v1/evidence/{enterprise_id:path}", Role.GATEWAY, False),
    ("GET /v1/finance/eligibility/{enterprise:path}", Role.BANK, True),
    ("GET /v1/finance/eligibility/{enterprise:path}", Role.BUYER, False),
    ("GET /v1/finance/eligibility/{enterprise:path}", Role.ASSOCIATION, False),
    ("PUT /v1/finance/output/{enterprise:path}/{period}", Role.ENTERPRISE, True),
    ("PUT /v1/finance/output/{enterprise:path}/{period}", Role.BANK, False),
    ("POST /v1/finance/loans", Role.BANK, True),
    ("POST /v1/finance/loans", Role.ENTERPRISE, False),
])
def test_key_cells_of_the_matrix(ledger: Any, route: str, role: Role, allowed: bool) -> None:
    by_route = {f"{r.method} {r.path}": r.policy for r in declared_routes(create_app(ledger))}
    policy = by_route[route]
    assert policy is not None and not policy.public
    assert (role in policy.roles) is allowed


def test_public_routes_are_exactly_the_published_reads(ledger: Any) -> None:
    public = sorted(f"{r.method} {r.path}" for r in declared_routes(create_app(ledger))
                    if r.policy is not None and r.policy.public)
    assert public == ["GET /health", "GET /metrics", "GET /v1/log", "GET /v1/log/anchors",
                      "GET /v1/log/proof/consistency", "GET /v1/log/proof/inclusion",
                      "GET /v1/log/tree-head", "GET /v1/reports/{report_id:path}/proof",
                      "GET /v1/rules/{methodology_id}", "GET /v1/verifiers/{verifier_id:path}"]
