"""Health, metrics and ingest instrumentation of the HTTP service.

``GET /health`` checks three components and answers 200 when all are ``ok``, else 503:

``database``   ``SELECT 1`` on the ledger's database, with its latency; ``down`` if it fails.
``chain``      head block number and lag (seconds since the head block's timestamp),
               read with a time limit; ``down`` if the node cannot be read, ``degraded``
               if the lag or the chain RPC errors of the recent window exceed their
               limits. The embedded chain mines only on demand, so its lag is reported
               but not judged.
``anchoring``  tree size, the size covered by final anchors, and the age of the oldest
               reading not yet covered by one; ``degraded`` past its limit.

The overall ``status`` is ``down`` when the database is, ``degraded`` when anything else
is not ``ok``, and ``ok`` otherwise. Limits come from ``LEDGER_HEALTH_*`` variables
(:class:`HealthSettings`); a limit of 0 turns its check off.

``GET /metrics`` is the Prometheus text exposition of
:data:`~ledger_service._internal.metrics.REGISTRY`, followed by gauges read from the
database at scrape time (tree size, anchored size, unanchored leaves and age).

:class:`IngestMetrics` times every ingest request and counts readings by outcome, at
the HTTP edge: the outcome of ``POST /v1/readings`` is its status code (201 accepted,
200 duplicate, 4xx rejected, 5xx error); that of ``POST /v1/readings/batch`` is the
counts in its 200 answer. A batch refused as a whole (4xx) has no per-reading outcome
and is only timed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, func, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._internal.clock import utc_now, utc_text
from .._internal.db import anchors, readings
from .._internal.metrics import INGEST_SECONDS, READINGS, REGISTRY, RPC_ERRORS
from ..auth import public
from ..errors import LedgerError
from ..ledger import Ledger

__all__ = ["HealthSettings", "HealthChecker", "IngestMetrics", "LedgerCollector",
           "install_health"]

Status = Literal["ok", "degraded", "down"]

INGEST_ONE_PATH = "/v1/readings"
INGEST_BATCH_PATH = "/v1/readings/batch"


class HealthSettings(BaseSettings):
    """Limits of ``/health`` (``LEDGER_HEALTH_*``); 0 turns a check off."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_HEALTH_", extra="ignore", frozen=True)

    max_chain_lag_seconds: float = Field(default=300.0, ge=0)
    """Degraded when the head block is older than this (JSON-RPC chains only)."""
    max_rpc_errors: int = Field(default=10, ge=0)
    """Degraded when more chain RPC calls than this failed within the window."""
    rpc_error_window_seconds: float = Field(default=300.0, gt=0)
    max_unanchored_age_seconds: float = Field(default=3600.0, ge=0)
    """Degraded when a reading has waited longer than this for a final anchor."""
    chain_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long the chain probe may take before the chain counts as down."""


# -- reading the database -------------------------------------------------------------


@dataclass(frozen=True)
class AnchorCoverage:
    """How much of the log final anchors cover, and how long the rest has waited."""

    tree_size: int
    anchored_size: int
    oldest_unanchored_age: float | None

    @property
    def unanchored(self) -> int:
        return max(0, self.tree_size - self.anchored_size)


def _age_seconds(stamp: str, now: datetime) -> float:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0.0, (now - moment).total_seconds())


def anchor_coverage(ledger: Ledger, conn: Connection, now: datetime) -> AnchorCoverage:
    """Tree size, the largest final anchor, and the age of the first leaf past it."""
    size = ledger.log.size(conn)
    anchored = conn.execute(
        select(func.max(anchors.c.tree_size)).where(anchors.c.status == "final")
    ).scalar_one_or_none()
    covered = min(int(anchored or 0), size)
    age = None
    if size > covered:
        received = conn.execute(
            select(readings.c.received_at).where(readings.c.leaf_index >= covered)
            .order_by(readings.c.leaf_index).limit(1)
        ).scalar_one_or_none()
        if received is not None:
            age = _age_seconds(str(received), now)
    return AnchorCoverage(size, covered, age)


# -- the chain probe ------------------------------------------------------------------


class _Probe:
    """Runs a blocking call on a daemon thread and waits for it at most ``timeout``.

    A node that hangs must not hang ``/health``. While one probe is still running,
    later calls wait on it instead of starting another, so a dead node costs one
    thread, not one per health request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[threading.Thread, dict[str, Any]] | None = None

    def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        with self._lock:
            if self._current is None or not self._current[0].is_alive():
                box: dict[str, Any] = {}

                def target() -> None:
                    try:
                        box["value"] = fn()
                    except BaseException as exc:  # handed to the waiting caller
                        box["error"] = exc

                thread = threading.Thread(target=target, name="health-chain-probe",
                                          daemon=True)
                thread.start()
                self._current = (thread, box)
            thread, box = self._current
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"no answer within {timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]


class _ErrorWindow:
    """Chain RPC errors counted in the last ``window`` seconds, from the cumulative
    :data:`RPC_ERRORS` counter sampled at each health check."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque([(time.monotonic(), _rpc_errors())])

    def count(self) -> int:
        now, total = time.monotonic(), _rpc_errors()
        with self._lock:
            self._samples.append((now, total))
            # Keep the newest sample at or before the window's start as the baseline.
            while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
                self._samples.popleft()
            return int(total - self._samples[0][1])


def _rpc_errors() -> float:
    return sum(s.value for metric in RPC_ERRORS.collect() for s in metric.samples
               if s.name.endswith("_total"))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class HealthChecker:
    """Computes the ``/health`` report of one ledger (see the module docstring)."""

    def __init__(self, ledger: Ledger, settings: HealthSettings | None = None) -> None:
        self.ledger = ledger
        self.settings = settings or HealthSettings()
        self._probe = _Probe()
        self._errors = _ErrorWindow(self.settings.rpc_error_window_seconds)

    def _database(self, now: datetime) -> tuple[dict[str, Any], AnchorCoverage | None]:
        started = time.perf_counter()
        try:
            with self.ledger.reader.connect() as conn:
                conn.execute(text("SELECT 1"))
                latency = time.perf_counter() - started
                coverage = anchor_coverage(self.ledger, conn, now)
                conn.rollback()
        except Exception as exc:  # any driver error means the database is not usable
            return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:500]}, None
        return {"status": "ok", "latency_ms": _ms(latency)}, coverage

    def _read_head(self) -> tuple[int, int]:
        chain = self.ledger.chain
        head = int(chain.block_number())
        _, timestamp = chain.block(head)
        return head, int(timestamp)

    def _chain(self) -> dict[str, Any]:
        s = self.settings
        kind = self.ledger.settings.chain
        out: dict[str, Any] = {"kind": kind, "chain_id": self.ledger.domain.chain_id}
        errors = self._errors.count()
        out["rpc_errors_in_window"] = errors
        out["rpc_error_window_seconds"] = s.rpc_error_window_seconds
        started = time.perf_counter()
        try:
            head, timestamp = self._probe.run(self._read_head, s.chain_timeout_seconds)
        except (LedgerError, TimeoutError) as exc:
            return {"status": "down", **out, "error": str(exc)[:500]}
        except Exception as exc:  # /health reports, it never fails itself
            return {"status": "down", **out, "error": f"{type(exc).__name__}: {exc}"[:500]}
        lag = max(0.0, time.time() - timestamp)
        out |= {"latency_ms": _ms(time.perf_counter() - started), "head_block": head,
                "head_timestamp": timestamp, "lag_seconds": round(lag, 3)}
        problems = []
        if kind == "rpc" and s.max_chain_lag_seconds and lag > s.max_chain_lag_seconds:
            problems.append(f"head block is {lag:.0f} s old (limit "
                            f"{s.max_chain_lag_seconds:g} s)")
        if s.max_rpc_errors and errors > s.max_rpc_errors:
            problems.append(f"{errors} chain RPC errors in the last "
                            f"{s.rpc_error_window_seconds:g} s (limit {s.max_rpc_errors})")
        return {"status": "degraded" if problems else "ok", **out,
                **({"problems": problems} if problems else {})}

    def _anchoring(self, coverage: AnchorCoverage | None) -> dict[str, Any]:
        if coverage is None:
            return {"status": "down", "error": "database unavailable"}
        limit = self.settings.max_unanchored_age_seconds
        age = coverage.oldest_unanchored_age
        out: dict[str, Any] = {
            "tree_size": coverage.tree_size, "anchored_tree_size": coverage.anchored_size,
            "unanchored_leaves": coverage.unanchored, "oldest_unanchored_age_seconds": age,
        }
        if limit and age is not None and age > limit:
            return {"status": "degraded", **out, "problems": [
                f"oldest unanchored reading waited {age:.0f} s (limit {limit:g} s)"]}
        return {"status": "ok", **out}

    def report(self) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, JSON body)`` of one health check."""
        now = utc_now()
        database, coverage = self._database(now)
        components: dict[str, dict[str, Any]] = {
            "database": database, "chain": self._chain(), "anchoring": self._anchoring(coverage),
        }
        overall: Status
        if database["status"] == "down":
            overall = "down"
        elif all(c["status"] == "ok" for c in components.values()):
            overall = "ok"
        else:  # ingest still works without the chain: the service is degraded, not down
            overall = "degraded"
        body = {
            "status": overall,
            "checked_at": utc_text(now),
            "tree_size": None if coverage is None else coverage.tree_size,
            "oldest_unanchored_age_seconds":
                None if coverage is None else coverage.oldest_unanchored_age,
            "components": components,
        }
        return (200 if overall == "ok" else 503), body


# -- metrics --------------------------------------------------------------------------


class LedgerCollector(Collector):
    """Gauges read from one ledger's database at scrape time."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("carbon_ledger_database_up",
                               "1 if the database answered this scrape, else 0")
        try:
            with self.ledger.reader.connect() as conn:
                cov = anchor_coverage(self.ledger, conn, utc_now())
                conn.rollback()
        except Exception:  # a scrape reports the outage instead of failing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("carbon_ledger_tree_size", "Leaves in the Merkle log",
                                value=cov.tree_size)
        yield GaugeMetricFamily("carbon_ledger_anchored_tree_size",
                                "Tree size covered by the largest final anchor",
                                value=cov.anchored_size)
        yield GaugeMetricFamily("carbon_ledger_unanchored_leaves",
                                "Leaves not yet covered by a final anchor",
                                value=cov.unanchored)
        yield GaugeMetricFamily(
            "carbon_ledger_oldest_unanchored_age_seconds",
            "Seconds the oldest reading not covered by a final anchor has waited (0 if none)",
            value=cov.oldest_unanchored_age or 0.0)


def metrics_text(ledger_registry: CollectorRegistry) -> bytes:
    """The shared registry's exposition followed by the ledger's scrape-time gauges."""
    return generate_latest(REGISTRY) + generate_latest(ledger_registry)


# -- ingest instrumentation -----------------------------------------------------------


class IngestMetrics:
    """ASGI middleware: :data:`INGEST_SECONDS` and :data:`READINGS` for ingest requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if scope.get("method") != "POST" or path not in (INGEST_ONE_PATH, INGEST_BATCH_PATH):
            await self.app(scope, receive, send)
            return
        batch = path == INGEST_BATCH_PATH
        status = 500
        body: list[bytes] = []

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and batch and status == 200:
                body.append(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, observed)
        finally:
            INGEST_SECONDS.observe(time.perf_counter() - started)
            for outcome, n in (_batch_outcomes(b"".join(body)) if batch
                               else _single_outcome(status)):
                if n:
                    READINGS.labels(status=outcome).inc(n)


def _single_outcome(status: int) -> Iterator[tuple[str, int]]:
    if status == 201:
        yield "accepted", 1
    elif status == 200:
        yield "duplicate", 1
    elif 400 <= status < 500:
        yield "rejected", 1
    else:
        yield "error", 1


def _batch_outcomes(body: bytes) -> Iterator[tuple[str, int]]:
    if not body:
        return
    try:
        result = json.loads(body)
        counts = [("accepted", int(result["accepted"])), ("duplicate", int(result["duplicates"])),
                  ("rejected", int(result["rejected"]))]
    except (ValueError, KeyError, TypeError):
        return
    yield from counts


# -- wiring ---------------------------------------------------------------------------


def install_health(app: FastAPI, ledger: Ledger, settings: HealthSettings | None = None) -> None:
    """Add ``/health``, ``/metrics`` and the ingest instrumentation to ``app``."""
    checker = HealthChecker(ledger, settings)
    ledger_registry = CollectorRegistry(auto_describe=False)
    ledger_registry.register(LedgerCollector(ledger))
    router = APIRouter(tags=["health"])

    @router.get("/health", responses={503: {"description": "degraded or down"}})
    @public("load balancers and orchestrators probe it without credentials; it shows "
            "component status and sizes, no data")
    def health() -> JSONResponse:
        """Database, chain and anchoring status; 200 when all are ok, else 503."""
        status, body = checker.report()
        return JSONResponse(body, status_code=status)

    @router.get("/metrics", response_class=Response)
    @public("scraped by Prometheus inside the deployment's network; counters and sizes, no "
            "data (restrict it at the network edge)")
    def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(metrics_text(ledger_registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    app.state.health = checker
    app.add_middleware(IngestMetrics)
