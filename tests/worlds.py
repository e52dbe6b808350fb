"""One test world, written once: a ledger with the rule registry, keys for its callers, and
a gateway that measures, signs and submits an inventory to it over HTTP.

Many modules need the same real set-up (SQLite, the in-process EVM with ``CarbonAnchor``
and a ``RuleRegistry``, a gateway with real keys talking to the ledger's ASGI app) and
then differ only in their data: ids, seeds, suites, device kinds. Those stay in each test
module; the steps live here, so a change to how a gateway is set up is made in one place
and every module keeps meaning the same thing by "a gateway-signed inventory".

Import it as ``tests.worlds`` (like ``tests.conftest``).
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from carbon_protocol.inventory import Period
from carbon_protocol.models import SuiteField
from carbon_rules.inventory import period_from_label
from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
from ledger_service.api import create_app
from ledger_service.ledger import Ledger
from ledger_service.settings import Settings
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import DeviceSpec, Gateway, Organisation
from node_gateway.inventory import InventoryRun, Rules
from node_gateway.simulator import MeterKind
from node_gateway.uploader import HttpTransport
from tests.conftest import bearer, issue_api_key

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2
    from fastapi.testclient import TestClient

PREFIX = "86.1000.1"
DAY = period_from_label("2026-10-05")
"""The day the worlds' gateways measure: inside the default methodology's validity."""
START = datetime(2026, 10, 5, tzinfo=UTC)
"""The first instant of :data:`DAY`."""


def rules_ledger(tmp: Path, *, prefix: str = PREFIX, **settings: Any) -> Ledger:
    """A ledger in ``tmp / "ledger"`` whose embedded chain also holds a ``RuleRegistry``
    with the default methodology (what a gateway computes an inventory by); its log is
    ``{prefix}/log.main`` signed with SM2 unless ``settings`` say otherwise."""
    values: dict[str, Any] = {"data_dir": tmp / "ledger", "prefix": prefix,
                              "log_id": f"{prefix}/log.main", "log_suite": "sm", **settings}
    return Ledger.open(Settings(**values), rules=True)


def rules_app(tmp: Path, *, finance: dict[str, Any] | None = None,
              **settings: Any) -> tuple[Ledger, Any]:
    """:func:`rules_ledger` and its HTTP app; ``finance`` (when given) is written as the
    ledger's ``finance.json`` first, so the finance routes grade by it."""
    ledger = rules_ledger(tmp, **settings)
    if finance is not None:
        (Path(ledger.settings.data_dir) / "finance.json").write_text(json.dumps(finance))
    return ledger, create_app(ledger)


def api_key(ledger: Ledger, role: str, enterprises: Sequence[str] = (),
            party: str | None = None) -> str:
    """The secret of a new API key of ``role`` in ``ledger``, scoped to ``enterprises``
    and of ``party`` (for a bank or verifier by default ``tests.conftest``'s parties)."""
    return issue_api_key(ledger, role, tuple(enterprises), party)


def client(app: Any, key: str | None) -> TestClient:
    """An HTTP client of ``app`` sending ``key`` (none: an anonymous caller)."""
    return TestClient(app, headers={} if key is None else bearer(key))


def inventory_gateway(directory: Path, app: Any, key: str, org: Organisation,
                      devices: Sequence[tuple[str, MeterKind]], *, suite: SuiteField,
                      start: datetime | Sequence[datetime], days: float, seed: int) -> Gateway:
    """A gateway in ``directory`` talking to ``app`` with ``key``: it registers ``org``,
    provisions ``devices`` (id, simulator kind) at its site, records ``days`` of
    simulated readings from each ``start`` with ``seed``, delivers them and registers
    its inventory-signing key, so it is ready for :func:`submit_inventory`. The caller
    closes it."""
    gw = Gateway(directory, transport=HttpTransport.for_app(app, api_key=key), suite=suite)
    gw.ensure_organisation(org)
    for device_id, kind in devices:
        gw.provision(DeviceSpec.for_kind(device_id, kind, org.site_id))
    for first in [start] if isinstance(start, datetime) else start:
        gw.simulate(first, days, seed=seed)
    gw.flush()
    gw_inventory.ensure_gateway_key(gw)
    return gw


def submit_inventory(gw: Gateway, period: Period, rules: Rules | None = None
                     ) -> tuple[InventoryRun, dict[str, Any]]:
    """Compute and sign ``gw``'s inventory of ``period`` by ``rules`` (default: the
    default methodology as the ledger relays it) and submit it; the run and the ledger's
    receipt. Anchoring is left to the caller, which knows what its head must cover."""
    rules = rules or gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY)
    run = gw_inventory.compute(gw, period, rules)
    return run, gw_inventory.submit(gw, run.signed)


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free local port, for what must talk real
    HTTP (a CLI, a gateway); its base URL. The server stops when the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
