"""The background anchoring loop of a running service."""

from __future__ import annotations

import logging
import threading

from ..errors import LedgerError

log = logging.getLogger(__name__)


class AnchorLoop:
    """Calls ``ledger.anchor_tick()`` every ``interval`` seconds on a daemon thread.

    Chain outages do not stop ingestion: a failed tick is logged and retried on the
    next round, with the interval doubling up to ``max_interval`` while it keeps failing.
    """

    def __init__(self, ledger: object, interval: float = 1.0, max_interval: float = 30.0) -> None:
        self.ledger = ledger
        self.interval = interval
        self.max_interval = max_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchor-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                for event in self.ledger.anchor_tick():  # type: ignore[attr-defined]
                    log.info("anchor of tree size %s is %s (%s)", event.tree_size, event.status,
                             event.tx_hash)
                delay = self.interval
            except LedgerError as exc:
                delay = min(delay * 2, self.max_interval)
                log.warning("anchoring failed, retrying in %.1fs: %s", delay, exc)
