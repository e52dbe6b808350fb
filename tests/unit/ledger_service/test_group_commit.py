"""Group commit: concurrent single-reading requests share transactions, and still each
reading is stored exactly once with its own receipt."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger_service._internal.db import readings
from ledger_service._internal.group_commit import GroupCommitter

STARTED = threading.Event()


def _slow_batches() -> tuple[GroupCommitter[int, int], list[list[int]], threading.Event]:
    """A committer whose first batch blocks until released, so others queue behind it."""
    batches: list[list[int]] = []
    release = threading.Event()
    STARTED.clear()

    def run(items: Sequence[int], key: Hashable) -> list[int]:
        if not batches:
            STARTED.set()
            release.wait(10)
        batches.append(list(items))
        return [item * 10 + int(str(key or 0)) for item in items]

    return GroupCommitter(run, max_items=6, lock=threading.Lock()), batches, release


def _wait_queued(committer: GroupCommitter[Any, Any], count: int) -> None:
    for _ in range(1000):
        with committer._queue_lock:
            if len(committer._queue) >= count:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{count} jobs never queued")


def _wait_locked(committer: GroupCommitter[Any, Any]) -> None:
    """Until the first batch is running, blocked in the test's batch function, having
    taken its jobs from the queue."""
    assert STARTED.wait(10), "no batch started"


def test_jobs_waiting_behind_a_batch_run_together_each_gets_its_own_results() -> None:
    committer, batches, release = _slow_batches()
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(committer.submit, [1])
        _wait_locked(committer)
        later = [pool.submit(committer.submit, [10 * n + 1, 10 * n + 2]) for n in (2, 3, 4, 5)]
        _wait_queued(committer, 4)
        release.set()
        assert first.result() == [10]
        results = [f.result() for f in later]
    assert results == [[210, 220], [310, 320], [410, 420], [510, 520]]
    # Four jobs of two items behind the first: at most six items per batch, so three
    # jobs share one transaction and the fourth runs in the next.
    assert sorted(len(b) for b in batches) == [1, 2, 6]


def test_jobs_with_another_key_never_share_a_batch() -> None:
    committer, batches, release = _slow_batches()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.submit, [1])
        _wait_locked(committer)
        a = pool.submit(committer.submit, [2], 1)
        b = pool.submit(committer.submit, [3], 2)
        _wait_queued(committer, 2)
        release.set()
        assert (first.result(), a.result(), b.result()) == ([10], [21], [32])
    assert sorted(map(sorted, batches)) == [[1], [2], [3]]


def test_a_failed_batch_fails_every_job_in_it() -> None:
    release = threading.Event()
    calls: list[list[int]] = []
    STARTED.clear()

    def run(items: Sequence[int], key: Hashable) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            STARTED.set()
            release.wait(10)
            return [0 for _ in items]
        raise RuntimeError("disk full")

    committer: GroupCommitter[int, int] = GroupCommitter(run, max_items=100,
                                                         lock=threading.Lock())
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.submit, [1])
        _wait_locked(committer)
        failing = [pool.submit(committer.submit, [n]) for n in (2, 3, 4)]
        _wait_queued(committer, 3)
        release.set()
        assert first.result() == [0]
        for f in failing:
            with pytest.raises(RuntimeError, match="disk full"):
                f.result()
    assert calls[1:] == [[2, 3, 4]]


def test_concurrent_single_readings_and_resends_are_stored_once(
        ledger: Any, make_device: Callable[..., Any]) -> None:
    """32 threads post 400 readings one at a time, 100 of them twice at once: every
    reading has one leaf, the resend gets the same receipt, leaves are 0..399."""
    devices = [make_device() for _ in range(8)]
    signed = [dev.signed() for _ in range(50) for dev in devices]
    posts = signed + signed[::4]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ledger.ingest_one, posts))
    first: dict[str, Any] = {}
    for (status, receipt), reading in zip(answers, posts, strict=True):
        key = f"{reading.reading.device}#{reading.reading.seq}"
        if status == "accepted":
            assert key not in first, f"{key} accepted twice"
            first[key] = receipt
    assert len(first) == len(signed)
    for (_, receipt), reading in zip(answers, posts, strict=True):
        assert receipt == first[f"{reading.reading.device}#{reading.reading.seq}"]
    assert sorted(r.leaf_index for r in first.values()) == list(range(len(signed)))
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 400
    assert ledger.tree_size() == 400
