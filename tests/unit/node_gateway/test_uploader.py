"""Uploader against a real ledger over real HTTP: retries, backoff, idempotency, verdicts.

The ledger is the real service (SQLite, Merkle log, in-process chain) behind
``FlakyServer``, a real threaded HTTP server on 127.0.0.1 that can answer 503 or cut
the connection for the next N requests. Backoff delays are recorded instead of slept
(``sleeps``), so the tests check the policy's numbers without waiting for them.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from datetime import timedelta

import pytest
from gw_support import JAN6, LiveLedger
from hypothesis import given
from hypothesis import strategies as st

from node_gateway.errors import DomainMismatchError, LedgerUnavailableError, UploadError
from node_gateway.gateway import Gateway
from node_gateway.outbox import Outbox
from node_gateway.uploader import HttpTransport, Progress, RetryPolicy, Uploader

GatewayFactory = Callable[..., Gateway]


def record_hours(gw: Gateway, hours: int, start_day: int = 0) -> int:
    sim = gw.simulator(seed=2)
    res = gw.record(sim.readings(JAN6 + timedelta(days=start_day),
                                 JAN6 + timedelta(days=start_day, hours=hours)))
    return res.recorded


def receipts(gw: Gateway) -> dict[tuple[str, int], int]:
    return {(e.device, e.seq): e.receipt["leaf_index"]  # type: ignore[index]
            for e in gw.outbox.entries() if e.state == "acked"}


def test_a_flush_delivers_everything_once(online_gateway: GatewayFactory,
                                          live_ledger: LiveLedger) -> None:
    gw = online_gateway()
    n = record_hours(gw, 6)
    seen: list[Progress] = []
    report = gw.flush(on_progress=seen.append)
    assert (report.accepted, report.duplicates, report.rejected, report.retries) == (n, 0, 0, 0)
    assert gw.outbox.counts() == {"pending": 0, "acked": n, "rejected": 0}
    assert [p.settled for p in seen] == sorted(p.settled for p in seen)
    assert seen[-1].settled == seen[-1].total == n
    for d in gw.outbox.devices():
        rep = live_ledger.ledger.sequence_report(d.device)
        assert (rep.count, rep.first_seq, rep.last_seq, rep.missing) == (24, 1, 24, [])
    assert gw.flush().batches == 0  # nothing left


def test_503s_are_retried_with_growing_capped_backoff(
    online_gateway: GatewayFactory, live_ledger: LiveLedger, sleeps: list[float]
) -> None:
    gw = online_gateway(retry=RetryPolicy(max_attempts=6, base_delay=0.2, max_delay=0.5))
    n = record_hours(gw, 2)
    live_ledger.server.fail(4, "503")
    report = gw.flush()
    assert report.accepted == n and report.retries == 4
    assert len(sleeps) == 4
    for retry, wait in enumerate(sleeps, 1):
        ceiling = min(0.5, 0.2 * 2 ** (retry - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert gw.outbox.counts()["acked"] == n


def test_dropped_connections_are_retried(online_gateway: GatewayFactory,
                                         live_ledger: LiveLedger, sleeps: list[float]) -> None:
    gw = online_gateway()
    n = record_hours(gw, 2)
    live_ledger.server.fail(2, "drop")
    report = gw.flush()
    assert (report.accepted, report.retries, len(sleeps)) == (n, 2, 2)


def test_a_lost_answer_is_resent_and_acked_as_duplicate(
    online_gateway: GatewayFactory, live_ledger: LiveLedger
) -> None:
    """The ledger stored the batch but the answer never arrived: resending must not
    double anything, and the receipts are the ones the first delivery created."""
    gw = online_gateway()
    n = record_hours(gw, 3)
    size_before = live_ledger.ledger.tree_size()
    live_ledger.server.fail(1, "drop_after")
    report = gw.flush()
    assert (report.accepted, report.duplicates) == (0, n)
    assert live_ledger.ledger.tree_size() == size_before + n
    got = receipts(gw)
    assert sorted(got.values()) == list(range(size_before, size_before + n))
    for d in gw.outbox.devices():
        rep = live_ledger.ledger.sequence_report(d.device)
        assert (rep.count, rep.missing) == (12, [])


def test_an_unreachable_ledger_keeps_everything_pending(
    online_gateway: GatewayFactory, live_ledger: LiveLedger, sleeps: list[float]
) -> None:
    gw = online_gateway()
    n = record_hours(gw, 1)
    live_ledger.server.fail(3, "503")
    outbox: Outbox = gw.outbox
    uploader = Uploader(outbox, HttpTransport.for_url(live_ledger.url), sleep=sleeps.append,
                        retry=RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.1))
    with pytest.raises(LedgerUnavailableError, match="after 3 attempts: POST /v1/readings/batch: "
                                                     "503 unavailable"):
        uploader.flush()
    assert outbox.counts() == {"pending": n, "acked": 0, "rejected": 0}
    assert {e.attempts for e in outbox.entries()} == {1}
    assert len(sleeps) == 2
    assert gw.flush().accepted == n


def test_connection_refused_is_unavailable_not_rejected(
    online_gateway: GatewayFactory, sleeps: list[float]
) -> None:
    gw = online_gateway()
    n = record_hours(gw, 1)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Uploader(gw.outbox, HttpTransport.for_url(f"http://127.0.0.1:{port}"),
                    sleep=sleeps.append, retry=RetryPolicy(max_attempts=4, base_delay=0.05))
    with pytest.raises(LedgerUnavailableError, match="ConnectError") as info:
        dead.flush()
    assert info.value.diagnostics()["code"] == "ledger_unavailable"
    assert isinstance(info.value, ConnectionError)
    assert len(sleeps) == 3 and gw.outbox.counts()["pending"] == n


def test_rejections_are_per_reading_and_kept_as_dead_letters(
    online_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    gw = online_gateway()
    stranger = "86.1000.1/dev.not-at-ledger-" + tmp_path_factory.mktemp("x").name[-6:]
    gw.keystore.create(stranger, "sm")
    gw.outbox.add_device(stranger, "active_energy", "kWh")  # provisioned locally only
    n = record_hours(gw, 1)
    report = gw.flush()
    assert (report.accepted, report.rejected) == (n - 4, 4)
    dead = gw.outbox.dead_letters()
    assert {d.device for d in dead} == {stranger}
    assert {d.error_code for d in dead} == {"unknown_device"}
    assert all("is not registered" in str(d.error["message"]) for d in dead)  # type: ignore[index]
    assert gw.outbox.counts() == {"pending": 0, "acked": n - 4, "rejected": 4}


def test_a_body_too_large_splits_the_batch(online_gateway: GatewayFactory,
                                           live_ledger: LiveLedger) -> None:
    """The live ledger refuses bodies over 96 KiB with 413; 400 readings are ~250 KiB."""
    gw = online_gateway(batch_size=400)
    n = record_hours(gw, 34)  # 3 meters x 136 intervals
    before = len(live_ledger.server.requests)
    report = gw.flush()
    assert report.accepted == n and report.rejected == 0
    posts = [r for r in live_ledger.server.requests[before:] if r.startswith("POST")]
    assert len(posts) > report.batches  # the first batch was refused and split
    assert gw.outbox.counts()["acked"] == n


def test_a_wrong_url_rejects_nothing(online_gateway: GatewayFactory,
                                     live_ledger: LiveLedger) -> None:
    gw = online_gateway()
    n = record_hours(gw, 1)
    wrong = Uploader(gw.outbox, HttpTransport.for_url(live_ledger.url + "/not-the-api"))
    with pytest.raises(UploadError, match="404.*no reading was rejected"):
        wrong.flush()
    assert gw.outbox.counts()["pending"] == n


def test_a_receipt_for_another_leaf_is_not_an_ack(online_gateway: GatewayFactory,
                                                  live_ledger: LiveLedger) -> None:
    """Test double for a fault the real ledger cannot be made to commit: the server
    rewrites receipts' leaf hashes, as a lying or broken ledger would."""
    gw = online_gateway()
    n = record_hours(gw, 1)
    live_ledger.server.fail(1, "tamper")
    report = gw.flush()
    assert report.rejected == n
    assert {d.error_code for d in gw.outbox.dead_letters()} == {"receipt_mismatch"}


def test_a_ledger_of_another_deployment_is_refused(tmp_path_factory: pytest.TempPathFactory,
                                                   online_gateway: GatewayFactory) -> None:
    from carbon_protocol.models import Domain

    gw = online_gateway()
    record_hours(gw, 1)
    domain = gw.outbox.domain()
    assert domain is not None
    gw.outbox._db.execute("UPDATE meta SET value=? WHERE key='domain'", (
        Domain(chain_id=domain.chain_id + 1, contract=domain.contract,
               log_id=domain.log_id).model_dump_json(),))
    with pytest.raises(DomainMismatchError, match="chain_id"):
        gw.flush()
    assert gw.outbox.counts()["rejected"] == 0


@given(retry=st.integers(1, 40), base=st.floats(0.01, 5), cap=st.floats(0.01, 60),
       seed=st.integers(0, 2**32))
def test_backoff_is_bounded_jittered_and_capped(retry: int, base: float, cap: float,
                                                seed: int) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    ceiling = min(cap, base * 2 ** (retry - 1))
    wait = policy.delay(retry, random.Random(seed))
    assert ceiling / 2 <= wait <= ceiling <= cap
    assert policy.delay(retry, random.Random(seed), retry_after=1e9) == cap
