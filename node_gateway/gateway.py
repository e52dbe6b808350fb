"""The edge gateway: provisions meters with the ledger, records, signs, keeps, delivers.

One :class:`Gateway` owns a data directory (``keys/`` and ``outbox.db``) and, when it
needs the network, a :class:`~node_gateway.uploader.Transport` to the ledger. Recording
never needs the network: the deployment domain is fetched once at provisioning and
kept in the outbox, so a gateway cut off from the ledger keeps signing readings and
delivers them when the link is back (trust chain steps 1-2 of the mission).

Provisioning a device is idempotent and safe to re-run after any failure:

1. fetch the ledger's domain (``GET /v1/log``) and pin it in the outbox;
2. create the device key in the keystore, unless it has one (the private key never
   leaves the gateway; only the public key is sent);
3. register the device (``POST /v1/devices``; "already registered" is checked to be
   the same meter);
4. register the public key (``POST /v1/devices/{id}/keys``), unless the ledger lists it;
5. add the device to the outbox, which then starts its sequence numbers at 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from carbon_protocol.errors import ProtocolError
from carbon_protocol.models import Domain, Quantity, SuiteField
from carbon_protocol.suites import PrivateKey, PublicKey, parse_suite

from .csv_import import parse_csv
from .errors import (
    ConfigurationError,
    CsvImportError,
    CsvProblem,
    GatewayError,
    LedgerProtocolError,
    MeasurementConflictError,
    NotProvisionedError,
    RegistrationError,
)
from .keystore import Keystore
from .outbox import DeviceRow, Outbox, OutboxEntry, RecordResult, State, check_domain
from .settings import GatewaySettings
from .simulator import KIND_QUANTITY, Measurement, MeterKind, MeterSpec, Simulator, kind_of
from .uploader import (
    FlushReport,
    HttpTransport,
    LedgerClient,
    Progress,
    RetryPolicy,
    Transport,
    Uploader,
)

__all__ = ["DeviceSpec", "Organisation", "GatewayStatus", "Gateway", "default_fleet"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A meter to provision: what it measures, where it is, its calibration facts."""

    device_id: str
    quantity: Quantity
    unit: str
    serial: str
    site_id: str
    calibration: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_kind(cls, device_id: str, kind: MeterKind, site_id: str,
                 serial: str | None = None) -> DeviceSpec:
        """A spec for a simulator meter kind (``electricity``, ``gas`` in line m3,
        ``gas_corrected`` in Nm3 behind a volume corrector, ``heat``)."""
        quantity, unit, _ = KIND_QUANTITY[kind]
        return cls(device_id, quantity, unit, serial or device_id.rpartition("/")[2], site_id)


@dataclass(frozen=True, slots=True)
class Organisation:
    """Who the gateway belongs to: enterprise, site and the gateway's own identifier."""

    enterprise_id: str
    enterprise_name: str
    site_id: str
    site_name: str
    region: str
    gateway_id: str
    gateway_name: str

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> Organisation:
        """The organisation the settings describe."""
        return cls(s.resolved_enterprise_id, s.enterprise_name, s.resolved_site_id,
                   s.site_name, s.region, s.resolved_gateway_id, s.gateway_name)


def default_fleet(prefix: str, site_id: str) -> list[DeviceSpec]:
    """Three demo meters: electricity, natural gas and district heat. The gas meter is a
    plain line meter (m3), which inventories leave out; provision ``gas_corrected``
    meters (Nm3) to account natural gas."""
    return [
        DeviceSpec.for_kind(f"{prefix}/dev.elec-01", "electricity", site_id),
        DeviceSpec.for_kind(f"{prefix}/dev.gas-01", "gas", site_id),
        DeviceSpec.for_kind(f"{prefix}/dev.heat-01", "heat", site_id),
    ]


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """Counts per state, each device's next sequence number, and the dead letters."""

    counts: dict[State, int]
    devices: list[DeviceRow]
    dead_letters: list[OutboxEntry]
    domain: Domain | None


class Gateway:
    """Facade over keystore, outbox and uploader for one gateway data directory."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        transport: Transport | None = None,
        suite: SuiteField = "sm",
        gateway_id: str | None = None,
        batch_size: int = 500,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keystore = Keystore(self.data_dir / "keys")
        self.outbox = Outbox(self.data_dir / "outbox.db")
        self.suite: SuiteField = parse_suite(suite)
        self.gateway_id = gateway_id
        self.batch_size = batch_size
        self._transport = transport
        self._client: LedgerClient | None = None
        self._retry = retry
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: GatewaySettings | None = None, *,
                      transport: Transport | None = None) -> Gateway:
        """A gateway configured by ``GATEWAY_*`` settings, talking to ``ledger_url``
        unless another transport is given."""
        s = settings or GatewaySettings()
        return cls(
            s.data_dir,
            transport=transport or HttpTransport.for_url(
                s.ledger_url, timeout=s.timeout,
                api_key=None if s.api_key is None else s.api_key.get_secret_value()),
            suite=s.suite,
            gateway_id=s.resolved_gateway_id,
            batch_size=s.batch_size,
            retry=RetryPolicy(max_attempts=s.max_attempts, base_delay=s.base_delay,
                              max_delay=s.max_delay),
        )

    def __repr__(self) -> str:
        return f"Gateway({str(self.data_dir)!r})"

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the outbox and the transport."""
        self.outbox.close()
        if self._transport is not None:
            self._transport.close()

    # -- the ledger ---------------------------------------------------------------------
    @property
    def client(self) -> LedgerClient:
        """The retrying JSON client to the ledger (requires a transport)."""
        if self._client is None:
            if self._transport is None:
                raise ConfigurationError("this gateway has no transport to a ledger")
            kwargs: dict[str, Any] = {"retry": self._retry}
            if self._sleep is not None:
                kwargs["sleep"] = self._sleep
            self._client = LedgerClient(self._transport, **kwargs)
        return self._client

    def connect(self) -> Domain:
        """Fetch the ledger's domain; pin it the first time, insist on it afterwards."""
        info = self.client.get_json("/v1/log")
        try:
            domain = Domain.model_validate(info["domain"])
            suite = parse_suite(str(info["suite"]))
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            raise LedgerProtocolError(f"GET /v1/log answered no usable domain: {exc}") from None
        self.outbox.set_domain(domain, suite)
        return domain

    def _post(self, path: str, body: dict[str, Any], what: str) -> tuple[int, Any]:
        resp = self.client.call("POST", path, body)
        if resp.status in (200, 201, 409):
            return resp.status, resp.body
        problem = resp.body if isinstance(resp.body, dict) else {}
        raise RegistrationError(f"ledger refused to register {what}: {resp.status} "
                                f"{problem.get('code')}: {problem.get('message')}",
                                status=resp.status, code=problem.get("code"))

    def ensure_organisation(self, org: Organisation) -> None:
        """Register enterprise, site and gateway with the ledger (existing ones are kept)."""
        self._post("/v1/enterprises", {"id": org.enterprise_id, "name": org.enterprise_name},
                   f"enterprise {org.enterprise_id}")
        self._post("/v1/sites", {"id": org.site_id, "enterprise_id": org.enterprise_id,
                                 "name": org.site_name, "region": org.region},
                   f"site {org.site_id}")
        self._post("/v1/gateways", {"id": org.gateway_id, "enterprise_id": org.enterprise_id,
                                    "name": org.gateway_name}, f"gateway {org.gateway_id}")
        self.gateway_id = org.gateway_id

    def _device(self, device_id: str) -> dict[str, Any]:
        resp = self.client.call("GET", f"/v1/devices/{device_id}")
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise RegistrationError(f"cannot read device {device_id} from the ledger: "
                                    f"HTTP {resp.status}", status=resp.status)
        return resp.body

    def provision(self, spec: DeviceSpec) -> PublicKey:
        """Provision one meter (steps 1-5 of the module docstring); return its public key."""
        if self.outbox.domain() is None:
            self.connect()
        if not self.keystore.exists(spec.device_id):
            self.keystore.create(spec.device_id, self.suite)
        pub = self.keystore.public(spec.device_id)
        body: dict[str, Any] = {
            "id": spec.device_id, "site_id": spec.site_id, "quantity": spec.quantity,
            "unit": spec.unit, "serial": spec.serial, "calibration": dict(spec.calibration),
        }
        if self.gateway_id is not None:
            body["gateway_id"] = self.gateway_id
        status, device = self._post("/v1/devices", body, f"device {spec.device_id}")
        if status == 409:
            device = self._device(spec.device_id)
            if (device.get("quantity"), device.get("unit")) != (spec.quantity, spec.unit):
                raise RegistrationError(
                    f"device {spec.device_id} is registered for {device.get('quantity')} in "
                    f"{device.get('unit')}, not {spec.quantity} in {spec.unit}",
                    device=spec.device_id)
        self._register_key(spec.device_id, pub, device)
        self.outbox.add_device(spec.device_id, spec.quantity, spec.unit)
        log.info("provisioned %s (%s %s) with key %s", spec.device_id, spec.quantity,
                 spec.unit, pub.key_id)
        return pub

    def _register_key(self, device_id: str, pub: PublicKey, device: Any) -> None:
        keys = device.get("keys", []) if isinstance(device, dict) else []
        if any(k.get("key_id") == pub.key_id for k in keys):
            return
        status, _ = self._post(f"/v1/devices/{device_id}/keys",
                               {"suite": pub.suite, "public_key": pub.hex()},
                               f"key {pub.key_id} of device {device_id}")
        if status == 409:
            listed = self._device(device_id).get("keys", [])
            if not any(k.get("key_id") == pub.key_id for k in listed):
                raise RegistrationError(f"key {pub.key_id} is registered, but not for device "
                                        f"{device_id}", device=device_id, key_id=pub.key_id)

    def rotate_key(self, device_id: str) -> PublicKey:
        """Replace a device's key and register the new one; the old key stays valid at the
        ledger, so readings already signed with it are still accepted.

        If registration fails, the new key is already in use locally; re-running
        ``provision`` registers it (readings the ledger refused meanwhile as
        ``unknown_key`` can then be re-queued).
        """
        self.outbox.device(device_id)
        pub = self.keystore.rotate(device_id)
        try:
            self._register_key(device_id, pub, self._device(device_id))
        except GatewayError as exc:
            raise RegistrationError(f"key of {device_id} rotated to {pub.key_id} locally, but "
                                    f"registering it failed ({exc}); re-run provision",
                                    device=device_id, key_id=pub.key_id) from exc
        return pub

    # -- recording ----------------------------------------------------------------------
    def _key_for(self) -> Callable[[str], PrivateKey]:
        def load(device_id: str) -> PrivateKey:
            if not self.keystore.exists(device_id):
                raise NotProvisionedError(f"device {device_id} has no key on this gateway",
                                          device=device_id)
            return self.keystore.load(device_id)

        return load

    def record(self, measurements: Iterable[Measurement], *,
               on_conflict: Literal["raise", "skip"] = "raise") -> RecordResult:
        """Sign and store measurements in one outbox transaction (re-records are no-ops)."""
        return self.outbox.record(measurements, self._key_for(), on_conflict=on_conflict)

    def simulator(self, *, seed: int = 0, origin: datetime | None = None) -> Simulator:
        """A simulator for every provisioned device the simulator knows how to model."""
        meters = []
        for d in self.outbox.devices():
            kind = kind_of(d.quantity, d.unit)
            if kind is not None:
                meters.append(MeterSpec(d.device, kind))
        if not meters:
            raise NotProvisionedError("no provisioned device can be simulated; provision "
                                      "electricity (kWh), gas (m3 or Nm3) or heat (GJ) "
                                      "meters first")
        return Simulator(meters, seed=seed, **({"origin": origin} if origin else {}))

    def simulate(self, start: datetime, days: float, *, seed: int = 0,
                 origin: datetime | None = None,
                 on_day: Callable[[int, RecordResult], None] | None = None) -> RecordResult:
        """Record ``days`` of simulated measurements from ``start``, one outbox transaction
        per day, so an interrupted run resumes where it stopped when re-run."""
        sim = self.simulator(seed=seed, origin=origin)
        total = RecordResult()
        end = start + timedelta(days=days)
        day_start = start
        n = 0
        while day_start < end:
            day_end = min(day_start + timedelta(days=1), end)
            res = self.record(sim.readings(day_start, day_end))
            total.recorded += res.recorded
            total.unchanged += res.unchanged
            for dev, (a, b) in res.seqs.items():
                total.seqs[dev] = (total.seqs.get(dev, (a, b))[0], b)
            n += 1
            if on_day is not None:
                on_day(n, res)
            day_start = day_end
        return total

    def import_csv(self, path: Path | str) -> RecordResult:
        """Import a CSV file all-or-nothing: every row is validated, every device must be
        provisioned for the row's quantity and unit, and then all rows are signed and
        stored in one transaction. Any problem raises :class:`CsvImportError` naming
        the file, line and field, and nothing is stored."""
        rows = parse_csv(path)
        name = str(path)
        problems: list[CsvProblem] = []
        known = {d.device: d for d in self.outbox.devices()}
        for r in rows:
            m = r.measurement
            dev = known.get(m.device_id)
            if dev is None or not self.keystore.exists(m.device_id):
                problems.append(CsvProblem(name, r.line, "device",
                                           f"device {m.device_id} is not provisioned on this "
                                           "gateway"))
            elif (dev.quantity, dev.unit) != (m.quantity, m.unit):
                problems.append(CsvProblem(name, r.line, "quantity" if dev.quantity != m.quantity
                                           else "unit",
                                           f"device {m.device_id} measures {dev.quantity} in "
                                           f"{dev.unit}, not {m.quantity} in {m.unit}"))
        if problems:
            raise CsvImportError(name, problems)
        try:
            return self.outbox.record([r.measurement for r in rows], self._key_for())
        except MeasurementConflictError as exc:
            line = rows[int(exc.details["index"])].line
            raise CsvImportError(name, [CsvProblem(name, line, "value", str(exc))]) from None

    # -- delivering ---------------------------------------------------------------------
    def flush(self, *, on_progress: Callable[[Progress], None] | None = None,
              max_readings: int | None = None) -> FlushReport:
        """Deliver pending readings to the ledger (checking first that it is the same
        deployment the readings were signed for)."""
        known = self.outbox.domain()
        if known is not None and self.outbox.counts()["pending"]:
            info = self.client.get_json("/v1/log")
            try:
                announced = Domain.model_validate(info["domain"])
            except (KeyError, TypeError, ValueError) as exc:
                raise LedgerProtocolError(f"GET /v1/log answered no usable domain: {exc}") from None
            check_domain(known, announced)
        uploader = Uploader(self.outbox, self.client, batch_size=self.batch_size,
                            on_progress=on_progress)
        return uploader.flush(max_readings=max_readings)

    def status(self, *, dead_letter_limit: int = 100) -> GatewayStatus:
        """Counts per state, devices with their next sequence number, dead letters."""
        return GatewayStatus(self.outbox.counts(), self.outbox.devices(),
                             self.outbox.dead_letters(dead_letter_limit), self.outbox.domain())
