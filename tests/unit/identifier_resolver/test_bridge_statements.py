"""Reports, attestations and data grants reach the custody graph.

One ledger on real parts (SQLite, the in-process EVM with ``CarbonAnchor``, a
``RuleRegistry`` and a ``DataMarket``): a gateway with real keys computes and signs a
day's inventory, the ledger builds a report on it, a registered verifier attests it,
and the owner lists the meters' readings of the day and grants them to a buyer. After
each final anchor the bridge registers what the window holds; the tests check the
records and their links, that a second sync registers nothing, that a revocation makes
the grant's record final, and custody walks that cross all of them.

The module's tests run in order: the last two revoke the grant and log a damaged one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from carbon_protocol.envelope import RecipientPrivateKey
from carbon_protocol.suites import PrivateKey
from identifier_resolver._cli import app as cli
from identifier_resolver.bridge import BridgeReport, attestation_id, range_id, sync_ledger
from identifier_resolver.custody import reading_count
from identifier_resolver.errors import DeactivatedError
from identifier_resolver.models import CustodyGraph, Record, TrustRoot
from identifier_resolver.resolver import Resolver
from identifier_resolver.verify import verify_answer
from ledger_service import registry
from ledger_service._internal.db import anchors
from ledger_service._internal.db import readings as readings_table
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.log_records import append_record
from ledger_service.models import EnterpriseCreate
from ledger_service.reports import ReportRequest, build
from ledger_service.verification.evidence import sample_evidence
from ledger_service.verification.keys import VerifierKeyCreate, register_key
from ledger_service.verification.verifier import draft_attestation
from ledger_service.verification.workflow import (
    VerificationOpen,
    open_verification,
    submit_attestation,
)
from node_gateway.gateway import Organisation
from tests.worlds import (
    DAY,
    PREFIX,
    START,
    api_key,
    client,
    inventory_gateway,
    rules_app,
    submit_inventory,
)

LOG = f"{PREFIX}/log.main"
ENTERPRISE = f"{PREFIX}/ent.custody-co"
BUYER = f"{PREFIX}/ent.custody-buyer"
SITE = f"{PREFIX}/site.custody"
VERIFIER = f"{PREFIX}/vfr.custody"
METERS = [f"{PREFIX}/dev.custody.elec-1", f"{PREFIX}/dev.custody.gas-1"]


@dataclass
class World:
    ledger: Ledger
    app: Any
    inventory_id: str
    used: int
    """Readings the inventory's lines use."""
    report_id: str
    report_hash: str
    verification_id: str
    attestation_leaf_hash: str
    grant_id: str
    grant: dict[str, Any]

    def client(self, role: Role, enterprise: str) -> TestClient:
        return client(self.app, api_key(self.ledger, role, [enterprise]))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bridge-statements")
    ledger, app = rules_app(tmp)
    gw = inventory_gateway(
        tmp / "gw", app, api_key(ledger, Role.GATEWAY, [ENTERPRISE]),
        Organisation(ENTERPRISE, "Custody Co.", SITE, "works", "Hebei",
                     f"{PREFIX}/gw.custody", "works"),
        [(METERS[0], "electricity"), (METERS[1], "gas")],
        suite="sm", start=START, days=1.25, seed=21)
    try:
        run, receipt = submit_inventory(gw, DAY)
    finally:
        gw.close()
    ledger.anchor_tick(force=True)
    inventory_id = str(receipt["inventory_id"])
    _, built = build(ledger, ReportRequest.model_validate({
        "enterprise": {"id": ENTERPRISE, "name": "Custody Co."},
        "boundary": {"sites": [{"id": SITE, "name": "works"}]},
        "period": DAY.model_dump(), "inventory_ids": [inventory_id],
        "prepared_by": "custody test"}))

    key = PrivateKey.generate("intl")
    register_key(ledger, VerifierKeyCreate(verifier=VERIFIER, suite="intl",
                                           public_key=key.public_key().hex()))
    status = open_verification(ledger, VerificationOpen(
        inventory_id=inventory_id, verifier=VERIFIER, sample_size=4))
    vid = status.verification_id
    signed = draft_attestation(sample_evidence(ledger, vid), status, verifier=VERIFIER,
                               key=key, verdict="attest")
    _, attested = submit_attestation(ledger, vid, signed)  # appends and anchors

    ledger.call(registry.create_enterprise, EnterpriseCreate(id=BUYER, name="Buyer Co."))
    w = World(ledger, app, inventory_id, sum(line.readings.count
                                             for line in run.signed.inventory.lines),
              built.report_id, built.hash, vid, attested.record.leaf_hash, "", {})
    owner = w.client(Role.ENTERPRISE, ENTERPRISE)
    listed = owner.post("/v1/market/datasets", json={
        "owner": ENTERPRISE, "scene": "accounting", "title": "the day's meters",
        "description": "electricity and gas, 15 min", "devices": METERS,
        "period_from": DAY.start, "period_to": DAY.end})
    assert listed.status_code == 201, listed.text
    buyer_key = RecipientPrivateKey.generate("intl").public_key()
    requested = w.client(Role.BUYER, BUYER).post(
        f"/v1/market/datasets/{listed.json()['dataset_id']}/requests",
        json={"buyer": BUYER, "purpose": "supplier carbon footprint",
              "recipient_key": {"suite": "intl", "public_key": buyer_key.hex()}})
    assert requested.status_code == 201, requested.text
    granted = owner.post(f"/v1/market/requests/{requested.json()['request_id']}/grant",
                         json={"expires_at": "2099-01-01T00:00:00Z"})
    assert granted.status_code in (200, 201), granted.text
    w.grant_id, w.grant = granted.json()["grant_id"], granted.json()
    ledger.anchor_tick(force=True)
    yield w
    ledger.engine.dispose()


def _sync(world: World, root: Resolver, owner: PrivateKey) -> BridgeReport:
    return sync_ledger(world.ledger, root, {PREFIX: owner})


def _record(root: Resolver, trust: TrustRoot, ident: str) -> Record:
    answer = root.resolve(ident)
    verify_answer(answer, trust, query=ident)
    return answer.record.record


def _targets(record: Record, rel: str) -> list[str]:
    assert {link.rel for link in record.links} == {rel}
    return [link.target for link in record.links]


def _walk(root: Resolver, ident: str, direction: str, depth: int) -> CustodyGraph:
    graph = root.custody(ident, direction, depth)  # type: ignore[arg-type]
    assert isinstance(graph, CustodyGraph)
    return graph


def test_reports_attestations_and_grants_are_registered_with_their_links(
        world: World, root: Resolver, owner: PrivateKey, trust: TrustRoot) -> None:
    report = _sync(world, root, owner)
    assert (report.by_type["report"], report.by_type["attestation"],
            report.by_type["grant"]) == (1, 1, 1)
    assert report.unreadable == [] and report.skipped == []

    rep = _record(root, trust, world.report_id)
    assert rep.type == "report" and rep.owner == ENTERPRISE
    assert rep.hash is not None and (rep.hash.alg, rep.hash.value) == ("sm3", world.report_hash)
    assert _targets(rep, "summarises") == [world.inventory_id]
    assert rep.data["period"] == DAY.label and rep.data["inventories"] == 1

    att = _record(root, trust, attestation_id(world.verification_id))
    assert att.type == "attestation" and att.owner == VERIFIER
    assert att.hash is not None and att.hash.value == world.attestation_leaf_hash
    assert _targets(att, "attests") == [world.inventory_id]
    assert (att.data["verdict"], att.data["verifier"], att.data["verification"],
            att.data["record_id"]) == ("attest", VERIFIER, world.verification_id,
                                       f"{world.verification_id}/attestation")

    grant = _record(root, trust, world.grant_id)
    assert grant.type == "grant" and grant.owner == ENTERPRISE and grant.status == "active"
    assert (grant.data["buyer"], grant.data["kind"], grant.data["expires_at"],
            grant.data["state"]) == (BUYER, "grant", "2099-01-01T00:00:00Z", "granted")
    assert isinstance(grant.data["purpose_hash"], str) and len(grant.data["purpose_hash"]) == 64
    ranges = _targets(grant, "grants_access_to")
    # The first final anchor covers every reading of the day: one range per meter.
    end = _first_anchor(world)
    assert sorted(ranges) == sorted(range_id(LOG, m, 0, end) for m in METERS)
    assert {_record(root, trust, r).data["device"] for r in ranges} == set(METERS)

    again = _sync(world, root, owner)
    assert (again.registered, again.updated, again.deactivated, again.windows) == (0, 0, 0, 0)


def test_custody_walks_cross_reports_attestations_and_grants(
        world: World, root: Resolver, owner: PrivateKey) -> None:
    _sync(world, root, owner)
    # A meter's readings, walked up: the inventory, report and attestation built on
    # them and the grant that sells them.
    first = _walk(root, METERS[0], "down", 1)
    (meter_range,) = [n.id for n in first.nodes if n.type == "reading_range"]
    up = _walk(root, meter_range, "up", 3)
    found = {n.type: n.id for n in up.nodes if n.type in (
        "inventory", "report", "attestation", "grant")}
    assert found == {"inventory": world.inventory_id, "report": world.report_id,
                     "attestation": attestation_id(world.verification_id),
                     "grant": world.grant_id}
    assert {e.rel for e in up.edges} >= {"computed_from", "summarises", "attests",
                                         "grants_access_to"}
    # The same walk on the command line, against the node's database.
    s = root.settings
    env = {"RESOLVER_DATA_DIR": str(s.data_dir), "RESOLVER_ROOT": "true",
           "RESOLVER_TRUST_ROOT_KEY": str(s.trust_root_key),
           "RESOLVER_LOG_PREFIX": str(s.log_prefix), "RESOLVER_LOG_SUITE": s.log_suite,
           "RESOLVER_NODE_ID": s.node_id}
    out = CliRunner().invoke(cli, ["custody", meter_range, "--direction", "up", "--depth", "3",
                                   "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert {n["id"] for n in json.loads(out.stdout)["nodes"]} >= set(found.values())
    # Down from the report, and from the enterprise, to the readings.
    down = _walk(root, world.report_id, "down", 2)
    assert {n.type for n in down.nodes} == {"report", "inventory", "reading_range"}
    assert reading_count(down) >= world.used > 0
    from_enterprise = _walk(root, ENTERPRISE, "down", 3)
    reached = {n.id for n in from_enterprise.nodes if n.type == "reading_range"}
    assert reached >= {n.id for n in down.nodes if n.type == "reading_range"}
    with world.ledger.reader.connect() as conn:
        logged = conn.execute(select(func.count()).select_from(readings_table)).scalar_one()
    assert reading_count(from_enterprise) == logged == 2 * 120  # 1.25 days, two meters
    # Down from the grant: exactly the dataset's meters' ranges.
    sold = _walk(root, world.grant_id, "down", 1)
    assert {n.data["device"] for n in sold.nodes if n.type == "reading_range"} == set(METERS)


def test_a_revocation_makes_the_grant_record_final(
        world: World, root: Resolver, owner: PrivateKey) -> None:
    assert _sync(world, root, owner).by_type["grant"] == 1
    revoked = world.client(Role.ENTERPRISE, ENTERPRISE).post(
        f"/v1/market/grants/{world.grant_id}/revoke", json={"reason": "contract ended"})
    assert revoked.status_code == 200, revoked.text
    world.ledger.anchor_tick(force=True)

    report = _sync(world, root, owner)
    assert (report.windows, report.deactivated, report.by_type["grant"]) == (1, 1, 0)
    with pytest.raises(DeactivatedError) as raised:
        root.resolve(world.grant_id)
    assert "contract ended" in str(raised.value)
    # The custody graph still shows the grant, as revoked, with its revocation.
    up = _walk(root, range_id(LOG, METERS[1], 0, _first_anchor(world)), "up", 1)
    (node,) = [n for n in up.nodes if n.id == world.grant_id]
    assert node.status == "deactivated" and node.data["state"] == "revoked"
    assert node.data["revocation"] == revoked.json()["revocation_record_id"]
    assert node.data["revoked_at"] == revoked.json()["revoked_at"]
    assert node.version == 2

    again = _sync(world, root, owner)
    assert (again.registered, again.updated, again.deactivated, again.windows) == (0, 0, 0, 0)


def _first_anchor(world: World) -> int:
    with world.ledger.reader.connect() as conn:
        size = conn.execute(select(func.min(anchors.c.tree_size)).where(
            anchors.c.status == "final")).scalar_one()
    return int(size)


def test_a_statement_whose_document_is_damaged_is_named_not_registered(
        world: World, root: Resolver, owner: PrivateKey) -> None:
    broken = f"{PREFIX}/dg.damaged"
    append_record(world.ledger, kind="data_grant", record_id=broken, enterprise_id=ENTERPRISE,
                  document={"format": "carbon-ledger/data-grant/v1", "grant": broken,
                            "dataset": f"{PREFIX}/ds.never-listed", "buyer": BUYER})
    world.ledger.anchor_tick(force=True)
    report = _sync(world, root, owner)
    assert report.unreadable == [broken]
    assert broken not in root.current_records([broken])
    # Everything else is registered, and a fresh node learns the grant and its
    # revocation in one run.
    assert (report.by_type["report"], report.by_type["attestation"],
            report.by_type["grant"], report.deactivated) == (1, 1, 1, 1)
    assert root.current_records([world.grant_id])[world.grant_id].record.status == \
        "deactivated"
