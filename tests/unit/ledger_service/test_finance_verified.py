"""A month is verified only when every inventory graded for it is attested.

One enterprise, two gateways (two sites), each submitting its January inventory; the
grade sums both. Attestations are written as the verification workflow writes them
(records of kind ``attestation`` naming the inventory and its verdict). One attested
inventory of two leaves January unverified; both attested verify it; a ``reject`` of
either makes it unverified again, whatever else was attested."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carbon_rules.inventory import period_from_label
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.log_records import append_record
from ledger_service.verification.workflow import attested_inventories, attested_periods
from node_gateway.gateway import Organisation
from tests.worlds import api_key, inventory_gateway, rules_app, submit_inventory

P = "86.1000.1"
TWIN = f"{P}/ent.twin"
CONFIG = {
    "timezone": "UTC",
    "finance": {"valid_days": 30},
    "benchmarks": [{"industry": "crude steel", "value": "0.5", "unit": "tCO2e/t",
                    "source": "test"}],
    "industries": {TWIN: "crude steel"},
}


@dataclass
class World:
    ledger: Ledger
    app: Any
    admin: str
    inventories: list[str]
    """The January inventory of each gateway."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("verified")
    ledger, app = rules_app(tmp, prefix=P, finance=CONFIG)
    admin = api_key(ledger, Role.ADMIN)
    gateways, ids = [], []
    for site in ("east", "west"):
        gw = inventory_gateway(
            tmp / f"gw-{site}", app, admin,
            Organisation(TWIN, "Twin", f"{P}/site.{site}", site, "Liaoning",
                         f"{P}/gw.twin-{site}", site),
            [(f"{P}/dev.{site}.elec-01", "electricity")],
            suite="intl", start=datetime(2026, 1, 5, tzinfo=UTC), days=1, seed=7)
        run, _ = submit_inventory(gw, period_from_label("2026-01"))
        ids.append(ledger.submit_inventory(run.signed)[1].inventory_id)
        gateways.append(gw)
    client = TestClient(app, headers={"Authorization": f"Bearer {admin}"})
    put = client.put(f"/v1/finance/output/{TWIN}/2026-01", json={"value": "10", "unit": "t"})
    assert put.status_code == 201, put.json()
    yield World(ledger, app, admin, ids)
    for gw in gateways:
        gw.close()
    ledger.engine.dispose()


def _verdict(world: World, inventory_id: str, verdict: str) -> None:
    """A verdict as the workflow records it (the fields finance reads)."""
    append_record(world.ledger, kind="attestation", record_id=f"{P}/att.{secrets.token_hex(8)}",
                  enterprise_id=TWIN, document={"attestation": {
                      "inventory_id": inventory_id, "verdict": verdict,
                      "period": period_from_label("2026-01").model_dump()}})


def _fired(world: World) -> list[str]:
    client = TestClient(world.app, headers={"Authorization": f"Bearer {world.admin}"})
    got = client.get(f"/v1/finance/eligibility/{TWIN}", params={"period": "2026-01"})
    assert got.status_code == 200, got.json()
    body = got.json()
    assert len(body["inventories"]) == 2  # both gateways' emissions are graded
    return [r["rule"] for r in body["integrity"]["fired"]]


def test_every_graded_inventory_must_be_attested(world: World) -> None:
    east, west = world.inventories
    assert "unverified_periods" in _fired(world)
    _verdict(world, east, "attest")
    assert set(attested_inventories(world.ledger, TWIN)) == {east}
    assert "unverified_periods" in _fired(world)  # west's January was never verified
    _verdict(world, west, "attest")
    assert "unverified_periods" not in _fired(world)
    assert len(attested_periods(world.ledger, TWIN)) == 1  # one period, once
    _verdict(world, west, "reject")
    assert set(attested_inventories(world.ledger, TWIN)) == {east}
    assert "unverified_periods" in _fired(world)  # a rejection is not outvoted
