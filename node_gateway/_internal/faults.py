"""Crash injection for resilience tests: a real ``SIGKILL`` at a named point.

Set ``CARBON_CRASH_AT=<point>`` (or ``<point>:<n>`` to die on the n-th pass) in the
gateway's environment and it kills itself with SIGKILL when it reaches that point: no
``finally``, no ``atexit``, no flush, exactly like ``kill -9`` or a power cut at the
process level. Unset, a crash point costs one environment look-up.

The gateway's points (see :data:`CRASH_POINTS`):

``gateway.before_commit``  readings are signed and their sequence numbers taken
                           inside the outbox transaction, which is not committed yet;
``gateway.after_commit``   the outbox transaction committed, the caller has not
                           been told;
``gateway.before_ack``     the ledger answered an upload, the outbox has not yet
                           marked the readings acked or rejected.

The ledger service reads the same variable for its own points
(``ledger.before_commit``, ``ledger.after_commit``).
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINTS", "crash_point"]

CRASH_POINTS = ("gateway.before_commit", "gateway.after_commit", "gateway.before_ack")

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here with SIGKILL if ``CARBON_CRASH_AT`` names this point (and pass)."""
    spec = os.environ.get("CARBON_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
