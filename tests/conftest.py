"""Shared fixtures: factories for a fresh ledger, its HTTP client, devices and readings.

Everything here is real: SQLite files in a temporary directory, the in-process py-evm
chain with the compiled anchor contract, real SM2/Ed25519 keys.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from carbon_protocol.models import Domain, Reading, SignedReading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey

ENTERPRISE = "86.1000.1/ent.test"
SITE = "86.1000.1/site.test"


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


@pytest.fixture
def ledger_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from ledger_service.ledger import Ledger
    from ledger_service.settings import Settings

    opened: list[Any] = []

    def make(**settings: Any) -> Any:
        settings.setdefault("data_dir", tmp_path / f"ledger{len(opened)}")
        ledger = Ledger.open(Settings(**settings))
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.engine.dispose()


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


@pytest.fixture
def client(ledger: Any) -> Any:
    from fastapi.testclient import TestClient

    from ledger_service.api import create_app

    with TestClient(create_app(ledger)) as c:
        yield c
