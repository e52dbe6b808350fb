"""Shared fixtures: factories for a fresh ledger, its HTTP client, devices and readings.

Everything here is real: real SM2/Ed25519 keys, a real database and a real EVM. Which
ones is chosen by the environment, so the same trust-chain suite runs on every backend
(CI runs it three times):

* ``CARBON_TEST_DATABASE_URL`` — a PostgreSQL server URL (e.g.
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``): every ledger gets a fresh
  database on that server, dropped afterwards. Unset: a SQLite file per ledger.
* ``CARBON_TEST_CHAIN`` — ``anvil`` or ``ganache``: one node process per test session
  (from the pinned npm packages), a fresh CarbonAnchor deployment per ledger. Unset or
  ``embedded``: the in-process py-evm chain.

A test about one backend in particular passes it explicitly (``chain="embedded"``).
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from carbon_protocol.models import Domain, Reading, SignedReading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey

# Property tests assert behaviour, never speed (speed lives in benchmarks/): a loaded CI
# machine must not fail one for a slow example or a slow generator. Tests that set their
# own settings still inherit these.
settings.register_profile("carbon", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          print_blob=True)
settings.load_profile("carbon")

ENTERPRISE = "86.1000.1/ent.test"
SITE = "86.1000.1/site.test"
BANK_PARTY = "86.1000.1/bank.test"
VERIFIER_PARTY = "86.1000.1/vfr.test"
DEFAULT_PARTIES = {"bank": BANK_PARTY, "verifier": VERIFIER_PARTY}
"""The organisation a bank or verifier key belongs to when a test names none."""


@dataclass
class Device:
    """A registered device with its private key and the next sequence number."""

    id: str
    key: PrivateKey
    domain: Domain
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def reading(self, **overrides: Any) -> Reading:
        values: dict[str, Any] = {
            "suite": self.key.suite, "key_id": self.key.public_key().key_id,
            "device": self.id, "seq": next(self.seq), "measured_at": "2026-01-01T00:15:00Z",
            "quantity": "active_energy", "unit": "kWh", "value": "12.5",
            "cumulative": "1000.5", "quality": "measured", "salt": secrets.token_hex(16),
            "domain": self.domain,
        }
        values.update(overrides)
        return Reading(**values)

    def signed(self, **overrides: Any) -> SignedReading:
        return sign_reading(self.reading(**overrides), self.key)


@pytest.fixture(scope="session")
def test_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The dev node named by ``CARBON_TEST_CHAIN``, or ``None`` for the embedded chain."""
    kind = os.environ.get("CARBON_TEST_CHAIN", "embedded")
    if kind == "embedded":
        yield None
        return
    if kind not in ("anvil", "ganache"):
        pytest.fail(f"CARBON_TEST_CHAIN={kind!r}: expected embedded, anvil or ganache")
    from ledger_service.devchain import start_node

    with start_node(kind, tmp_path_factory.mktemp(kind)) as node:  # type: ignore[arg-type]
        yield node


def _fresh_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty database on the server of ``server_url``; return its URL and a
    function that drops it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"carbon_t_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture
def ledger_factory(tmp_path: Path, test_chain: Any) -> Iterator[Callable[..., Any]]:
    """Open fresh ledgers on the backends the environment selects (see module docstring);
    explicit settings win."""
    from ledger_service._internal.chain import ChainClient
    from ledger_service.devchain import DEV_KEYS
    from ledger_service.ledger import Ledger
    from ledger_service.settings import Settings

    opened: list[Any] = []
    drops: list[Callable[[], None]] = []
    server = os.environ.get("CARBON_TEST_DATABASE_URL")

    def make(**settings: Any) -> Any:
        settings.setdefault("data_dir", tmp_path / f"ledger{len(opened)}")
        if server and "database_url" not in settings:
            settings["database_url"], drop = _fresh_database(server)
            drops.append(drop)
        if test_chain is not None and settings.get("chain", "rpc") == "rpc":
            settings.setdefault("chain", "rpc")
            settings.setdefault("rpc_url", test_chain.url)
            settings.setdefault("chain_id", test_chain.chain_id)
            settings.setdefault("anchor_private_key", DEV_KEYS[0])
            settings.setdefault("contract_address",
                                ChainClient.deploy(test_chain.url, DEV_KEYS[0]))
        ledger = Ledger.open(Settings(**settings))
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.engine.dispose()
    for drop in drops:
        drop()


def seed_ledger(led: Any) -> Any:
    """Register the test enterprise and its site."""
    from ledger_service import registry
    from ledger_service.models import EnterpriseCreate, SiteCreate

    led.call(registry.create_enterprise, EnterpriseCreate(id=ENTERPRISE, name="Test Steel"))
    led.call(registry.create_site, SiteCreate(id=SITE, enterprise_id=ENTERPRISE, name="Plant",
                                              region="Liaoning"))
    return led


_device_numbers = itertools.count(1)


def new_device(led: Any, suite: str = "sm", valid_from: str = "2026-01-01T00:00:00Z") -> Device:
    """Register a device with a fresh key of ``suite`` in ``led``."""
    from ledger_service import registry
    from ledger_service.models import DeviceCreate, DeviceKeyCreate

    ident = f"86.1000.1/dev.m{next(_device_numbers):04d}"
    led.call(registry.create_device, DeviceCreate(
        id=ident, site_id=SITE, quantity="active_energy", unit="kWh", serial=ident))
    key = PrivateKey.generate(suite)  # type: ignore[arg-type]
    led.call(registry.add_device_key, ident, DeviceKeyCreate(
        suite=suite, public_key=key.public_key().hex(), valid_from=valid_from))  # type: ignore[arg-type]
    return Device(ident, key, led.domain)


@pytest.fixture
def seeded_ledger(ledger_factory: Callable[..., Any]) -> Callable[..., Any]:
    """Factory: a fresh ledger with the given settings, enterprise and site registered."""
    return lambda **settings: seed_ledger(ledger_factory(**settings))


@pytest.fixture
def device_factory() -> Callable[..., Device]:
    """``new_device(ledger, suite=..., valid_from=...)``."""
    return new_device


@pytest.fixture
def ledger(seeded_ledger: Callable[..., Any]) -> Any:
    """A fresh ledger (SM3 log) with one enterprise and one site registered."""
    return seeded_ledger()


@pytest.fixture
def make_device(ledger: Any) -> Callable[..., Device]:
    """Register a device with a fresh key of the given suite in ``ledger``."""
    return lambda suite="sm", valid_from="2026-01-01T00:00:00Z": new_device(
        ledger, suite, valid_from)


def issue_api_key(led: Any, role: str = "admin", enterprises: tuple[str, ...] = (),
                  party: str | None = None) -> str:
    """Issue an API key of ``role`` (scoped to ``enterprises``, of ``party``: for a bank
    or verifier by default :data:`DEFAULT_PARTIES`) in ``led``; its secret."""
    from ledger_service.auth import KeyCreate, create_key

    party = party or DEFAULT_PARTIES.get(str(role))
    with led.engine.begin() as conn:
        return create_key(conn, KeyCreate.model_validate(
            {"role": role, "enterprises": list(enterprises), "label": f"test {role}",
             "party": party})).api_key


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization`` header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api_key_factory() -> Callable[..., str]:
    """``issue_api_key(ledger, role="admin", enterprises=(), party=None)``: a new key's
    secret."""
    return issue_api_key


@pytest.fixture
def client(ledger: Any) -> Any:
    """An HTTP client of ``ledger``'s API, authenticated as an admin."""
    from fastapi.testclient import TestClient

    from ledger_service.api import create_app

    with TestClient(create_app(ledger), headers=bearer(issue_api_key(ledger))) as c:
        yield c


@pytest.fixture
def client_as(ledger: Any) -> Iterator[Callable[..., Any]]:
    """Factory: an HTTP client of ``ledger``'s API authenticated with a new key of
    ``role`` scoped to ``enterprises`` (default the test enterprise for the roles that
    name one) and of ``party`` (default: :data:`DEFAULT_PARTIES` for a bank or verifier);
    ``role=None`` sends no key."""
    from fastapi.testclient import TestClient

    from ledger_service.api import create_app

    app = create_app(ledger)
    clients: list[Any] = []

    def make(role: str | None, enterprises: tuple[str, ...] | None = None,
             party: str | None = None) -> Any:
        if enterprises is None:
            enterprises = (ENTERPRISE,) if role in ("enterprise", "gateway", "buyer") else ()
        headers = {} if role is None else bearer(issue_api_key(ledger, role, enterprises,
                                                               party))
        clients.append(TestClient(app, headers=headers))
        return clients[-1]

    yield make
    for c in clients:
        c.close()
