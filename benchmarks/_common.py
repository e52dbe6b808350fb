"""Shared helpers: JSON output, sanity checks, statistics, and a real ledger to measure.

Everything a benchmark measures is real: SQLite files in a temporary directory, the
embedded py-evm chain with the compiled anchor contract, SM2/Ed25519 keys registered
through :mod:`ledger_service.registry`, readings signed with :func:`sign_reading`.
"""

from __future__ import annotations

import json
import math
import resource
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (benchmark workers run with it as their working directory)."""

PREFIX = "86.1000.1"
ENTERPRISE = f"{PREFIX}/ent.bench"
SITE = f"{PREFIX}/site.bench"
VALID_FROM = "2020-01-01T00:00:00Z"


class BenchmarkFailure(RuntimeError):
    """A benchmark's result is not real (a reading refused, a proof that fails...)."""


def check(condition: object, message: str) -> None:
    """Raise :class:`BenchmarkFailure` unless ``condition``; unlike ``assert``, survives -O."""
    if not condition:
        raise BenchmarkFailure(message)


def emit(metric: str, suite: str, value: float | int, unit: str, **context: Any) -> None:
    """Write one result as a JSON line on stdout (stdout carries nothing else)."""
    if isinstance(value, float):
        value = round(value, 4)
    line = {"metric": metric, "suite": suite, "value": value, "unit": unit, **context}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mb() -> float:
    """Current resident set size of this process, from ``/proc/self/status`` (Linux)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(message: str) -> None:
    """A note for the human watching, on stderr."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[dim]bench:[/dim] {escape(message)}")


@contextmanager
def progress(description: str, total: int) -> Iterator[Any]:
    """A rich progress bar on stderr (silent when stderr is not a terminal).

    Yields a function ``advance(n)``.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(escape(description), total=total)
        yield lambda n=1: bar.advance(task, n)


# -- a real ledger --------------------------------------------------------------------


@dataclass
class BenchDevice:
    """A registered device and its private key."""

    id: str
    key: Any  # carbon_protocol.suites.PrivateKey


def open_ledger(data_dir: Path, suite: str, **settings: Any) -> Any:
    """A fresh ledger whose log suite is ``suite``, with the bench enterprise and site."""
    from ledger_service import registry
    from ledger_service.ledger import Ledger
    from ledger_service.models import EnterpriseCreate, SiteCreate
    from ledger_service.settings import Settings

    led = Ledger.open(Settings(data_dir=data_dir, log_suite=suite, **settings))
    led.call(registry.create_enterprise, EnterpriseCreate(id=ENTERPRISE, name="Bench Steel"))
    led.call(registry.create_site, SiteCreate(id=SITE, enterprise_id=ENTERPRISE,
                                              name="Plant", region="Liaoning"))
    return led


def register_devices(led: Any, suite: str, count: int) -> list[BenchDevice]:
    """Register ``count`` meters, each with a fresh key of ``suite``."""
    from carbon_protocol.suites import PrivateKey
    from ledger_service import registry
    from ledger_service.models import DeviceCreate, DeviceKeyCreate

    out = []
    for i in range(count):
        ident = f"{PREFIX}/dev.bench{i:05d}"
        led.call(registry.create_device, DeviceCreate(
            id=ident, site_id=SITE, quantity="active_energy", unit="kWh", serial=ident))
        key = PrivateKey.generate(suite)  # type: ignore[arg-type]
        led.call(registry.add_device_key, ident, DeviceKeyCreate(
            suite=suite, public_key=key.public_key().hex(), valid_from=VALID_FROM))  # type: ignore[arg-type]
        out.append(BenchDevice(ident, key))
    return out


def signed_reading(dev: BenchDevice, seq: int, domain: Any, salt: str) -> Any:
    """A realistic 15-minute energy reading, signed by the device."""
    from carbon_protocol.models import Reading
    from carbon_protocol.signing import sign_reading

    minutes = 15 * seq
    reading = Reading(
        suite=dev.key.suite, key_id=dev.key.public_key().key_id, device=dev.id, seq=seq,
        measured_at=f"2026-{1 + minutes // 43200 % 12:02d}-{1 + minutes // 1440 % 28:02d}T"
                    f"{minutes // 60 % 24:02d}:{minutes % 60:02d}:00Z",
        quantity="active_energy", unit="kWh", value=f"{12 + seq % 7}.{seq % 1000:03d}",
        cumulative=f"{100000 + 12 * seq}.{seq % 1000:03d}", quality="measured", salt=salt,
        domain=domain,
    )
    return sign_reading(reading, dev.key)
