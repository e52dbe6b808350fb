"""The ledger bridge: identifiers for everything a real ledger holds, idempotently."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from carbon_protocol.merkle import root_from_leaf_hashes
from carbon_protocol.suites import PrivateKey, hash_fn
from identifier_resolver.bridge import anchor_id, range_id, sync_ledger, tree_head_id
from identifier_resolver.custody import reading_count
from identifier_resolver.errors import DeactivatedError
from identifier_resolver.models import CustodyGraph, TrustRoot
from identifier_resolver.resolver import Resolver
from identifier_resolver.verify import verify_answer
from ledger_service import registry
from ledger_service._internal.db import anchors, readings
from ledger_service.models import DeviceCreate, DeviceKeyCreate, GatewayCreate, KeyRevoke

ENT, SITE, GW = "86.1000.1/ent.test", "86.1000.1/site.test", "86.1000.1/gw.edge"


@pytest.fixture
def fleet(ledger: Any, make_device: Any) -> list[Any]:
    ledger.call(registry.create_gateway, GatewayCreate(id=GW, enterprise_id=ENT, name="Edge"))
    devices = [make_device("sm"), make_device("intl")]
    ident = "86.1000.1/dev.gwmeter"
    ledger.call(registry.create_device, DeviceCreate(
        id=ident, site_id=SITE, gateway_id=GW, quantity="heat", unit="GJ", serial="H-1",
        calibration={"certificate": "CAL-9", "lab": "NIM", "Next due": "2027-01-01"}))
    key = PrivateKey.generate("intl")
    ledger.call(registry.add_device_key, ident, DeviceKeyCreate(
        suite="intl", public_key=key.public_key().hex(), valid_from="2026-01-01T00:00:00Z"))
    devices.append(type(devices[0])(ident, key, ledger.domain))  # tests/conftest.py's Device
    return devices


def _ingest(ledger: Any, devices: list[Any], per_device: int) -> None:
    batch = []
    for _ in range(per_device):
        for dev in devices:
            overrides = {"quantity": "heat", "unit": "GJ"} if dev.id.endswith("gwmeter") else {}
            batch.append(dev.signed(**overrides))
    result = ledger.ingest(batch)
    assert result.accepted == len(batch), result
    events = ledger.anchor_tick(force=True)
    assert any(e.status == "final" for e in events)


def _sizes(ledger: Any) -> list[int]:
    with ledger.reader.connect() as conn:
        return sorted(int(r.tree_size) for r in conn.execute(
            select(anchors.c.tree_size).where(anchors.c.status == "final")))


def test_sync_registers_the_ledger_and_is_idempotent(
        ledger: Any, fleet: list[Any], root: Resolver, owner: PrivateKey,
        trust: TrustRoot) -> None:
    _ingest(ledger, fleet, 4)
    _ingest(ledger, fleet, 2)
    first = sync_ledger(ledger, root, {"86.1000.1": owner})
    assert dict(first.by_type) == {"enterprise": 1, "site": 1, "gateway": 1, "device": 3,
                                   "calibration": 1, "tree_head": 2, "anchor": 2,
                                   "reading_range": 6}
    assert (first.windows, first.readings, first.skipped) == (2, 18, [])
    log_id = ledger.settings.log_id
    s1, s2 = _sizes(ledger)
    rr = range_id(log_id, fleet[0].id, s1, s2)
    answer = root.resolve(rr)
    verify_answer(answer, trust, query=rr)
    data = answer.record.record.data
    assert (data["count"], data["first_seq"], data["last_seq"]) == (2, 5, 6)
    with ledger.reader.connect() as conn:
        leaves = [bytes(r.leaf_hash) for r in conn.execute(
            select(readings.c.leaf_hash).where(
                readings.c.device_id == fleet[0].id, readings.c.leaf_index >= s1,
                readings.c.leaf_index < s2).order_by(readings.c.leaf_index))]
    assert answer.record.record.hash is not None
    assert answer.record.record.hash.value == root_from_leaf_hashes(hash_fn("sm"), leaves).hex()
    device = root.resolve(fleet[0].id).record.record
    assert [k.key_id for k in device.keys] == [fleet[0].key.public_key().key_id]
    gw_device = root.resolve("86.1000.1/dev.gwmeter").record.record
    assert {(x.rel, x.target) for x in gw_device.links} == {
        ("part_of", SITE), ("connected_via", GW)}
    calibration = root.resolve("86.1000.1/cal.dev.gwmeter").record.record
    assert calibration.data["next_due"] == "2027-01-01"

    down = root.custody(ENT, "down", 4)
    assert isinstance(down, CustodyGraph) and reading_count(down) == 18
    up = root.custody(rr, "up", 3)
    assert isinstance(up, CustodyGraph)
    assert {tree_head_id(log_id, s2), anchor_id(log_id, s2), ENT} <= {n.id for n in up.nodes}

    again = sync_ledger(ledger, root, {"86.1000.1": owner})
    assert (again.registered, again.updated, again.windows) == (0, 0, 0)
    only_log = sync_ledger(ledger, root, {"86.1000.1": owner}, registry=False)
    assert only_log.unchanged == 0 and only_log.windows == 0


def test_sync_follows_ledger_changes(ledger: Any, fleet: list[Any], root: Resolver,
                                     owner: PrivateKey) -> None:
    _ingest(ledger, fleet, 3)
    sync_ledger(ledger, root, {"86.1000.1": owner})
    dev = fleet[1]
    ledger.call(registry.revoke_device_key, dev.id, dev.key.public_key().key_id,
                KeyRevoke(reason="gateway stolen", revoked_at="2026-03-01T00:00:00Z"))
    _ingest(ledger, [fleet[0], fleet[2]], 2)
    report = sync_ledger(ledger, root, {"86.1000.1": owner})
    assert report.updated == 1 and report.windows == 1
    assert dict(report.by_type) == {"device": 1, "tree_head": 1, "anchor": 1,
                                    "reading_range": 2}
    answer = root.resolve(dev.id)
    assert answer.record.record.version == 2
    assert answer.record.record.keys[0].revoked_at == "2026-03-01T00:00:00Z"
    assert answer.history[0].record.keys[0].revoked_at is None

    # The ledger withdraws its newest anchor (its transaction vanished from the chain).
    last = _sizes(ledger)[-1]
    with ledger.engine.begin() as conn:
        conn.execute(update(anchors).where(anchors.c.tree_size == last)
                     .values(status="replaced"))
    report = sync_ledger(ledger, root, {"86.1000.1": owner})
    assert report.deactivated == 1 and report.windows == 0
    with pytest.raises(DeactivatedError, match="no longer counts this anchor as final"):
        root.resolve(anchor_id(ledger.settings.log_id, last))


def test_prefixes_without_a_key_are_skipped(ledger: Any, fleet: list[Any],
                                            root: Resolver) -> None:
    report = sync_ledger(ledger, root, {"86.2000": PrivateKey.generate("intl")})
    assert report.registered == 0 and ENT in report.skipped
