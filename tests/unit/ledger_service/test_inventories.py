"""Inventories end to end: gateways sign them, the ledger checks, recomputes, logs and
anchors them, a stranger verifies one from proven readings and the contract.

Real parts throughout: SQLite, the in-process EVM with ``CarbonAnchor`` and a
``RuleRegistry`` holding the default methodology, gateways with real keys and outboxes
talking HTTP to the ledger's ASGI app. The refusals are made the way an attacker would:
edit the signed inventory (and re-sign it with the gateway's real key where the point is
to get past the signature).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from carbon_protocol.errors import BundleVerificationError
from carbon_protocol.inventory import Inventory, SignedInventory, sign_inventory
from carbon_protocol.models import SuiteField
from carbon_rules.errors import ImplausibleFactorError
from carbon_rules.factors import default_draft
from carbon_rules.inventory import InventoryMismatchError
from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
from carbon_rules.inventory_verify import verify_inventory
from carbon_rules.registry_client import RuleRegistryClient
from ledger_service._internal.chain_view_adapter import ClientChainView
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.log_records import list_records
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import Gateway, Organisation
from node_gateway.inventory import InventoryRefusedError, Rules
from node_gateway.simulator import MeterKind
from tests.worlds import DAY, PREFIX, START, api_key, inventory_gateway, rules_app

ENTERPRISE = f"{PREFIX}/ent.inv-test"


@dataclass
class World:
    ledger: Ledger
    app: Any
    a: Gateway
    b: Gateway
    rules: Rules
    association_key: str


def _gateway(tmp: Path, app: Any, site: str, fleet: list[tuple[str, MeterKind]],
             suite: SuiteField) -> Gateway:
    site_id = f"{PREFIX}/site.{site}"
    return inventory_gateway(  # with the gateway's key, for its enterprise
        tmp / f"gw-{site}", app, api_key(app.state.ledger, Role.GATEWAY, [ENTERPRISE]),
        Organisation(ENTERPRISE, "Inventory Test Co.", site_id, site, "Liaoning",
                     f"{PREFIX}/gw.{site}", site),
        [(f"{PREFIX}/dev.{site}.{name}", kind) for name, kind in fleet],
        suite=suite, start=START, days=1.25, seed=len(site))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("inventories")
    ledger, app = rules_app(tmp)
    a = _gateway(tmp, app, "mill", [("elec-01", "electricity"), ("elec-02", "electricity"),
                                    ("heat-01", "heat"), ("gas-01", "gas")], "sm")
    b = _gateway(tmp, app, "yard", [("elec-01", "electricity")], "intl")
    rules = gw_inventory.fetch_rules(a, DEFAULT_METHODOLOGY)
    key = (tmp / "ledger" / "embedded_association_key.hex").read_text().strip()
    yield World(ledger, app, a, b, rules, key)
    a.close()
    b.close()
    ledger.engine.dispose()


def _resign(gw: Gateway, inventory: Inventory, **edits: Any) -> SignedInventory:
    raw = inventory.model_dump(mode="json")
    for path, value in edits.items():
        node: Any = raw
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value
    assert gw.gateway_id is not None
    return sign_inventory(Inventory.model_validate(raw), gw.keystore.load(gw.gateway_id))


def _refused(gw: Gateway, signed: SignedInventory) -> dict[str, Any]:
    with pytest.raises(InventoryRefusedError) as caught:
        gw_inventory.submit(gw, signed)
    problem: dict[str, Any] = caught.value.details["problem"]
    return problem


def test_rules_come_from_the_ledgers_chain(world: World) -> None:
    registry = world.ledger.chain.rule_registry_address
    assert registry is not None and world.rules.registry == registry.lower()
    assert world.rules.chain_id == world.ledger.domain.chain_id
    grid = world.rules.methodology.version(1).factor("ef.grid.CN")
    assert (grid.value, grid.source.startswith("生态环境部")) == (570300000000000000, True)
    # The same chain as the anchors: the registry client reads through the anchor's w3.
    client = world.ledger.rules()
    assert client.version_at(DEFAULT_METHODOLOGY, int(START.timestamp())) == 1


def test_monthly_flow_submit_anchor_prove_and_verify(world: World) -> None:
    run = gw_inventory.compute(world.a, DAY, world.rules)
    inv = run.signed.inventory
    assert [line.readings.device.rsplit(".", 1)[1] for line in inv.lines] == [
        "elec-01", "elec-02", "heat-01"]
    assert "m3" in run.skipped[f"{PREFIX}/dev.mill.gas-01"]
    # 96 readings per meter for a day: intervals ending 00:15 .. 24:00.
    assert all(line.readings.count == 96 for line in inv.lines)
    assert inv.quality.readings == 288 and inv.quality.sequence_gaps == 0
    receipt = gw_inventory.submit(world.a, run.signed)
    assert receipt["total"] == inv.totals.total
    assert receipt["inventory_id"].startswith(f"{PREFIX}/inv.")
    assert gw_inventory.submit(world.a, run.signed) == receipt  # idempotent
    stored = world.ledger.inventory(receipt["inventory_id"])
    assert stored.signed_inventory == run.signed
    assert world.ledger.leaf_hash(receipt["leaf_index"]).hex() == receipt["leaf_hash"]

    world.ledger.anchor_tick(force=True)
    proof = world.ledger.inventory_proof(receipt["inventory_id"], with_readings=True)
    assert proof.readings is not None and len(proof.readings.readings) == 288
    report = verify_inventory(proof, world.ledger.rules(),
                              chain=ClientChainView(world.ledger.chain))
    assert report.readings == 288 and report.chain_checked and report.signatures_checked
    assert len(proof.readings.device_keys) == 3
    assert report.on_chain == {line.line: line.emissions for line in inv.lines}

    # A verifier handed a proof whose reading was altered finds it at the readings step.
    raw = proof.model_dump(mode="json")
    value = raw["readings"]["readings"][5]["reading"]["value"]
    raw["readings"]["readings"][5]["reading"]["value"] = value + "1"
    with pytest.raises(BundleVerificationError, match="step 7 \\(readings\\)"):
        verify_inventory(type(proof).model_validate(raw), world.ledger.rules())

    # Without the device keys the signatures cannot be checked: refused unless the
    # verifier says it settles for readings proven to be in the log.
    raw = proof.model_dump(mode="json")
    raw["readings"]["device_keys"] = raw["readings"]["device_keys"][1:]
    keyless = type(proof).model_validate(raw)
    with pytest.raises(BundleVerificationError, match="carries no key"):
        verify_inventory(keyless, world.ledger.rules())
    assert not verify_inventory(keyless, world.ledger.rules(),
                                check_signatures=False).signatures_checked
    # A key revoked before the anchor: its readings no longer count.
    raw["readings"]["device_keys"] = [
        {**k, "revoked_at": "2026-10-01T00:00:00Z"}
        for k in proof.model_dump(mode="json")["readings"]["device_keys"]]
    with pytest.raises(BundleVerificationError, match="not valid when the tree head"):
        verify_inventory(type(proof).model_validate(raw), world.ledger.rules())


def test_http_routes(world: World) -> None:
    run = gw_inventory.compute(world.b, DAY, world.rules)
    client = world.a.client
    resp = client.call("POST", "/v1/inventories", run.signed.model_dump(mode="json"))
    assert resp.status == 201
    ident = resp.body["inventory_id"]
    got = client.call("GET", f"/v1/inventories/{ident}")
    assert got.status == 200 and got.body["receipt"]["inventory_id"] == ident
    not_yet = client.call("GET", f"/v1/inventories/{ident}/proof")
    assert (not_yet.status, not_yet.body["code"]) == (404, "not_found")
    world.ledger.anchor_tick(force=True)
    proof = client.call("GET", f"/v1/inventories/{ident}/proof?readings=true")
    assert proof.status == 200 and len(proof.body["readings"]["indices"]) == 96
    bad = client.call("POST", "/v1/inventories", {"inventory": {}, "signature": "00"})
    assert (bad.status, bad.body["code"]) == (422, "invalid_input")


def test_tampered_inventory_fails_the_signature(world: World) -> None:
    run = gw_inventory.compute(world.a, DAY, world.rules)
    raw = run.signed.model_dump(mode="json")
    raw["inventory"]["lines"][0]["emissions"] = "0.001"
    problem = _refused(world.a, SignedInventory.model_validate(raw))
    assert problem["code"] == "bad_signature"


def test_tampered_and_resigned_inventory_fails_recomputation(world: World) -> None:
    run = gw_inventory.compute(world.a, DAY, world.rules)
    signed = _resign(world.a, run.signed.inventory, lines__1__emissions="1.5")
    problem = _refused(world.a, signed)
    assert problem["code"] == "inventory_mismatch"
    assert problem["details"]["line"] == 2 and problem["details"]["field"] == "emissions"
    assert problem["details"]["claimed"] == "1.5"
    assert problem["details"]["recomputed"] == run.signed.inventory.lines[1].emissions


def test_readings_missing_from_the_claimed_range(world: World) -> None:
    run = gw_inventory.compute(world.a, DAY, world.rules)
    line = run.signed.inventory.lines[0].readings
    beyond = world.ledger.tree_size() + 10
    leaves = [r.model_dump() for r in line.leaves[:-1]]
    last = line.leaves[-1]
    leaves.append({"first": beyond, "last": beyond + last.last - last.first, "step": last.step})
    problem = _refused(world.a, _resign(world.a, run.signed.inventory,
                                        lines__0__readings__leaves=leaves))
    assert problem["code"] == "missing_readings"
    assert problem["details"]["missing"][0] == beyond


def test_a_leaf_of_another_device_is_refused(world: World) -> None:
    run = gw_inventory.compute(world.a, DAY, world.rules)
    first, second = run.signed.inventory.lines[0], run.signed.inventory.lines[1]
    swapped = [r.model_dump() for r in second.readings.leaves]
    problem = _refused(world.a, _resign(world.a, run.signed.inventory,
                                        lines__0__readings__leaves=swapped))
    assert problem["code"] == "missing_readings"
    assert "is a reading of" in problem["message"] and first.readings.device in problem[
        "message"]


def test_readings_left_out_are_refused(world: World) -> None:
    # A gateway that drops its highest reading and computes honestly from the rest.
    device = f"{PREFIX}/dev.mill.elec-01"
    by_device = gw_inventory.logged_readings(world.a, [device], DAY)
    top = max(by_device[device], key=lambda r: float(r.reading.value))
    by_device[device].remove(top)
    from carbon_rules.inventory import compute_inventory

    key = world.a.keystore.load(world.a.gateway_id or "")
    domain = world.a.outbox.domain()
    assert domain is not None
    inv = compute_inventory(world.rules.methodology, DAY, by_device,
                            chain_id=world.rules.chain_id, registry=world.rules.registry,
                            gateway=world.a.gateway_id or "", domain=domain,
                            suite=key.suite, key_id=key.public_key().key_id)
    problem = _refused(world.a, sign_inventory(inv, key))
    assert problem["code"] == "readings_omitted"
    assert (problem["details"]["claimed"], problem["details"]["held"]) == (95, 96)


def test_another_gateways_devices_are_refused(world: World) -> None:
    # Gateway B signs an inventory of gateway A's meter, with B's own registered key.
    run = gw_inventory.compute(world.a, DAY, world.rules,
                               devices=[f"{PREFIX}/dev.mill.elec-01"])
    b_key = world.b.keystore.load(world.b.gateway_id or "")
    raw = run.signed.inventory.model_dump(mode="json")
    raw.update(gateway=world.b.gateway_id, suite=b_key.suite,
               key_id=b_key.public_key().key_id)
    problem = _refused(world.b, sign_inventory(Inventory.model_validate(raw), b_key))
    assert problem["code"] == "device_not_of_gateway"
    assert problem["details"]["device"] == f"{PREFIX}/dev.mill.elec-01"


def test_measured_factor_outside_its_plausible_range(world: World) -> None:
    device = f"{PREFIX}/dev.mill.elec-01"
    with pytest.raises(InventoryRefusedError) as at_gateway:
        gw_inventory.compute(world.a, DAY, world.rules, devices=[device],
                             measured={device: {"ef.grid.CN": 570_300_000_000_000_000_000}})
    assert at_gateway.value.details["code"] == ImplausibleFactorError.code
    run = gw_inventory.compute(world.a, DAY, world.rules, devices=[device])
    factor = {**run.signed.inventory.lines[0].factors[0].model_dump(), "measured": True,
              "value": "570.3"}
    problem = _refused(world.a, _resign(world.a, run.signed.inventory,
                                        lines__0__factors=[factor]))
    assert problem["code"] == "implausible_factor"
    assert problem["details"]["error"] == "RuleRegistryFactorOutOfRange"


def test_rule_version_not_yet_in_force_on_the_period(world: World) -> None:
    # The association publishes v2 effective in an hour; an inventory of October that
    # claims v2 is refused with the contract's error.
    association = RuleRegistryClient(world.ledger.chain.w3, world.rules.registry,
                                     world.association_key)
    if association.version_count(DEFAULT_METHODOLOGY) < 2:
        association.publish_version(DEFAULT_METHODOLOGY, int(time.time()) + 3600,
                                    default_draft("v2: same factors, later"))
    run = gw_inventory.compute(world.a, DAY, world.rules,
                               devices=[f"{PREFIX}/dev.mill.heat-01"])
    v2 = world.ledger.methodology(DEFAULT_METHODOLOGY).version(2)
    problem = _refused(world.a, _resign(world.a, run.signed.inventory, rule__version=2,
                                        rule__parameters_hash=v2.parameters_hash.hex()))
    assert problem["code"] == "version_not_yet_in_force"
    assert problem["details"]["error"] == "RuleRegistryVersionNotYetInForce"
    # v1 still applies to October: the honest inventory is accepted.
    gw_inventory.submit(world.a, run.signed)


def test_a_verifier_with_another_registry_is_told_so(world: World) -> None:
    run = gw_inventory.compute(world.b, DAY, world.rules)
    receipt = gw_inventory.submit(world.b, run.signed)
    world.ledger.anchor_tick(force=True)
    proof = world.ledger.inventory_proof(receipt["inventory_id"], with_readings=True)
    other = RuleRegistryClient.embedded()
    with pytest.raises(InventoryMismatchError, match="registry"):
        verify_inventory(proof, other)


def test_a_revoked_gateway_key_signs_no_more_inventories(
        world: World, tmp_path: Path) -> None:
    shed = _gateway(tmp_path, world.app, "shed", [("elec-01", "electricity")], "intl")
    try:
        pub = gw_inventory.ensure_gateway_key(shed)
        gw_id = shed.gateway_id
        client = shed.client
        wrong = client.call("POST", f"/v1/gateways/{gw_id}/keys/{'0' * 16}/revoke",
                            {"reason": "lost"})
        assert (wrong.status, wrong.body["code"]) == (404, "not_found")
        revoked = client.call("POST", f"/v1/gateways/{gw_id}/keys/{pub.key_id}/revoke",
                              {"reason": "gateway stolen", "revoked_at": "2026-10-05T12:00:00Z"})
        assert revoked.status == 200 and revoked.body["revoked_at"] == "2026-10-05T12:00:00Z"
        later = client.call("POST", f"/v1/gateways/{gw_id}/keys/{pub.key_id}/revoke",
                            {"reason": "again", "revoked_at": "2026-10-06T00:00:00Z"})
        assert later.body["revoked_at"] == "2026-10-05T12:00:00Z"  # the earlier time stays
        records = list_records(world.ledger, kinds=("gateway_key_revoked",))
        mine = [r.document for r in records if r.document["gateway"] == gw_id]
        assert mine == [{"format": "carbon-ledger/gateway-key-revocation/v1",
                         "gateway": gw_id, "key_id": pub.key_id,
                         "revoked_at": "2026-10-05T12:00:00Z", "reason": "gateway stolen"}]
        run = gw_inventory.compute(shed, DAY, world.rules)
        problem = _refused(shed, run.signed)
        assert problem["code"] == "revoked_key" and problem["details"]["key_id"] == pub.key_id
    finally:
        shed.close()


def test_corrected_gas_in_nm3_is_accounted_and_the_ledger_agrees(
        world: World, tmp_path: Path) -> None:
    """A gas meter behind a volume corrector (Nm3) gets a scope-1 fuel combustion line.

    96 intervals of 10 Nm3 = 960 Nm3 = 0.096 x 10^4 Nm3; with the methodology's natural
    gas factors, E = 0.096 x 389.31 GJ x 0.0153 tC/GJ x 0.99 x 44/12:
    0.096 x 389.31 = 37.37376; x 0.0153 = 0.571818528; x 0.99 = 0.56610034272;
    x 44 = 24.90841507968; / 12 = 2.07570125664 tCO2, exact. The ledger recomputes the
    line and accepts it, and the RuleRegistry contract computes the same emissions."""
    site = "boiler"
    device = f"{PREFIX}/dev.{site}.gas-nm3-01"
    gw = inventory_gateway(
        tmp_path / "gw-boiler", world.app, api_key(world.ledger, Role.GATEWAY, [ENTERPRISE]),
        Organisation(ENTERPRISE, "Inventory Test Co.", f"{PREFIX}/site.{site}", site,
                     "Liaoning", f"{PREFIX}/gw.{site}", site),
        [(device, "gas_corrected")], suite="sm", start=START, days=0, seed=0)
    try:
        rows = ["device,measured_at,quantity,unit,value,cumulative,quality"]
        for n in range(1, 97):
            at = START + timedelta(minutes=15 * n)
            rows.append(f"{device},{at:%Y-%m-%dT%H:%M:%SZ},gas_volume,Nm3,10.000,"
                        f"{5000 + 10 * n}.000,measured")
        csv_path = tmp_path / "corrector.csv"
        csv_path.write_text("\n".join(rows) + "\n")
        assert gw.import_csv(csv_path).recorded == 96
        gw.flush()
        run = gw_inventory.compute(gw, DAY, world.rules)
        assert run.skipped == {}
        (line,) = run.signed.inventory.lines
        assert (line.source, line.scope) == ("fuel_combustion", 1)
        activity = line.activity
        assert (Decimal(activity.metered), activity.metered_unit) == (Decimal(960), "Nm3")
        assert (Decimal(activity.value), activity.unit) == (Decimal("0.096"), "10^4Nm3")
        assert [f.id for f in line.factors] == [
            "ncv.natural_gas", "cc.natural_gas", "of.natural_gas"]
        assert Decimal(line.emissions) == Decimal("2.07570125664")
        totals = run.signed.inventory.totals
        assert Decimal(totals.scope1) == Decimal(line.emissions) and Decimal(totals.scope2) == 0
        receipt = gw_inventory.submit(gw, run.signed)
        assert Decimal(receipt["total"]) == Decimal("2.07570125664")
        world.ledger.anchor_tick(force=True)
        proof = world.ledger.inventory_proof(receipt["inventory_id"], with_readings=True)
        report = verify_inventory(proof, world.ledger.rules(),
                                  chain=ClientChainView(world.ledger.chain))
        assert report.readings == 96 and report.on_chain == {line.line: line.emissions}
    finally:
        gw.close()
