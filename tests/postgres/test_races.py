"""Races between service processes on one database, each forced deterministically.

Two :class:`Ledger` objects with engines of their own behave towards the database as
two processes do (separate connections, separate frontier caches); threads released by
a barrier make them collide.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from carbon_protocol.models import Reading, SignedReading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey
from ledger_service import registry
from ledger_service._internal.chain import ANCHORER_ROLE, ChainClient
from ledger_service._internal.db import anchors, devices, tree_heads
from ledger_service.devchain import DEV_KEYS
from ledger_service.ingest import store_batch, verify_batch
from ledger_service.ledger import Ledger, load_or_create_key
from ledger_service.models import DeviceCreate, DeviceKeyCreate, EnterpriseCreate, SiteCreate
from ledger_service.settings import Settings

DEVICE = "86.1000.1/dev.race"


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results in order
    (an exception is re-raised)."""
    barrier = threading.Barrier(len(calls), timeout=30)
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # re-raised in the caller's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def test_log_key_is_created_once(tmp_path: Path) -> None:
    """Eight starts race to create the log key: all get the winner's key, which is
    complete, private, and the only file left behind."""
    path = tmp_path / "data" / "log_key.pem"
    keys = together(*[lambda: load_or_create_key(path, "sm")] * 8)
    assert len({k.public_key().key_id for k in keys}) == 1
    assert load_or_create_key(path, "sm").public_key() == keys[0].public_key()
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["log_key.pem"]


@pytest.fixture
def two_ledgers(tmp_path: Path, fresh_pg: Callable[[], str]) -> Iterator[list[Ledger]]:
    """Two ledgers (embedded chains with the same key, hence the same domain) on one
    fresh PostgreSQL database, one registered device."""
    settings = Settings(database_url=fresh_pg(), data_dir=tmp_path / "data")
    ledgers = together(lambda: Ledger.open(settings), lambda: Ledger.open(settings))
    try:
        first = ledgers[0]
        first.call(registry.create_enterprise, EnterpriseCreate(id="86.1000.1/ent.race",
                                                                name="Race Steel"))
        first.call(registry.create_site, SiteCreate(id="86.1000.1/site.race",
                                                    enterprise_id="86.1000.1/ent.race",
                                                    name="Plant", region="Liaoning"))
        yield ledgers
    finally:
        for ledger in ledgers:
            ledger.engine.dispose()


def new_device(ledger: Ledger) -> Callable[[int], SignedReading]:
    """Register a device; return a function signing its reading number ``seq``."""
    ident = f"{DEVICE}{secrets.token_hex(3)}"
    key = PrivateKey.generate("sm")
    ledger.call(registry.create_device, DeviceCreate(
        id=ident, site_id="86.1000.1/site.race", quantity="active_energy", unit="kWh",
        serial=ident))
    ledger.call(registry.add_device_key, ident, DeviceKeyCreate(
        suite="sm", public_key=key.public_key().hex(), valid_from="2020-01-01T00:00:00Z"))

    def signed(seq: int) -> SignedReading:
        return sign_reading(Reading(
            suite="sm", key_id=key.public_key().key_id, device=ident, seq=seq,
            measured_at="2026-01-01T00:15:00Z", quantity="active_energy", unit="kWh",
            value="1.5", quality="measured", salt=secrets.token_hex(16),
            domain=ledger.domain), key)

    return signed


@pytest.mark.postgres
def test_both_start_on_one_log(two_ledgers: list[Ledger]) -> None:
    a, b = two_ledgers
    assert a.domain == b.domain
    assert a.log_key_info() == b.log_key_info()


@pytest.mark.postgres
def test_a_head_is_signed_once(two_ledgers: list[Ledger]) -> None:
    """Both processes sign heads of the same sizes at the same moment: one signature is
    stored per size, and both answer with it."""
    a, b = two_ledgers
    signed = new_device(a)
    assert a.ingest([signed(seq) for seq in range(1, 41)]).accepted == 40
    for size in (3, 17, 32, 40):
        from_a, from_b = together(lambda s=size: a.tree_head(s), lambda s=size: b.tree_head(s))
        assert from_a == from_b
    with a.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tree_heads)).scalar_one() == 4


@pytest.mark.postgres
def test_appends_alternate_between_processes(two_ledgers: list[Ledger]) -> None:
    """Each process appends after the other did: each notices the size changed under
    the lock, reloads the right edge, and both agree on every root."""
    a, b = two_ledgers
    signed = new_device(a)
    seq = 0
    for round_ in range(12):
        ledger = (a, b)[round_ % 2]
        batch = [signed(seq + i) for i in range(1, 1 + round_ % 5 + 1)]
        seq += len(batch)
        assert ledger.ingest(batch).accepted == len(batch)
        assert a.tree_head() == b.tree_head()
    assert a.tree_size() == b.tree_size() == seq
    for size in range(1, seq):
        assert a.consistency_proof(size, seq) == b.consistency_proof(size, seq)


@pytest.mark.postgres
def test_same_batch_to_both_processes_at_once(two_ledgers: list[Ledger]) -> None:
    a, b = two_ledgers
    signed = new_device(b)
    for start in range(1, 200, 20):
        batch = [signed(seq) for seq in range(start, start + 20)]
        from_a, from_b = together(lambda x=batch: a.ingest(x), lambda x=batch: b.ingest(x))
        assert sorted([from_a.accepted, from_b.accepted]) == [0, 20]
        assert [i.receipt for i in from_a.items] == [i.receipt for i in from_b.items]
    assert a.reading_count() == a.tree_size() == 200


@pytest.mark.postgres
def test_last_seq_never_goes_backwards(two_ledgers: list[Ledger]) -> None:
    """Two transactions raise one device's last sequence number, the later-committing one
    to a smaller value (as a writer without the log lock would): GREATEST in the
    UPDATE keeps the larger."""
    a, _ = two_ledgers
    signed = new_device(a)
    batches = {20: [signed(20)], 10: [signed(10)]}
    verified = {}
    with a.reader.connect() as conn:
        for seq, batch in batches.items():
            verified[seq] = verify_batch(conn, batch, domain=a.domain, log_suite="sm",
                                         prefix="86.1000.1")[0]
    device = batches[20][0].reading.device
    first, second = a.engine.connect(), a.engine.connect()
    try:
        first.begin()
        store_batch(first, verified[20], log_id=a.settings.log_id, first_index=0)
        second.begin()
        # ``second`` read last_seq 0 before ``first`` commits; its UPDATE waits for
        # ``first``'s row lock, then applies to the committed row.
        blocked = threading.Thread(target=lambda: store_batch(
            second, verified[10], log_id=a.settings.log_id, first_index=1))
        blocked.start()
        blocked.join(timeout=1)
        assert blocked.is_alive(), "the second UPDATE did not wait for the first"
        first.commit()
        blocked.join(timeout=30)
        second.commit()
    finally:
        first.close()
        second.close()
    with a.engine.connect() as conn:
        last = conn.execute(select(devices.c.last_seq).where(devices.c.id == device))
        assert last.scalar_one() == 20


@pytest.mark.postgres
@pytest.mark.chain
def test_a_head_is_anchored_once(tmp_path: Path, fresh_pg: Callable[[], str],
                                 anvil: Any) -> None:
    """Both processes find the head due at the same moment; under the anchoring lock
    one records the anchor and the other sees it and does not."""
    contract = ChainClient.deploy(anvil.url, DEV_KEYS[0])
    admin = ChainClient.connect(anvil.url, DEV_KEYS[0], contract)
    admin.grant_role(ANCHORER_ROLE, ChainClient.connect(anvil.url, DEV_KEYS[1], contract).account)
    url = fresh_pg()
    ledgers = [
        Ledger.open(Settings(database_url=url, data_dir=tmp_path / "data", chain="rpc",
                             rpc_url=anvil.url, chain_id=anvil.chain_id,
                             contract_address=contract, anchor_private_key=key))
        for key in DEV_KEYS[:2]
    ]
    try:
        a, b = ledgers
        a.call(registry.create_enterprise, EnterpriseCreate(id="86.1000.1/ent.race",
                                                            name="Race Steel"))
        a.call(registry.create_site, SiteCreate(id="86.1000.1/site.race",
                                                enterprise_id="86.1000.1/ent.race",
                                                name="Plant", region="Liaoning"))
        signed = new_device(a)
        seq = 0
        for _ in range(3):
            batch = [signed(seq + i) for i in range(1, 11)]
            seq += 10
            assert b.ingest(batch).accepted == 10
            together(lambda: a.anchor_tick(force=True), lambda: b.anchor_tick(force=True))
            a.anchor_tick()
            b.anchor_tick()
            with a.engine.connect() as conn:
                rows = conn.execute(select(anchors.c.tree_size, anchors.c.status)
                                    .where(anchors.c.tree_size == seq)).all()
            assert [tuple(r) for r in rows] == [(seq, "final")]
    finally:
        for ledger in ledgers:
            ledger.engine.dispose()
