"""The background anchoring loop of a running service.

Chain trouble never stops ingestion (ingest does not touch the chain) and never needs
an operator: the loop keeps calling ``ledger.anchor_tick()`` and backs off while the
chain is unreachable or refused, then carries on where it left off (the anchors table
holds every signed transaction; see :mod:`ledger_service.anchoring`).

Retry policy, per *round* (one scheduled call of ``anchor_tick``):

* an unreachable chain (:class:`~ledger_service.errors.ChainUnavailableError`) is retried
  within the round, at most ``attempts`` calls in all, waiting ``retry_base * 2**k``
  (capped at ``max_interval``) between them;
* a refusal (:class:`~ledger_service.errors.ChainMismatchError`: another chain or no
  contract) or any other error ends the round at once: retrying it sooner would not
  change the answer;
* after a failed round the next one waits ``interval * 2**failures``, capped at
  ``max_interval``; the first good round goes back to ``interval``.

Every wait is jittered ("equal jitter": half the wait, plus a uniform draw over the
other half), so services sharing a node do not retry in lockstep, and no wait is ever
shorter than half its nominal value.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from ..anchoring import AnchorEvent
from ..errors import ChainUnavailableError, LedgerError

__all__ = ["AnchorLoop"]

log = logging.getLogger(__name__)


class _Ticks(Protocol):
    def anchor_tick(self) -> Sequence[AnchorEvent]: ...


class AnchorLoop:
    """Calls ``ledger.anchor_tick()`` every ``interval`` seconds on a daemon thread.

    Counters for health checks and tests: ``rounds``, ``failed_rounds``,
    ``consecutive_failures``, ``last_error``, and the recent ``waits`` (seconds slept
    before each round or retry) and ``round_attempts`` (calls made per round).
    """

    def __init__(self, ledger: _Ticks, interval: float = 1.0, max_interval: float = 30.0, *,
                 attempts: int = 3, retry_base: float = 0.5, rng: random.Random | None = None,
                 on_event: Callable[[AnchorEvent], None] | None = None) -> None:
        if interval <= 0 or max_interval < interval or attempts < 1 or retry_base <= 0:
            raise ValueError("need 0 < interval <= max_interval, attempts >= 1, retry_base > 0")
        self.ledger = ledger
        self.interval = interval
        self.max_interval = max_interval
        self.attempts = attempts
        self.retry_base = retry_base
        self.on_event = on_event
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchor-loop", daemon=True)
        self.rounds = 0
        self.failed_rounds = 0
        self.consecutive_failures = 0
        self.last_error: BaseException | None = None
        self.last_success: float | None = None
        """``time.monotonic()`` of the last good round."""
        self.waits: deque[float] = deque(maxlen=1000)
        self.round_attempts: deque[int] = deque(maxlen=1000)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _jitter(self, nominal: float) -> float:
        return nominal / 2 + self._rng.uniform(0, nominal / 2)

    def _sleep(self, nominal: float) -> bool:
        """Wait about ``nominal`` seconds; False if the loop was stopped meanwhile."""
        wait = self._jitter(min(nominal, self.max_interval))
        self.waits.append(wait)
        return not self._stop.wait(wait)

    def run_round(self) -> bool:
        """One round: up to ``attempts`` calls of ``anchor_tick``; True if one succeeded."""
        self.rounds += 1
        attempt = 0
        while attempt < self.attempts:
            attempt += 1
            try:
                events = self.ledger.anchor_tick()
            except ChainUnavailableError as exc:
                self.last_error = exc
                if attempt < self.attempts:
                    log.info("chain unavailable (attempt %d of %d): %s", attempt,
                             self.attempts, exc)
                    if self._sleep(self.retry_base * 2 ** (attempt - 1)):
                        continue
                log.warning("anchoring round failed after %d attempts: %s", attempt, exc)
                break
            except LedgerError as exc:
                self.last_error = exc
                log.error("anchoring refused: %s", exc)
                break
            except Exception as exc:  # a database hiccup must not kill the loop
                self.last_error = exc
                log.exception("anchoring round crashed")
                break
            self.round_attempts.append(attempt)
            for event in events:
                log.info("anchor of tree size %s is %s (%s)", event.tree_size, event.status,
                         event.tx_hash)
                if self.on_event is not None:
                    self.on_event(event)
            self.consecutive_failures = 0
            self.last_success = time.monotonic()
            return True
        self.round_attempts.append(attempt)
        self.failed_rounds += 1
        self.consecutive_failures += 1
        return False

    def next_wait(self) -> float:
        """The nominal (un-jittered) wait before the next round."""
        if self.consecutive_failures == 0:
            return self.interval
        doublings = min(self.consecutive_failures, 32)
        return min(self.max_interval, self.interval * float(2**doublings))

    def _run(self) -> None:
        while self._sleep(self.next_wait()):
            self.run_round()
