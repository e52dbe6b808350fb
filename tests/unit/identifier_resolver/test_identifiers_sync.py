"""Automatic identifier registration (``ledger_service.identifiers_sync``): the ledger's
registry writes and anchor events reach the resolver in the background, a resolver that
cannot be reached loses nothing and blocks nothing, and the next good round catches up
from the ledger's own state. Real ledger, real chain, real resolver; the unreachable
resolver is a real closed port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolver_support import ROOT_URL, P  # noqa: E402

from carbon_protocol.suites import PrivateKey  # noqa: E402
from identifier_resolver.api import create_app  # noqa: E402
from identifier_resolver.bridge import anchor_id, range_id, sync_ledger  # noqa: E402
from identifier_resolver.client import ResolverClient, remote_sink  # noqa: E402
from identifier_resolver.custody import reading_count  # noqa: E402
from identifier_resolver.errors import NodeUnavailableError  # noqa: E402
from identifier_resolver.models import CustodyGraph, TrustRoot  # noqa: E402
from identifier_resolver.resolver import Resolver  # noqa: E402
from identifier_resolver.verify import verify_answer  # noqa: E402
from ledger_service import registry  # noqa: E402
from ledger_service.identifiers_sync import IdentifierSync, SyncTarget, read_marks  # noqa: E402
from ledger_service.models import EnterpriseCreate  # noqa: E402
from ledger_service.settings import Settings  # noqa: E402

ENT = "86.1000.1/ent.test"
WAIT = 120.0
"""Generous upper bound for the background thread; the tests assert what it did, not
how fast."""


def _readings(ledger: Any, devices: list[Any], per_device: int) -> int:
    batch = [dev.signed() for _ in range(per_device) for dev in devices]
    result = ledger.ingest(batch)
    assert result.accepted == len(batch)
    return len(batch)


@pytest.fixture
def sync(ledger: Any, root: Resolver, owner: PrivateKey) -> Iterator[IdentifierSync]:
    s = IdentifierSync(ledger, lambda: SyncTarget(root, {P: owner}), interval=0.2,
                       max_wait=1.0)
    ledger.on_change = s.notify
    yield s
    ledger.on_change = None
    s.stop()


def test_registry_writes_and_anchors_are_registered_in_the_background(
        ledger: Any, make_device: Any, root: Resolver, trust: TrustRoot, owner: PrivateKey,
        sync: IdentifierSync) -> None:
    devices = [make_device("sm"), make_device("intl")]  # registry writes notify
    assert sync.wait_synced(WAIT)
    for dev in devices:
        answer = root.resolve(dev.id)
        verify_answer(answer, trust, query=dev.id)
        assert [k.key_id for k in answer.record.record.keys] == [dev.key.public_key().key_id]
    rounds = sync.rounds

    count = _readings(ledger, devices, 5)
    assert sync.rounds == rounds  # ingestion alone never triggers a round
    assert any(e.status == "final" for e in ledger.anchor_tick(force=True))
    assert sync.wait_synced(WAIT)
    size = ledger.tree_size()
    rr = range_id(ledger.settings.log_id, devices[0].id, 0, size)
    assert root.resolve(rr).record.record.data["count"] == 5
    assert root.resolve(anchor_id(ledger.settings.log_id, size)).record.record.type == "anchor"
    graph = root.custody(ENT, "down", 4)
    assert isinstance(graph, CustodyGraph) and reading_count(graph) == count
    # Everything is registered: another sync finds nothing to do.
    again = sync_ledger(ledger, root, {P: owner})
    assert (again.registered, again.updated, again.windows) == (0, 0, 0)


def test_an_unreachable_resolver_loses_nothing_and_is_caught_up(
        ledger: Any, make_device: Any, root: Resolver, owner: PrivateKey,
        trust: TrustRoot) -> None:
    down = ResolverClient(trust.model_copy(update={"url": "http://127.0.0.1:9"}), timeout=2)
    sink = remote_sink(down, "http://127.0.0.1:9")  # nothing listens on port 9
    sync = IdentifierSync(ledger, lambda: SyncTarget(sink, {P: owner}), interval=0.2,
                          max_wait=1.0)
    ledger.on_change = sync.notify
    try:
        devices = [make_device("sm")]
        count = _readings(ledger, devices, 4)
        ledger.anchor_tick(force=True)
        count += _readings(ledger, devices, 3)  # ingestion goes on while the resolver is down
        ledger.anchor_tick(force=True)
        assert not sync.wait_synced(1.0)
        assert sync.failures >= 1 and isinstance(sync.last_error, NodeUnavailableError)
        assert sync.next_wait() > sync.interval  # backing off
        assert ledger.reading_count() == count
    finally:
        ledger.on_change = None
        sync.stop()

    with TestClient(create_app(root), base_url=ROOT_URL) as http:
        sink.client = ResolverClient(trust, http=http)
        sink.url = ROOT_URL
        report = sync.run_once()  # the resolver is back: one round catches everything up
        assert report is not None and report.windows == 2 and report.readings == count
        assert sync.run_once() is None  # marks unchanged: nothing to do
    device = root.resolve(devices[0].id).record.record
    assert device.type == "device" and device.status == "active"


def test_marks_move_with_registry_and_final_anchors(ledger: Any, make_device: Any) -> None:
    before = read_marks(ledger)
    dev = make_device("sm")
    after_device = read_marks(ledger)
    assert after_device.registry != before.registry and after_device.anchors == before.anchors
    _readings(ledger, [dev], 3)
    assert read_marks(ledger) == after_device  # readings alone move no mark
    ledger.anchor_tick(force=True)
    anchored = read_marks(ledger)
    assert anchored.anchors != after_device.anchors and anchored.registry == after_device.registry


def test_embedded_resolver_from_settings(seeded_ledger: Any, make_device: Any,
                                         tmp_path: Path) -> None:
    ledger = seeded_ledger(chain="embedded", resolver="embedded", resolver_sync_seconds=0.5,
                           data_dir=tmp_path / "embedded")
    sync = ledger.on_change.__self__
    assert isinstance(sync, IdentifierSync)
    try:
        ledger.call(registry.create_enterprise, EnterpriseCreate(id="86.1000.1/ent.second",
                                                                 name="Second"))
        assert sync.wait_synced(WAIT), sync.last_error
        assert sync.target is not None
        node: Resolver = sync.target.node
        trust = node.trust_root("http://127.0.0.1:8100")
        answer = node.resolve("86.1000.1/ent.second")
        verify_answer(answer, trust, query="86.1000.1/ent.second")
        assert node.resolve(ENT).record.record.data["name"] == "Test Steel"
        assert node.anchorer is not None  # its own CarbonAnchor on the ledger's chain
        assert node.anchorer.chain.contract_address != ledger.chain.contract_address
        assert node.anchor_tick(force=True) is not None
    finally:
        sync.stop()
        if sync.target is not None:
            sync.target.node.engine.dispose()


def test_remote_needs_its_settings() -> None:
    with pytest.raises(ValidationError, match="LEDGER_RESOLVER_URL"):
        Settings(resolver="remote")
