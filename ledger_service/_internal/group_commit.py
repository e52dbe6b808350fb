"""Group commit: concurrent appends share one transaction instead of queueing for many.

Every append needs the log lock, and with it held a transaction costs the same fixed
overhead (lock the log row, read the frontier, a handful of statements, a commit)
whether it stores one reading or a thousand. Gateways that post one reading per request
after an outage would pay that overhead per reading while all the others wait. So a
caller hands its work to a :class:`GroupCommitter` and waits on the lock; whoever gets
the lock takes every job queued by then (up to a limit) and runs them as one batch, and
a caller whose job was already run by an earlier holder just returns its result.

Nothing is answered before the transaction that holds it commits, and a failed
transaction fails every job in it, so a caller never reports a reading as stored that
is not; the batch function decides each item's fate exactly as it would alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Job(Generic[Item, Result]):
    items: Sequence[Item]
    key: Hashable
    results: list[Result] | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommitter(Generic[Item, Result]):
    """Run ``run_batch`` over the items of several callers at once, under one lock.

    ``run_batch(items, key)`` gets the concatenated items of jobs that share ``key``
    (jobs with different keys, for example a different receipt time given by a test,
    never share a batch) and returns one result per item, in order. ``max_items``
    bounds a batch so that one transaction stays short; a job is never split. ``lock``
    is held while a batch runs: pass the lock other appenders take, so they serialise
    with the batches.
    """

    def __init__(self, run_batch: Callable[[Sequence[Item], Hashable], list[Result]],
                 *, max_items: int, lock: threading.Lock) -> None:
        self._run_batch = run_batch
        self._max_items = max_items
        self._lock = lock
        self._queue_lock = threading.Lock()
        self._queue: list[_Job[Item, Result]] = []

    def submit(self, items: Sequence[Item], key: Hashable = None) -> list[Result]:
        """Run ``items`` (alone or with others'); their results, or the batch's error."""
        job: _Job[Item, Result] = _Job(items, key)
        with self._queue_lock:
            self._queue.append(job)
        with self._lock:
            if not job.done:
                self._lead(job)
        if job.error is not None:
            raise job.error
        assert job.results is not None
        return job.results

    def _lead(self, own: _Job[Item, Result]) -> None:
        """Take ``own`` and the queued jobs with its key that fit; run them as one batch."""
        with self._queue_lock:
            taken, rest, size = [], [], 0
            for job in self._queue:
                fits = size + len(job.items) <= self._max_items
                if job is own or (job.key == own.key and fits):
                    taken.append(job)
                    size += len(job.items)
                else:
                    rest.append(job)
            self._queue = rest
        items = [item for job in taken for item in job.items]
        try:
            results = self._run_batch(items, own.key)
        except BaseException as exc:
            for job in taken:
                job.error, job.done = exc, True
            raise
        start = 0
        for job in taken:
            job.results = results[start:start + len(job.items)]
            job.done = True
            start += len(job.items)
