"""Ownership of inventories and reports on real ones: a gateway of enterprise A computes,
signs and submits an inventory with its own key, enterprise A builds a report from it;
enterprise B, B's gateway and the roles outside the policy are refused, bank and
regulator read."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger_service import registry
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.models import EnterpriseCreate, GatewayCreate
from node_gateway.gateway import Organisation
from tests.worlds import (
    DAY,
    PREFIX,
    api_key,
    client,
    inventory_gateway,
    rules_app,
    submit_inventory,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2
    from fastapi.testclient import TestClient

A, B = f"{PREFIX}/ent.own-a", f"{PREFIX}/ent.own-b"
SITE = f"{PREFIX}/site.own-a"


@dataclass
class World:
    ledger: Ledger
    app: Any
    inventory_id: str
    signed_inventory: dict[str, Any]
    report_id: str
    report_request: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("auth-inventories")
    ledger, app = rules_app(tmp)
    gw = inventory_gateway(
        tmp / "gw", app, api_key(ledger, Role.GATEWAY, [A]),
        Organisation(A, "Owner A", SITE, "mill", "Liaoning", f"{PREFIX}/gw.own-a", "mill"),
        [(f"{PREFIX}/dev.own-a.elec", "electricity")],
        suite="sm", start=datetime(2026, 10, 5, tzinfo=UTC), days=1.25, seed=3)
    run, receipt = submit_inventory(gw, DAY)
    ledger.anchor_tick(force=True)
    ledger.call(registry.create_enterprise, EnterpriseCreate(id=B, name="Owner B"))
    ledger.call(registry.create_gateway, GatewayCreate(id=f"{PREFIX}/gw.own-b",
                                                       enterprise_id=B, name="b"))
    request = {"enterprise": {"id": A, "name": "Owner A"},
               "boundary": {"sites": [{"id": SITE, "name": "mill"}]},
               "period": DAY.model_dump(), "inventory_ids": [receipt["inventory_id"]],
               "prepared_by": "energy office"}
    with client(app, api_key(ledger, Role.ENTERPRISE, [A])) as enterprise_a:
        built = enterprise_a.post("/v1/reports", json=request)
    assert built.status_code == 201, built.text
    yield World(ledger, app, receipt["inventory_id"], run.signed.model_dump(mode="json"),
                built.json()["report_id"], request)
    gw.close()
    ledger.engine.dispose()


def _as(world: World, role: Role, *enterprises: str) -> TestClient:
    return client(world.app, api_key(world.ledger, role, enterprises))


def _reads(world: World) -> list[str]:
    return [f"/v1/inventories/{world.inventory_id}", f"/v1/inventories/{world.inventory_id}/proof",
            f"/v1/reports/{world.report_id}"]


@pytest.mark.parametrize(("role", "enterprises", "allowed"), [
    (Role.ENTERPRISE, (A,), True), (Role.GATEWAY, (A,), True), (Role.BANK, (), True),
    (Role.REGULATOR, (), True), (Role.VERIFIER, (A,), True),
    (Role.ENTERPRISE, (B,), False), (Role.GATEWAY, (B,), False), (Role.VERIFIER, (B,), False),
    (Role.BUYER, (A,), False), (Role.ASSOCIATION, (), False),
])
def test_who_reads_an_inventory_and_its_report(world: World, role: Role,
                                               enterprises: tuple[str, ...],
                                               allowed: bool) -> None:
    with _as(world, role, *enterprises) as http:
        for path in _reads(world):
            if role is Role.GATEWAY and path.startswith("/v1/reports"):
                continue  # a gateway is not among the report's readers at all
            answer = http.get(path)
            if allowed:
                assert answer.status_code == 200, (path, answer.text)
            else:
                assert (answer.status_code, answer.json()["code"]) == (403, "forbidden"), path


def test_another_enterprise_cannot_report_claim_or_resubmit_as_inventory(world: World) -> None:
    with _as(world, Role.ENTERPRISE, B) as b:
        # B's report from A's inventory, and B posing as A: both refused.
        as_b = {**world.report_request, "enterprise": {"id": B, "name": "Owner B"}}
        assert b.post("/v1/reports", json=as_b).status_code == 403
        assert b.post("/v1/reports", json=world.report_request).status_code == 403
        claim = {"consumption_key": f"{B}/x", "inventory_ids": [world.inventory_id],
                 "claims": [{"kind": "gec", "serials": ["GEC-B-1"]}]}
        assert b.post("/v1/offsets/claims", json=claim).json()["code"] == "forbidden"
    with _as(world, Role.GATEWAY, B) as gateway_b:
        # A's signed inventory resubmitted by B's gateway: refused before it is checked.
        answer = gateway_b.post("/v1/inventories", json=world.signed_inventory)
        assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    with _as(world, Role.GATEWAY, A) as gateway_a:
        # The same by A's own gateway is the idempotent resubmission: 200.
        assert gateway_a.post("/v1/inventories", json=world.signed_inventory
                              ).status_code == 200
