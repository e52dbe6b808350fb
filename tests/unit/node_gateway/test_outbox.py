"""Durable outbox: sequence numbers, idempotent recording, verdicts, and kill -9 atomicity."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from gw_support import DOMAIN, JAN6

from carbon_protocol.merkle import leaf_hash
from carbon_protocol.models import Domain
from carbon_protocol.signing import leaf_bytes, verify_reading
from carbon_protocol.suites import hash_fn
from node_gateway.errors import (
    DomainMismatchError,
    MeasurementConflictError,
    NotProvisionedError,
    OutboxError,
)
from node_gateway.gateway import Gateway
from node_gateway.outbox import Outbox, Settlement
from node_gateway.simulator import Measurement

ELEC = "86.1000.1/dev.elec-01"
GAS = "86.1000.1/dev.gas-01"


def day(gw: Gateway, n: int = 0, days: float = 1) -> list[Measurement]:
    return list(gw.simulator(seed=1).days(JAN6 + timedelta(days=n), days))  # type: ignore[arg-type]


def test_sqlite_is_wal_with_full_sync(offline_gateway: Gateway) -> None:
    db = offline_gateway.outbox._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sequence_numbers_are_per_device_monotonic_from_one(offline_gateway: Gateway) -> None:
    first = offline_gateway.record(day(offline_gateway, 0, 0.5))
    assert first.seqs == {d.device: (1, 48) for d in offline_gateway.outbox.devices()}
    second = offline_gateway.record(day(offline_gateway, 1, 0.25))
    assert second.seqs == {d.device: (49, 72) for d in offline_gateway.outbox.devices()}
    for d in offline_gateway.outbox.devices():
        assert offline_gateway.outbox.seqs(d.device) == list(range(1, 73))
        assert d.next_seq == 73
        entries = offline_gateway.outbox.entries(d.device)
        times = [e.measured_at for e in entries]
        assert times == sorted(times)


def test_sequence_numbers_survive_reopening(offline_gateway: Gateway, tmp_path: Path) -> None:
    offline_gateway.record(day(offline_gateway, 0, 0.25))
    offline_gateway.outbox.close()
    again = Gateway(tmp_path / "gw")
    try:
        res = again.record(day(again, 1, 0.25))
        assert res.seqs[ELEC] == (25, 48)
    finally:
        again.close()


def test_rerecording_the_same_measurements_is_a_no_op(offline_gateway: Gateway) -> None:
    ms = day(offline_gateway)
    offline_gateway.record(ms)
    before = {e.id: e.signed for e in offline_gateway.outbox.entries()}
    res = offline_gateway.record(ms)
    assert (res.recorded, res.unchanged, res.seqs) == (0, len(ms), {})
    assert {e.id: e.signed for e in offline_gateway.outbox.entries()} == before
    mixed = offline_gateway.record(day(offline_gateway, 0, 2))  # half old, half new
    assert (mixed.recorded, mixed.unchanged) == (len(ms), len(ms))
    assert offline_gateway.outbox.seqs(ELEC) == list(range(1, 193))


def test_a_conflicting_measurement_stores_nothing_of_the_call(offline_gateway: Gateway) -> None:
    ms = day(offline_gateway, 0, 0.25)
    offline_gateway.record(ms[:3])
    changed = ms[2]._replace(value="999.000")
    with pytest.raises(MeasurementConflictError, match="was recorded before"):
        offline_gateway.record([*ms[3:], changed])
    assert offline_gateway.outbox.counts()["pending"] == 3
    assert offline_gateway.outbox.device(ELEC).next_seq == 2
    res = offline_gateway.record([*ms[3:], changed], on_conflict="skip")
    assert res.recorded == len(ms) - 3
    assert offline_gateway.outbox.entries()[2].value == ms[2].value  # never overwritten


def test_readings_are_signed_for_the_domain_with_fresh_salts(offline_gateway: Gateway) -> None:
    offline_gateway.record(day(offline_gateway, 0, 0.25))
    salts = set()
    for e in offline_gateway.outbox.entries():
        signed = e.signed_reading()
        r = signed.reading
        assert (r.device, r.seq, r.measured_at) == (e.device, e.seq, e.measured_at)
        assert r.domain == DOMAIN
        verify_reading(signed, offline_gateway.keystore.public(e.device))
        assert e.leaf_hash == leaf_hash(hash_fn("sm"), leaf_bytes(signed)).hex()
        salts.add(r.salt)
    assert len(salts) == offline_gateway.outbox.counts()["pending"]


def test_rotation_switches_keys_and_keeps_numbering(offline_gateway: Gateway) -> None:
    offline_gateway.record(day(offline_gateway, 0, 0.25))
    old = offline_gateway.keystore.public(ELEC)
    new = offline_gateway.keystore.rotate(ELEC)
    offline_gateway.record(day(offline_gateway, 1, 0.25))
    entries = offline_gateway.outbox.entries(ELEC)
    assert [e.seq for e in entries] == list(range(1, 49))
    assert {e.signed_reading().reading.key_id for e in entries[:24]} == {old.key_id}
    assert {e.signed_reading().reading.key_id for e in entries[24:]} == {new.key_id}


def test_recording_needs_a_domain_and_a_provisioned_device(tmp_path: Path,
                                                           offline_gateway: Gateway) -> None:
    bare = Gateway(tmp_path / "bare")
    try:
        with pytest.raises(OutboxError, match="domain is not known"):
            bare.record(day(offline_gateway, 0, 0.1))
    finally:
        bare.close()
    ms = day(offline_gateway, 0, 0.1)
    stranger = ms[0]._replace(device_id="86.1000.1/dev.stranger")
    with pytest.raises(NotProvisionedError, match="not provisioned"):
        offline_gateway.record([*ms, stranger])
    assert offline_gateway.outbox.counts()["pending"] == 0
    wrong_unit = ms[0]._replace(unit="MWh")
    with pytest.raises(OutboxError, match="in kWh, not active_energy in MWh"):
        offline_gateway.record([wrong_unit])


def test_the_domain_is_pinned(offline_gateway: Gateway) -> None:
    offline_gateway.outbox.set_domain(DOMAIN, "sm")  # same: fine
    other = Domain(chain_id=DOMAIN.chain_id, contract="0x" + "cd" * 20, log_id=DOMAIN.log_id)
    with pytest.raises(DomainMismatchError, match="serves contract 0xcdcd") as info:
        offline_gateway.outbox.set_domain(other, "sm")
    assert info.value.details["field"] == "contract"
    assert offline_gateway.outbox.domain() == DOMAIN


def test_verdicts_are_kept_and_dead_letters_listed(offline_gateway: Gateway) -> None:
    offline_gateway.record(day(offline_gateway, 0, 5 / 96))  # 5 intervals x 3 meters
    ob = offline_gateway.outbox
    pending = ob.pending(100)
    assert len(pending) == 15
    ob.settle([Settlement(pending[0].id, "acked", receipt={"leaf_index": 0, "seq": 1}),
               Settlement(pending[1].id, "rejected", error_code="bad_signature",
                          error={"code": "bad_signature", "message": "nope"})])
    assert ob.counts() == {"pending": 13, "acked": 1, "rejected": 1}
    (dead,) = ob.dead_letters()
    assert (dead.id, dead.error_code, dead.error) == (
        pending[1].id, "bad_signature", {"code": "bad_signature", "message": "nope"})
    # a second verdict for a settled reading does not rewrite the first
    ob.settle([Settlement(pending[1].id, "acked", receipt={"leaf_index": 9})])
    assert ob.dead_letters()[0].error_code == "bad_signature"
    assert ob.entries()[0].receipt == {"leaf_index": 0, "seq": 1}
    assert ob.requeue(code="other") == 0
    assert ob.requeue(code="bad_signature") == 1
    assert ob.counts() == {"pending": 14, "acked": 1, "rejected": 0}
    assert ob.pending(1, after_id=pending[0].id)[0].signed == pending[1].signed


def test_the_schema_forbids_reused_sequence_numbers(offline_gateway: Gateway) -> None:
    offline_gateway.record(day(offline_gateway, 0, 0.05))
    db = sqlite3.connect(offline_gateway.outbox.path)
    row = db.execute("SELECT * FROM readings WHERE device=? AND seq=1", (ELEC,)).fetchone()
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute("INSERT INTO readings (device, seq, measured_at, quantity, value, quality, "
                   "key_id, leaf_hash, signed, recorded_at) VALUES (?, 1, 'x', 'q', '1', "
                   "'measured', 'k', 'h', 's', 'now')", (ELEC,))
    assert row is not None
    db.close()


# -- kill -9 inside and after the recording transaction ---------------------------------------
_DRIVER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, UTC
    from node_gateway.gateway import Gateway
    gw = Gateway(sys.argv[1])
    start = datetime(2025, 1, 6, tzinfo=UTC)
    for n in range(int(sys.argv[2])):
        gw.record(gw.simulator(seed=1).days(start + timedelta(hours=6 * n), 0.25))
    print("done")
""")


def run_driver(
    data_dir: Path, chunks: int, crash_at: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CARBON_CRASH_AT"}
    if crash_at:
        env["CARBON_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", _DRIVER, str(data_dir), str(chunks)],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("crash_at", "kept"), [
    ("gateway.before_commit:2", 24),  # second transaction dies before COMMIT: lost entirely
    ("gateway.after_commit:2", 48),   # second transaction committed, then the process died
])
def test_kill_9_loses_no_committed_reading_and_reuses_no_sequence_number(
    offline_gateway: Gateway, tmp_path: Path, crash_at: str, kept: int
) -> None:
    offline_gateway.close()
    data = tmp_path / "gw"
    crashed = run_driver(data, 3, crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    ob = Outbox(data / "outbox.db")
    try:
        assert ob.seqs(ELEC) == list(range(1, kept + 1))
        assert ob.device(ELEC).next_seq == kept + 1
    finally:
        ob.close()
    # the re-run re-records the same measurements: committed ones are no-ops
    rerun = run_driver(data, 3, None)
    assert rerun.returncode == 0, rerun.stderr
    ob = Outbox(data / "outbox.db")
    try:
        for device in (ELEC, GAS):
            assert ob.seqs(device) == list(range(1, 73))
            times = [e.measured_at for e in ob.entries(device)]
            assert len(set(times)) == 72 and times == sorted(times)
    finally:
        ob.close()
