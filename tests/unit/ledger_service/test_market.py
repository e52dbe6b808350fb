"""The marketplace through the HTTP API on real parts: SQLite, the in-process EVM with
``DataMarket`` beside ``CarbonAnchor``, real device keys, real envelopes.

One ledger per module (opening one with rules costs seconds); the tests run in order and
the last one moves the chain's clock forward."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from carbon_protocol import merkle
from carbon_protocol.canonical import canonical_json
from carbon_protocol.data_delivery import (
    DELIVERY_STEPS,
    DataDelivery,
    DeliveryVerificationError,
    content_hash,
    verify_delivery,
)
from carbon_protocol.envelope import Envelope, RecipientPrivateKey, open_
from carbon_protocol.inventory import leaf_set_proof_nodes
from carbon_protocol.models import Reading, SignedReading, format_utc, parse_utc
from carbon_protocol.signing import leaf_bytes, sign_reading
from carbon_protocol.suites import PrivateKey, hash_fn
from ledger_service import registry
from ledger_service._cli import app as cli
from ledger_service._internal.chain_view_adapter import ClientChainView
from ledger_service._internal.db import readings
from ledger_service.api import create_app
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.log_records import list_records, record_proof
from ledger_service.market.contract import DataMarketClient
from ledger_service.market.delivery import open_delivery
from ledger_service.models import (
    DeviceCreate,
    DeviceKeyCreate,
    EnterpriseCreate,
    SiteCreate,
)
from ledger_service.settings import Settings
from tests.worlds import api_key, client

P = "86.1000.1"
OWNER, BUYER, OTHER = f"{P}/ent.owner", f"{P}/ent.buyer", f"{P}/ent.other"
BANK_PARTY = f"{P}/bank.test"
PERIOD = {"period_from": "2026-03-01T00:00:00Z", "period_to": "2026-03-02T00:00:00Z"}


@dataclass
class World:
    ledger: Ledger
    app: Any
    devices: list[str]
    in_period: set[str]
    out_of_period: str
    keys: dict[str, RecipientPrivateKey]
    state: dict[str, Any]

    def as_(self, role: Role, enterprise: str | None = None) -> TestClient:
        enterprises = [] if enterprise is None else [enterprise]
        party = BANK_PARTY if role is Role.BANK else None
        return client(self.app, api_key(self.ledger, role, enterprises, party))

    def market(self) -> DataMarketClient:
        assert self.ledger.data_market_address is not None
        return DataMarketClient(self.ledger.chain, self.ledger.data_market_address)


def _device(ledger: Ledger, name: str, site: str) -> tuple[str, PrivateKey]:
    ident = f"{P}/dev.{name}"
    ledger.call(registry.create_device, DeviceCreate(
        id=ident, site_id=site, quantity="active_energy", unit="kWh", serial=name))
    key = PrivateKey.generate("sm")
    ledger.call(registry.add_device_key, ident, DeviceKeyCreate(
        suite="sm", public_key=key.public_key().hex(), valid_from="2026-01-01T00:00:00Z"))
    return ident, key


def _read(ledger: Ledger, device: str, key: PrivateKey, seq: int, at: str) -> str:
    reading = Reading(suite="sm", key_id=key.public_key().key_id, device=device, seq=seq,
                      measured_at=at, quantity="active_energy", unit="kWh", value=str(seq),
                      cumulative=str(100 + seq), quality="measured",
                      salt=secrets.token_hex(16), domain=ledger.domain)
    _, receipt = ledger.ingest_one(sign_reading(reading, key))
    return receipt.reading_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("market")
    ledger = Ledger.open(Settings(data_dir=tmp / "ledger", prefix=P, log_id=f"{P}/log.main",
                                  log_suite="sm"), rules=True)
    for ent, site in ((OWNER, "owner"), (BUYER, "buyer"), (OTHER, "other")):
        ledger.call(registry.create_enterprise, EnterpriseCreate(id=ent, name=ent))
        ledger.call(registry.create_site, SiteCreate(id=f"{P}/site.{site}", enterprise_id=ent,
                                                     name=site, region="Hebei"))
    devices, in_period = [], set()
    for n in range(2):
        ident, key = _device(ledger, f"m{n}", f"{P}/site.owner")
        devices.append(ident)
        for seq in range(1, 5):
            in_period.add(_read(ledger, ident, key, seq, f"2026-03-01T0{seq}:00:00Z"))
        if n == 0:
            # Ends the interval before the period: excluded, as from inventories.
            out = _read(ledger, ident, key, 5, "2026-03-01T00:00:00Z")
    ledger.anchor_tick(force=True)
    keys = {"intl": RecipientPrivateKey.generate("intl"),
            "sm": RecipientPrivateKey.generate("sm")}
    yield World(ledger, create_app(ledger), devices, in_period, out, keys, {})
    ledger.engine.dispose()


def _dataset(world: World) -> str:
    if "dataset" not in world.state:
        owner = world.as_(Role.ENTERPRISE, OWNER)
        r = owner.post("/v1/market/datasets", json={
            "owner": OWNER, "scene": "accounting", "title": "March electricity, 15 min",
            "description": "two meters, one day", "devices": world.devices, **PERIOD})
        assert r.status_code == 201, r.text
        world.state["dataset"] = r.json()
    return str(world.state["dataset"]["dataset_id"])


def _request(world: World, suite: str = "intl", buyer: str = BUYER) -> str:
    r = world.as_(Role.BUYER, buyer).post(
        f"/v1/market/datasets/{_dataset(world)}/requests",
        json={"buyer": buyer, "purpose": "supplier carbon footprint",
              "recipient_key": {"suite": suite,
                                "public_key": world.keys[suite].public_key().hex()}})
    assert r.status_code == 201, r.text
    return str(r.json()["request_id"])


def _grant(world: World, request_id: str, **body: Any) -> Any:
    body.setdefault("expires_at", "2099-01-01T00:00:00Z")
    return world.as_(Role.ENTERPRISE, OWNER).post(f"/v1/market/requests/{request_id}/grant",
                                                  json=body)


def test_listing_is_on_chain_logged_and_in_the_window(world: World) -> None:
    dataset_id = _dataset(world)
    listed = world.state["dataset"]
    assert listed["metadata"]["readings"] == len(world.in_period) == 8
    assert [d["readings"] for d in listed["metadata"]["devices"]] == [4, 4]
    leaves = []
    with world.ledger.reader.connect() as conn:
        for rid in sorted(world.in_period):
            leaves.append(world.ledger.export_proof(rid))
        del conn
    expected = content_hash("sm", [bytes.fromhex(b.leaf_hash) for b in
                                   sorted(leaves, key=lambda b: b.leaf_index)])
    assert listed["content_hash"] == expected.hex()
    on_chain = world.market().listing(dataset_id)
    assert (on_chain.content_hash, on_chain.scene) == (expected.hex(), "accounting")
    window = world.as_(Role.BUYER, BUYER).get("/v1/market/datasets", params={"scene": "accounting"})
    assert window.status_code == 200
    assert [d["dataset_id"] for d in window.json()] == [dataset_id]
    assert "signed_reading" not in window.text and "leaf_data" not in window.text
    assert world.as_(Role.BANK).get("/v1/market/datasets",
                                    params={"scene": "trading"}).json() == []
    (record,) = list_records(world.ledger, kinds=("data_listing",))
    assert record.document["chain"]["tx_hash"] == listed["chain"]["tx_hash"]


def test_listing_refuses_foreign_devices_and_wrong_roles(world: World) -> None:
    body = {"owner": OWNER, "scene": "trading", "title": "t", "devices": world.devices, **PERIOD}
    assert world.as_(Role.BUYER, BUYER).post("/v1/market/datasets",
                                             json=body).status_code == 403
    other = world.as_(Role.ENTERPRISE, OTHER).post("/v1/market/datasets",
                                                   json={**body, "owner": OTHER})
    assert other.status_code == 403 and other.json()["code"] == "forbidden"
    admin = world.as_(Role.ADMIN).post("/v1/market/datasets", json={**body, "owner": OTHER})
    assert admin.status_code == 422 and admin.json()["code"] == "invalid_dataset"
    empty = world.as_(Role.ENTERPRISE, OWNER).post("/v1/market/datasets", json={
        **body, "period_from": "2025-01-01T00:00:00Z", "period_to": "2025-02-01T00:00:00Z"})
    assert empty.status_code == 422 and empty.json()["code"] == "invalid_dataset"


def test_request_grant_deliver_open_and_audit(world: World) -> None:
    request_id = _request(world)
    granted = _grant(world, request_id, kind="sale", price=120000)
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert (grant["buyer"], grant["kind"], grant["price"], grant["active"]) == (
        BUYER, "sale", 120000, True)
    world.state["grant"] = grant["grant_id"]
    assert world.market().is_active(grant["grant_id"])

    r = world.as_(Role.BUYER, BUYER).get(f"/v1/market/grants/{grant['grant_id']}/delivery")
    assert r.status_code == 200, r.text
    delivery = r.json()
    envelope = Envelope.model_validate(delivery["envelope"])
    opened, report = open_delivery(envelope, world.keys["intl"],
                                   expected_content_hash=world.state["dataset"]["content_hash"])
    delivered = {rid for _, rid, _ in opened.reading_ids()}
    assert delivered == world.in_period and world.out_of_period not in delivered
    assert report.readings == 8 and report.steps == list(DELIVERY_STEPS[:3] + DELIVERY_STEPS[4:])
    assert opened.format == "carbon-ledger/data-delivery/v2" and len(opened.device_keys) == 2

    # The read was logged before it was answered, with the hash of what was delivered.
    events = world.as_(Role.ENTERPRISE, OWNER).get(
        f"/v1/market/datasets/{_dataset(world)}/accesses").json()
    assert [e["kind"] for e in events] == ["data_listing", "data_request", "data_grant",
                                           "data_access"]
    access = events[-1]
    assert access["record_id"] == delivery["access_record_id"]
    plaintext = open_(envelope, world.keys["intl"])
    assert access["document"]["plaintext_hash"] == hash_fn("sm")(plaintext).hex()
    # The ledger splices the stored leaf bytes in: the result is still RFC 8785.
    assert canonical_json(opened.model_dump(mode="json")) == plaintext
    assert access["document"]["buyer"] == BUYER
    assert world.as_(Role.REGULATOR).get(
        f"/v1/market/datasets/{_dataset(world)}/accesses").json() == events

    world.ledger.anchor_tick(force=True)
    proof = record_proof(world.ledger, access["record_id"])
    leaf = merkle.leaf_hash(hash_fn("sm"), canonical_json(proof.record.document))
    assert merkle.root_from_inclusion_proof(
        hash_fn("sm"), proof.record.leaf_index, proof.signed_tree_head.tree_head.tree_size, leaf,
        [bytes.fromhex(p) for p in proof.inclusion_proof]
    ).hex() == proof.anchor.root_hash


def test_the_sm_suite_delivers_under_sm4_and_an_sm2_wrapped_key(world: World) -> None:
    request_id = _request(world, suite="sm")
    grant_id = _grant(world, request_id).json()["grant_id"]
    r = world.as_(Role.BUYER, BUYER).get(f"/v1/market/grants/{grant_id}/delivery")
    envelope = Envelope.model_validate(r.json()["envelope"])
    assert envelope.header.suite == "sm"
    opened, _ = open_delivery(envelope, world.keys["sm"])
    assert len(opened.readings) == 8
    with pytest.raises(Exception, match="recipient key"):
        open_delivery(envelope, RecipientPrivateKey.generate("sm"))


def _delivered(world: World) -> DataDelivery:
    r = world.as_(Role.BUYER, BUYER).get(f"/v1/market/grants/{world.state['grant']}/delivery")
    opened, _ = open_delivery(Envelope.model_validate(r.json()["envelope"]), world.keys["intl"])
    return opened


def _edited(delivery: DataDelivery, **changes: Any) -> DataDelivery:
    return DataDelivery.model_validate({**delivery.model_dump(mode="json"), **changes})


def _reproved(world: World, delivery: DataDelivery,
              leaves: list[tuple[int, SignedReading]]) -> DataDelivery:
    """What a dishonest ledger would send for another set of leaves: a leaf-set proof
    and a content hash that are consistent with it."""
    size = delivery.signed_tree_head.tree_head.tree_size
    indices = [i for i, _ in leaves]
    with world.ledger.reader.connect() as conn:
        proof = world.ledger.log._ranges(conn, leaf_set_proof_nodes(size, indices))
    hashes = [merkle.leaf_hash(hash_fn("sm"), leaf_bytes(r)) for _, r in leaves]
    return _edited(delivery, indices=indices, readings=[r.model_dump(mode="json")
                                                        for _, r in leaves],
                   proof=[p.hex() for p in proof], content_hash=content_hash("sm", hashes).hex())


def test_a_changed_proof_hash_fails_the_leaf_set_proof(world: World) -> None:
    opened = _delivered(world)
    assert opened.proof, "leaf 4 (the reading after the period) is proven by its hash"
    changed = _edited(opened, proof=["00" * 32, *opened.proof[1:]])
    with pytest.raises(DeliveryVerificationError,
                       match=r"^leaf-set proof: the 8 readings and the proof lead to root"):
        verify_delivery(changed)


def test_a_removed_reading_fails_the_proof_or_the_listed_content_hash(world: World) -> None:
    opened = _delivered(world)
    fewer = _edited(opened, indices=opened.indices[:-1], readings=[
        r.model_dump(mode="json") for r in opened.readings[:-1]])
    with pytest.raises(DeliveryVerificationError,
                       match=r"^leaf-set proof: the proof does not fit the 7 delivered leaf "
                             r"indices .*a reading was added or removed"):
        verify_delivery(fewer)
    # Re-proven consistently (only the ledger could), the listed content hash catches it.
    forged = _reproved(world, opened, list(zip(opened.indices, opened.readings,
                                               strict=True))[:-1])
    assert verify_delivery(forged).readings == 7
    with pytest.raises(DeliveryVerificationError,
                       match=r"^content hash: .*the listing says .*other readings than"):
        verify_delivery(forged, expected_content_hash=world.state["dataset"]["content_hash"])


def test_an_added_reading_fails_verification(world: World) -> None:
    opened = _delivered(world)
    twice = _edited(opened, indices=[opened.indices[0], *opened.indices],
                    readings=[r.model_dump(mode="json")
                              for r in [opened.readings[0], *opened.readings]])
    with pytest.raises(DeliveryVerificationError,
                       match=rf"^readings: reading leaf {opened.indices[0]} .*: leaf index "
                             rf"{opened.indices[0]} does not follow .*strictly increasing"):
        verify_delivery(twice)
    unlogged = opened.readings[0].model_copy(update={"signature": "00" * 64})
    extra = _edited(opened, indices=[*opened.indices, opened.indices[-1] + 1],
                    readings=[r.model_dump(mode="json") for r in [*opened.readings, unlogged]])
    with pytest.raises(DeliveryVerificationError, match=r"^readings: reading leaf \d+ .*"):
        verify_delivery(extra)


def test_a_reading_outside_the_dataset_fails_even_with_a_consistent_proof(
        world: World) -> None:
    opened = _delivered(world)
    outside = world.ledger.export_proof(world.out_of_period)
    leaves = sorted([*zip(opened.indices, opened.readings, strict=True),
                     (outside.leaf_index, outside.signed_reading)], key=lambda x: x[0])
    forged = _reproved(world, opened, leaves)
    with pytest.raises(DeliveryVerificationError,
                       match=rf"^readings: reading leaf {outside.leaf_index} \(.*#5\): measured "
                             r"at 2026-03-01T00:00:00Z is outside the dataset"):
        verify_delivery(forged)


def test_a_changed_reading_or_foreign_key_fails_the_reading_checks(world: World) -> None:
    opened = _delivered(world)
    first = opened.readings[0]
    changed = first.model_copy(update={"reading": first.reading.model_copy(
        update={"value": "999"})})
    with pytest.raises(DeliveryVerificationError, match=r"^readings: reading leaf \d+ .*"):
        verify_delivery(_edited(opened, readings=[r.model_dump(mode="json") for r in
                                                  [changed, *opened.readings[1:]]]))
    with pytest.raises(DeliveryVerificationError, match="carries no device key"):
        verify_delivery(_edited(opened, device_keys=[
            k.model_dump(mode="json") for k in opened.device_keys
            if k.device != first.reading.device]))


def test_the_anchor_is_checked_on_chain_once(world: World) -> None:
    opened = _delivered(world)
    chain = ClientChainView(world.ledger.chain)
    report = verify_delivery(opened, chain=chain)
    assert report.chain_checked and report.steps == list(DELIVERY_STEPS)
    moved = opened.anchor.model_copy(update={"block_number": opened.anchor.block_number + 1})
    with pytest.raises(DeliveryVerificationError,
                       match=rf"^chain: the anchor is in block {opened.anchor.block_number} "
                             "on chain"):
        verify_delivery(_edited(opened, anchor=moved.model_dump(mode="json")), chain=chain)


def test_a_reading_changed_in_storage_is_refused_not_delivered(world: World) -> None:
    rid = sorted(world.in_period)[0]
    where = readings.c.id == rid
    with world.ledger.engine.begin() as conn:
        data = bytes(conn.execute(select(readings.c.leaf_data).where(where)).scalar_one())
        conn.execute(update(readings).where(where).values(
            leaf_data=data.replace(b'"value":"', b'"value":"9', 1)))
    try:
        r = world.as_(Role.BUYER, BUYER).get(
            f"/v1/market/grants/{world.state['grant']}/delivery")
        assert r.status_code == 422 and r.json()["code"] == "invalid_dataset"
        assert "no longer matches its leaf hash" in r.json()["message"]
    finally:
        with world.ledger.engine.begin() as conn:
            conn.execute(update(readings).where(where).values(leaf_data=data))


def test_a_double_grant_is_409_and_changes_nothing(world: World) -> None:
    request_id = _request(world)
    assert _grant(world, request_id).status_code == 201
    block = world.ledger.chain.block_number()
    records = len(list_records(world.ledger))
    again = _grant(world, request_id, purpose="something else")
    assert again.status_code == 409 and again.json()["code"] == "already_granted"
    assert world.ledger.chain.block_number() == block
    assert len(list_records(world.ledger)) == records


def test_another_buyer_cannot_use_a_grant_or_see_another_enterprises_trail(world: World) -> None:
    grant_id = world.state["grant"]
    other = world.as_(Role.BUYER, OTHER).get(f"/v1/market/grants/{grant_id}/delivery")
    assert other.status_code == 403 and other.json()["code"] == "not_grant_buyer"
    owner_itself = world.as_(Role.ENTERPRISE, OWNER).get(f"/v1/market/grants/{grant_id}/delivery")
    assert owner_itself.status_code == 403 and owner_itself.json()["code"] == "forbidden"
    trail = world.as_(Role.ENTERPRISE, OTHER).get(
        f"/v1/market/datasets/{_dataset(world)}/accesses")
    assert trail.status_code == 403 and trail.json()["code"] == "forbidden"
    assert world.as_(Role.BUYER, BUYER).get(
        f"/v1/market/datasets/{_dataset(world)}/accesses").status_code == 403
    revoke = world.as_(Role.ENTERPRISE, OTHER).post(f"/v1/market/grants/{grant_id}/revoke",
                                                    json={})
    assert revoke.status_code == 403
    # Buyers see their own grants, not others'.
    assert world.as_(Role.BUYER, OTHER).get("/v1/market/grants",
                                            params={"enterprise": BUYER}).status_code == 403
    mine = world.as_(Role.BUYER, BUYER).get("/v1/market/grants", params={"enterprise": BUYER})
    assert grant_id in {g["grant_id"] for g in mine.json()}
    assert world.as_(Role.BUYER, OTHER).get("/v1/market/grants",
                                            params={"enterprise": OTHER}).json() == []


def test_revocation_stops_delivery(world: World) -> None:
    grant_id = world.state["grant"]
    r = world.as_(Role.ENTERPRISE, OWNER).post(f"/v1/market/grants/{grant_id}/revoke",
                                               json={"reason": "contract ended"})
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["revoked_at"]
    assert not world.market().is_active(grant_id)
    refused = world.as_(Role.BUYER, BUYER).get(f"/v1/market/grants/{grant_id}/delivery")
    assert refused.status_code == 410
    assert refused.json()["details"]["reason"] == "revoked"
    again = world.as_(Role.ENTERPRISE, OWNER).post(f"/v1/market/grants/{grant_id}/revoke",
                                                   json={})
    assert again.status_code == 409 and again.json()["code"] == "already_revoked"
    kinds = [e["kind"] for e in world.as_(Role.REGULATOR).get(
        f"/v1/market/datasets/{_dataset(world)}/accesses").json()]
    assert kinds.count("data_revocation") == 1


def test_a_write_whose_process_died_after_its_transaction_is_logged_on_retry(
        world: World) -> None:
    """The grant (or revocation) transaction was mined, then the process died before the
    log record: the same contract calls the service makes, without its log append."""
    dataset, expires = _dataset(world), "2099-01-01T00:00:00Z"
    request_id = _request(world)
    grant_id = request_id.replace("/dreq.", "/dg.")
    sent = world.market().grant(grant_id, dataset, BUYER, "supplier carbon footprint",
                                int(parse_utc(expires).timestamp()), "grant", 0)
    retried = _grant(world, request_id, expires_at=expires)
    assert retried.status_code == 201, retried.text
    assert retried.json()["chain"]["tx_hash"] == sent.tx_hash
    revoked = world.market().revoke(grant_id)
    r = world.as_(Role.ENTERPRISE, OWNER).post(f"/v1/market/grants/{grant_id}/revoke", json={})
    assert r.status_code == 200 and r.json()["revoked_at"]
    (revocation,) = [e for e in world.as_(Role.REGULATOR).get(
        f"/v1/market/datasets/{dataset}/accesses").json()
        if e["kind"] == "data_revocation" and e["document"]["grant"] == grant_id]
    assert revocation["document"]["chain"]["tx_hash"] == revoked.tx_hash

    other = _request(world)
    world.market().grant(other.replace("/dreq.", "/dg."), dataset, BUYER, "resale",
                         int(parse_utc(expires).timestamp()), "sale", 5)
    refused = _grant(world, other, expires_at=expires)
    assert refused.status_code == 409 and refused.json()["code"] == "already_granted"
    assert "other terms" in refused.json()["message"]


def test_requests_are_listed_for_their_buyer_and_their_owner(world: World) -> None:
    mine = world.as_(Role.BUYER, BUYER).get("/v1/market/requests", params={"enterprise": BUYER})
    owners = world.as_(Role.ENTERPRISE, OWNER).get("/v1/market/requests",
                                                   params={"enterprise": OWNER})
    assert mine.status_code == owners.status_code == 200
    assert {r["request_id"] for r in mine.json()} == {r["request_id"] for r in owners.json()}
    assert all(r["buyer"] == BUYER for r in mine.json())
    assert world.as_(Role.BUYER, OTHER).get("/v1/market/requests",
                                            params={"enterprise": OTHER}).json() == []
    assert world.as_(Role.BUYER, OTHER).get(
        "/v1/market/requests", params={"enterprise": OWNER}).status_code == 403


def test_expiry_in_the_past_is_refused_and_a_grant_expires_with_the_chain(world: World) -> None:
    request_id = _request(world)
    past = _grant(world, request_id, expires_at="2020-01-01T00:00:00Z")
    assert past.status_code == 422
    tester = world.ledger.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    soon = world.market().block_time() + 3600
    grant = _grant(world, request_id, expires_at=format_utc(datetime.fromtimestamp(soon, UTC)))
    assert grant.status_code == 201, grant.text
    grant_id = grant.json()["grant_id"]
    buyer = world.as_(Role.BUYER, BUYER)
    assert buyer.get(f"/v1/market/grants/{grant_id}/delivery").status_code == 200
    tester.time_travel(soon + 1)
    tester.mine_blocks()
    refused = buyer.get(f"/v1/market/grants/{grant_id}/delivery")
    assert refused.status_code == 410
    assert refused.json()["details"]["reason"] == "inactive_on_chain"


def test_cli_opens_and_verifies_a_delivery(world: World, tmp_path: Path) -> None:
    request_id = _request(world)
    grant_id = _grant(world, request_id, expires_at="2099-01-01T00:00:00Z").json()["grant_id"]
    r = world.as_(Role.BUYER, BUYER).get(f"/v1/market/grants/{grant_id}/delivery")
    (tmp_path / "delivery.json").write_text(r.text)
    key_file = tmp_path / "buyer.key"
    key_file.write_text(world.keys["intl"].private_bytes().hex())
    out = tmp_path / "readings.json"
    result = CliRunner().invoke(cli, [
        "market", "open-delivery", str(tmp_path / "delivery.json"), "--key", str(key_file),
        "--suite", "intl", "--content-hash", world.state["dataset"]["content_hash"],
        "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["readings"]) == 8
    wrong = CliRunner().invoke(cli, [
        "market", "open-delivery", str(tmp_path / "delivery.json"), "--key", str(key_file),
        "--suite", "intl", "--content-hash", "00" * 32])
    assert wrong.exit_code == 1 and "content hash" in wrong.output


@pytest.mark.chain
@pytest.mark.timeout(180)
def test_devchain_rules_deploy_a_data_market_the_ledger_writes_to(tmp_path: Path) -> None:
    from eth_account import Account

    from ledger_service.deployment import Deployment, deploy
    from ledger_service.devchain import DEV_KEYS, start_node
    from ledger_service.market.contract import OPERATOR_ROLE

    with start_node("anvil", tmp_path / "anvil") as node:
        head = int(node.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        anchorer = Account.from_key(DEV_KEYS[1]).address
        dep = deploy(node.url, DEV_KEYS[0], node="anvil", rules_effective_from=head + 3,
                     anchorers=[anchorer])
        assert dep.data_market_address is not None
        path = tmp_path / "deployment.json"
        dep.write(path)
        assert json.loads(path.read_text())["data_market_address"] == dep.data_market_address
        ledger = Ledger.open(Settings(data_dir=tmp_path / "ledger", deployment_file=path,
                                      anchor_private_key=DEV_KEYS[1]))
        try:
            assert ledger.data_market_address == dep.data_market_address
            market = DataMarketClient(ledger.chain, dep.data_market_address)
            assert market.has_role(OPERATOR_ROLE, anchorer)
            assert not market.has_role(OPERATOR_ROLE, Account.from_key(DEV_KEYS[2]).address)
            ledger.call(registry.create_enterprise, EnterpriseCreate(id=OWNER, name="o"))
            ledger.call(registry.create_site, SiteCreate(id=f"{P}/site.o", enterprise_id=OWNER,
                                                         name="o", region="Hebei"))
            device, key = _device(ledger, "anvil", f"{P}/site.o")
            # Anchors and market writes share the account's nonces, interleaved.
            for seq in (1, 2):
                _read(ledger, device, key, seq, f"2026-03-01T0{seq}:00:00Z")
                assert ledger.anchor_tick(force=True)
                tx = market.list_dataset(f"{P}/ds.anvil{seq}", bytes(range(32)), "trading",
                                         OWNER)
                assert tx.events[0].args["operator"] == anchorer
            assert ledger.chain.latest_tree_size(ledger.chain.log_key(ledger.settings.log_id)) == 2
        finally:
            ledger.engine.dispose()
    assert Deployment.load(path) == dep
