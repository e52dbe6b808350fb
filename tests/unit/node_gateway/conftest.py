"""Fixtures for the gateway's tests: real keys, real SQLite, a real ledger, real HTTP.

* ``offline_gateway``: a gateway with three provisioned meters and a pinned domain,
  no ledger (recording must work offline);
* ``live_ledger``: one real ledger per module (SQLite, in-process py-evm chain),
  served over real HTTP by :class:`FlakyServer`, a small threaded HTTP server that
  forwards to the ledger's ASGI app and can be told to misbehave for the next N
  requests (answer 503, drop the connection before or after the ledger stored the
  batch). The faults are real: the gateway sees real status codes and real broken
  connections on a real socket.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Test modules import their helpers from ``gw_support`` beside this file; make that work
# under every pytest import mode (``importlib`` does not put test directories on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gw_support import DOMAIN, ORG, PREFIX, FlakyServer, LiveLedger, fleet  # noqa: E402

from node_gateway.gateway import Gateway, default_fleet  # noqa: E402
from node_gateway.uploader import HttpTransport, RetryPolicy  # noqa: E402


@pytest.fixture
def offline_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway with the default fleet provisioned locally and a pinned domain."""
    gw = Gateway(tmp_path / "gw")
    gw.outbox.set_domain(DOMAIN, "sm")
    for spec in default_fleet(PREFIX, ORG.site_id):
        gw.keystore.create(spec.device_id, "sm")
        gw.outbox.add_device(spec.device_id, spec.quantity, spec.unit)
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def live_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveLedger]:
    """A real ledger (small body limit, to exercise batch splitting) behind a FlakyServer."""
    import warnings

    from ledger_service.api import create_app
    from ledger_service.auth import KeyCreate, Role, create_key
    from ledger_service.ledger import Ledger
    from ledger_service.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's "TestClient moves to httpx2" notice
        from fastapi.testclient import TestClient

    ledger = Ledger.open(Settings(data_dir=tmp_path_factory.mktemp("ledger"),
                                  max_body_bytes=96 * 1024))
    with ledger.engine.begin() as conn:  # the proxy presents an admin's key upstream
        key = create_key(conn, KeyCreate(role=Role.ADMIN, label="flaky proxy")).api_key
    upstream = TestClient(create_app(ledger), raise_server_exceptions=False,
                          headers={"Authorization": f"Bearer {key}"})
    server = FlakyServer(upstream)
    server.start()
    yield LiveLedger(ledger, server)
    server.stop()
    upstream.close()
    ledger.engine.dispose()


@pytest.fixture
def sleeps() -> list[float]:
    """Records the backoff delays instead of sleeping them."""
    return []


@pytest.fixture
def online_gateway(tmp_path: Path, live_ledger: LiveLedger,
                   sleeps: list[float]) -> Callable[..., Gateway]:
    """Factory: a gateway talking to ``live_ledger`` over HTTP, its fleet provisioned."""
    made: list[Gateway] = []
    counter = iter(range(1000))

    def make(*, provision: bool = True, url: str | None = None,
             retry: RetryPolicy | None = None, batch_size: int = 500) -> Gateway:
        n = next(counter)
        gw = Gateway(tmp_path / f"gw{n}", transport=HttpTransport.for_url(url or live_ledger.url),
                     batch_size=batch_size, sleep=sleeps.append,
                     retry=retry or RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=1.0))
        made.append(gw)
        if provision:
            gw.connect()
            gw.ensure_organisation(ORG)
            for spec in fleet(f"{tmp_path.name[-12:]}-{n}"):
                gw.provision(spec)
        return gw

    yield make  # type: ignore[misc]
    for gw in made:
        gw.close()
