"""Crash injection for resilience tests: a real ``SIGKILL`` at a named point.

Set ``CARBON_CRASH_AT=<point>`` (optionally ``<point>:<n>`` to crash on the n-th
pass) in a process's environment and it kills itself with SIGKILL when it reaches
that point — no cleanup, no flush, exactly like ``kill -9``. Unset, this costs one
dictionary lookup. Used by the ledger service and the node gateway alike.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here with SIGKILL if the environment asks for it."""
    spec = os.environ.get("CARBON_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
