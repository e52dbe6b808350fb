"""Meters publish readings over MQTT; the gateway subscribes, signs, keeps, acknowledges.

Trust chain step 1 of the mission when meters talk MQTT: a meter (or the data logger
in front of it) publishes each 15-minute measurement to a broker; the gateway takes it
from its own persistent session, records it in the durable outbox (sequence number,
signature and storage in one transaction, :mod:`node_gateway.outbox`) and only then
acknowledges it. Nothing between the meter's ``PUBACK`` and the outbox is held only in
memory by the gateway.

Topic
-----
``<root>/<site>/<device>/reading``, e.g. ``carbon/site.plant-01/dev.elec-01/reading``:

* ``<root>``: ``carbon`` (``GATEWAY_MQTT_TOPIC_ROOT``);
* ``<site>``: the suffix of the site identifier (``86.1000.1/site.plant-01`` ->
  ``site.plant-01``); a gateway subscribes to its own site
  (``GATEWAY_MQTT_SITE``, ``+`` for all sites);
* ``<device>``: the suffix of the device identifier. Identifier suffixes use only
  ``A-Z a-z 0-9 . _ : -``, so they are always one plain topic level;
* ``reading``: the message kind; a future payload version gets a new kind
  (``reading.v2``) rather than a flag inside the JSON.

The device level is what a broker ACL can bind to the meter's own login (Mosquitto:
``pattern write carbon/+/%u/reading``, see ``deploy/mosquitto/mosquitto.conf``), and the
gateway refuses a payload whose ``device`` does not end in that level. So a meter that
can only publish to its own topic can only speak for itself.

Payload
-------
UTF-8 JSON, at most :data:`MAX_PAYLOAD` bytes, parsed by :class:`MeterMessage`
(pydantic, ``strict``, ``extra="forbid"``: unknown fields, numbers where decimal
strings belong, or a naive time are refused, never coerced)::

    {"device": "86.1000.1/dev.elec-01", "measured_at": "2025-01-06T00:15:00Z",
     "quantity": "active_energy", "unit": "kWh", "value": "15.342",
     "cumulative": "482113.207", "quality": "measured"}

``measured_at`` is the end of the interval in UTC (``YYYY-MM-DDTHH:MM:SSZ``); ``value``
and ``cumulative`` (the register, ``null`` or absent when not read) are decimal text,
so no value is ever rounded through a float; the unit must fit the quantity.

Delivery: nothing lost, nothing doubled
---------------------------------------
1. **Persistent session.** The subscriber connects with a fixed client id
   (``GATEWAY_MQTT_CLIENT_ID``) and ``clean_start=False`` with a session expiry (MQTT 5)
   or ``clean_session=False`` (3.1.1), and subscribes with QoS 1. While the gateway is
   away the broker queues its readings. (paho's own MQTT 5 default,
   "clean start on first connect only", would discard that queue on every gateway
   restart, so it is not used.) The broker keeps readings for the gateway only once
   that session exists: start ``mqtt-run`` once before the meters publish.
2. **Acknowledge after commit.** ``manual_ack=True``: a message is acknowledged only
   after the outbox transaction that recorded it has committed. A gateway killed
   with ``SIGKILL`` at any point has either not committed (the broker redelivers) or
   committed without acknowledging (the broker redelivers, and the outbox's
   ``UNIQUE(device, measured_at, quantity)`` makes the redelivery a no-op).
   Acknowledgements are tied to the connection that delivered the message; a
   message received before a reconnect is never acknowledged on the new connection
   (the broker redelivers it instead).
3. **Batches.** Up to ``GATEWAY_MQTT_BATCH_SIZE`` messages are recorded in one outbox
   transaction and then acknowledged together; a batch is committed as soon as it is
   full, or the broker pauses, or its first message has waited
   ``GATEWAY_MQTT_BATCH_WAIT`` seconds. With MQTT 5 the gateway asks the broker for a
   window (receive maximum) of twice the batch size.
4. **Reconnect with backoff** (``GATEWAY_MQTT_RECONNECT_MIN`` .. ``_MAX``, jittered).
   Refused credentials are not retried: :class:`BrokerAuthError` names the broker
   and the user. A reconnect that finds no session at the broker although this
   gateway had subscribed before is logged as a warning (and counted): the broker
   lost the queue, e.g. because it ran without persistence.

Rejected messages: dead letters, never dropped
----------------------------------------------
A message that cannot become a reading (bad topic, too large, not JSON, a schema
violation, a topic/device mismatch, a device not provisioned here, a quantity the
device does not measure, or a different value for a measurement already recorded) is
stored **with its raw payload** in the dead-letter table (``mqtt.db`` beside the
outbox, :class:`DeadLetters`) together with a stable code and the reason, logged as
a warning, counted, and only then acknowledged. It never stops the gateway and is not
acknowledged-then-lost: ``carbon-gateway mqtt-dead-letters`` lists them, and
``--replay`` records the ones that have become valid (e.g. after provisioning the
meter). Acknowledging is necessary: an unacknowledged message would occupy the
broker's in-flight window forever and stall every meter behind it.

The broker matters too
----------------------
Mosquitto's defaults drop QoS 1 messages: beyond ``max_queued_messages`` (1000) per
client, messages for a slow or absent subscriber are discarded (measured: 68 % of a
fast stream lost). ``deploy/mosquitto/mosquitto.conf`` raises the queue limits and turns
persistence on; ``tests/integration/test_mqtt_gateway.py`` shows both the loss with the
defaults and none with the shipped file. Mosquitto persists by snapshot, so a broker
killed with ``SIGKILL`` (not a restart) can lose readings it had acknowledged to
meters since its last save: the shipped file saves after every change and says what
that costs.

Crash point (resilience tests, :mod:`node_gateway._internal.faults`):
``gateway.mqtt.before_ack``: the batch is committed, nothing is acknowledged yet.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.models import (
    QUANTITY_UNITS,
    DecimalStr,
    Quality,
    Quantity,
    UtcTimestamp,
    format_utc,
)

from ._internal.faults import crash_point
from ._internal.mqtt_client import (
    Backoff,
    connect_properties,
    describe,
    is_auth_failure,
    new_client,
)
from .errors import (
    ConfigurationError,
    GatewayError,
    MeasurementConflictError,
    NotProvisionedError,
)
from .gateway import Gateway
from .settings import GatewaySettings
from .simulator import Measurement

__all__ = [
    "MAX_PAYLOAD",
    "DEAD_LETTER_FILE",
    "RejectCode",
    "MqttConfig",
    "MeterMessage",
    "reading_topic",
    "subscription_filter",
    "parse_message",
    "DeadLetter",
    "DeadLetters",
    "BatchReport",
    "BatchRecorder",
    "ReplayReport",
    "SubscriberStats",
    "MqttSubscriber",
    "PeriodicFlush",
    "PublishReport",
    "MeterPublisher",
    "MqttError",
    "MessageRejectedError",
    "BrokerUnavailableError",
    "BrokerAuthError",
    "BrokerRefusedError",
]

log = logging.getLogger(__name__)

MAX_PAYLOAD = 4096
"""Largest payload accepted (a reading is about 230 bytes); larger ones are dead letters,
stored truncated to this size with the SHA-256 of the whole payload."""
DEAD_LETTER_FILE = "mqtt.db"
READING_KIND = "reading"
_IDLE_GAP = 0.003
"""Seconds without a new message after which a non-empty batch is committed: the broker
has paused (window exhausted or queue empty), so waiting longer only adds latency."""

RejectCode = Literal[
    "invalid_topic", "too_large", "invalid_json", "invalid_reading", "device_mismatch",
    "device_not_provisioned", "quantity_mismatch", "measurement_conflict",
]


# -- errors ------------------------------------------------------------------------------
class MqttError(GatewayError):
    """The MQTT side of the gateway failed (broker, session, or a message)."""

    code = "mqtt_error"


class MessageRejectedError(MqttError, ValueError):
    """One MQTT message cannot become a reading; ``reason`` is its :data:`RejectCode`."""

    code = "mqtt_message_rejected"

    def __init__(self, message: str, *, reason: RejectCode, **details: Any) -> None:
        super().__init__(message, reason=reason, **details)
        self.reason: RejectCode = reason


class BrokerUnavailableError(MqttError, ConnectionError):
    """The broker could not be reached (or not over TLS) within the allowed time.

    Nothing is lost: readings stay queued in the gateway's session at the broker.
    """

    code = "broker_unavailable"


class BrokerAuthError(MqttError, PermissionError):
    """The broker refused the gateway's credentials (retrying cannot help)."""

    code = "broker_auth_failed"


class BrokerRefusedError(MqttError):
    """The broker refused the subscription, or granted less than QoS 1."""

    code = "broker_refused"


# -- configuration ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MqttConfig:
    """How to reach the broker and what to subscribe to (see ``GATEWAY_MQTT_*``)."""

    host: str = "127.0.0.1"
    port: int = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = "carbon-gateway"
    topic_root: str = "carbon"
    site: str = "+"
    session_expiry: int = 7 * 86400
    keepalive: int = 30
    batch_size: int = 500
    batch_wait: float = 0.25
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    connect_timeout: float = 10.0

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> MqttConfig:
        """The configuration ``GATEWAY_MQTT_*`` describes."""
        return cls(
            host=s.mqtt_host, port=s.mqtt_port, protocol=s.mqtt_protocol,
            client_id=s.resolved_mqtt_client_id, topic_root=s.mqtt_topic_root,
            site=s.resolved_mqtt_site, session_expiry=s.mqtt_session_expiry,
            keepalive=s.mqtt_keepalive, batch_size=s.mqtt_batch_size,
            batch_wait=s.mqtt_batch_wait, reconnect_min=s.mqtt_reconnect_min,
            reconnect_max=s.mqtt_reconnect_max, username=s.mqtt_username,
            password=None if s.mqtt_password is None else s.mqtt_password.get_secret_value(),
            tls=s.mqtt_tls, ca_file=s.mqtt_ca_file, cert_file=s.mqtt_cert_file,
            key_file=s.mqtt_key_file, tls_insecure=s.mqtt_tls_insecure,
        )

    @property
    def broker(self) -> str:
        """``mqtt[s]://host:port`` for messages."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def subscription(self) -> str:
        """The topic filter the gateway subscribes to."""
        return subscription_filter(site=self.site, root=self.topic_root)


# -- topics and payloads ----------------------------------------------------------------
def _suffix(identifier: str) -> str:
    return identifier.partition("/")[2]


def reading_topic(device_id: str, *, site: str, root: str = "carbon") -> str:
    """The topic a meter publishes ``device_id``'s readings to (``site`` is a suffix)."""
    return f"{root}/{_suffix(site) if '/' in site else site}/{_suffix(device_id)}/{READING_KIND}"


def subscription_filter(*, site: str = "+", root: str = "carbon") -> str:
    """The filter for every meter of ``site`` (``+``: of every site)."""
    return f"{root}/{site}/+/{READING_KIND}"


class MeterMessage(BaseModel):
    """The JSON a meter publishes for one measurement (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    device: IdentifierStr
    measured_at: UtcTimestamp
    quantity: Quantity
    unit: str = Field(max_length=8)
    value: DecimalStr
    cumulative: DecimalStr | None = None
    quality: Quality

    @model_validator(mode="after")
    def _unit_fits_quantity(self) -> MeterMessage:
        if self.unit not in QUANTITY_UNITS[self.quantity]:
            allowed = ", ".join(sorted(QUANTITY_UNITS[self.quantity]))
            raise ValueError(f"unit {self.unit!r} is not valid for {self.quantity} (use {allowed})")
        return self

    @classmethod
    def from_measurement(cls, m: Measurement) -> MeterMessage:
        """The message a meter would publish for ``m``."""
        return cls(device=m.device_id, measured_at=format_utc(m.measured_at),
                   quantity=m.quantity, unit=m.unit, value=m.value, cumulative=m.cumulative,
                   quality=m.quality)

    def measurement(self) -> Measurement:
        """The measurement this message carries, ready for the outbox."""
        # measured_at was validated as YYYY-MM-DDTHH:MM:SSZ (a real date): parse fast.
        at = datetime.fromisoformat(self.measured_at[:-1]).replace(tzinfo=UTC)
        return Measurement(self.device, at, self.quantity, self.unit, self.value,
                           self.cumulative, self.quality)

    def payload(self) -> bytes:
        """The JSON bytes to publish."""
        return self.model_dump_json().encode()


def parse_message(topic: str, payload: bytes, *, root: str = "carbon") -> Measurement:
    """The measurement an MQTT message carries; raises :class:`MessageRejectedError`
    with the reason (:data:`RejectCode`) when it carries none."""
    levels = topic.split("/")
    if len(levels) != 4 or levels[0] != root or levels[3] != READING_KIND or not all(levels):
        raise MessageRejectedError(
            f"topic {topic!r} is not {root}/<site>/<device>/{READING_KIND}",
            reason="invalid_topic")
    if len(payload) > MAX_PAYLOAD:
        raise MessageRejectedError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}",
                                   reason="too_large")
    try:
        msg = MeterMessage.model_validate_json(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MessageRejectedError(f"payload is not UTF-8 JSON: {errors[0]['msg']}",
                                       reason="invalid_json") from None
        shown = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                          for e in errors[:5])
        raise MessageRejectedError(f"not a reading: {shown}", reason="invalid_reading") from None
    if _suffix(msg.device) != levels[2]:
        # A meter allowed to publish only to its own topic must not speak for another.
        raise MessageRejectedError(
            f"payload device {msg.device} was published to the topic of device "
            f"{levels[2]!r}", reason="device_mismatch", device=msg.device)
    return msg.measurement()


# -- dead letters -----------------------------------------------------------------------
_DL_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id              INTEGER PRIMARY KEY,
    topic           TEXT NOT NULL,
    payload         BLOB NOT NULL,
    payload_sha256  TEXT NOT NULL,
    payload_size    INTEGER NOT NULL,
    code            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    first_seen      TEXT NOT NULL,
    last_seen       TEXT NOT NULL,
    deliveries      INTEGER NOT NULL DEFAULT 1,
    UNIQUE (topic, payload_sha256)
)
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not become a reading, kept with its raw payload."""

    id: int
    topic: str
    payload: bytes
    """The raw payload (the first :data:`MAX_PAYLOAD` bytes when it was larger)."""
    payload_sha256: str
    payload_size: int
    code: str
    reason: str
    first_seen: str
    last_seen: str
    deliveries: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DeadLetters:
    """The dead-letter table (SQLite, ``synchronous=FULL``): one row per distinct
    (topic, payload); a redelivered or republished copy counts a delivery."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in _DL_SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> DeadLetters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, items: Sequence[tuple[str, bytes, str, str]]) -> list[int]:
        """Store ``(topic, payload, code, reason)`` items in one transaction; return ids."""
        if not items:
            return []
        now = _now()
        ids = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for topic, payload, code, reason in items:
                    digest = hashlib.sha256(payload).hexdigest()
                    row = self._db.execute(
                        "INSERT INTO dead_letters (topic, payload, payload_sha256, payload_size,"
                        " code, reason, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (topic, payload_sha256) DO UPDATE SET "
                        "deliveries=deliveries+1, last_seen=excluded.last_seen, "
                        "code=excluded.code, reason=excluded.reason RETURNING id",
                        (topic, payload[:MAX_PAYLOAD], digest, len(payload), code, reason, now,
                         now)).fetchone()
                    ids.append(int(row[0]))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return ids

    def list(self, limit: int | None = 100) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, payload_sha256, payload_size, code, reason, "
                "first_seen, last_seen, deliveries FROM dead_letters ORDER BY id LIMIT ?",
                (-1 if limit is None else limit,)).fetchall()
        return [DeadLetter(int(r[0]), r[1], bytes(r[2]), r[3], int(r[4]), r[5], r[6], r[7],
                           r[8], int(r[9])) for r in rows]

    def count(self) -> int:
        """How many dead letters are kept."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def remove(self, ids: Sequence[int]) -> None:
        """Delete dead letters (after a replay recorded them)."""
        with self._lock:
            self._db.executemany("DELETE FROM dead_letters WHERE id=?", [(i,) for i in ids])

    def get_meta(self, key: str) -> str | None:
        """A small persistent fact about this gateway's MQTT session."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Remember a small fact about this gateway's MQTT session."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


# -- recording a batch ------------------------------------------------------------------
@dataclass
class BatchReport:
    """What one batch of messages became, once it is durable."""

    received: int = 0
    recorded: int = 0
    """New readings (signed, sequence numbers taken)."""
    unchanged: int = 0
    """Measurements recorded before (a redelivery or a meter's retry): no-ops."""
    rejected: int = 0
    dead_letter_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Rejection:
    index: int
    code: RejectCode
    reason: str


class BatchRecorder:
    """Turns a batch of MQTT messages into outbox readings and dead letters.

    When :meth:`record` returns, every message of the batch is durable: recorded in the
    outbox (one transaction), recognised as recorded before, or stored as a dead
    letter. Only then may the batch be acknowledged. Local storage failures (disk
    full, a corrupt outbox) raise, and nothing of the batch may be acknowledged.
    """

    def __init__(self, gateway: Gateway, dead_letters: DeadLetters, *,
                 topic_root: str = "carbon") -> None:
        self.gateway = gateway
        self.dead_letters = dead_letters
        self.topic_root = topic_root
        self._devices: dict[str, tuple[str, str]] = {}
        self._keyed: set[str] = set()

    def _device(self, device: str) -> tuple[str, str] | None:
        if device not in self._devices:
            self._devices = {d.device: (d.quantity, d.unit)
                             for d in self.gateway.outbox.devices()}
        found = self._devices.get(device)
        if found is not None and device not in self._keyed:
            if not self.gateway.keystore.exists(device):
                return None
            self._keyed.add(device)
        return found

    def _process(self, messages: Sequence[tuple[str, bytes]]
                 ) -> tuple[BatchReport, list[_Rejection]]:
        report = BatchReport(received=len(messages))
        rejections: list[_Rejection] = []
        valid: list[tuple[int, Measurement]] = []
        for i, (topic, payload) in enumerate(messages):
            try:
                m = parse_message(topic, payload, root=self.topic_root)
            except MessageRejectedError as exc:
                rejections.append(_Rejection(i, exc.reason, str(exc)))
                continue
            known = self._device(m.device_id)
            if known is None:
                rejections.append(_Rejection(
                    i, "device_not_provisioned",
                    f"device {m.device_id} is not provisioned on this gateway"))
            elif known != (m.quantity, m.unit):
                rejections.append(_Rejection(
                    i, "quantity_mismatch", f"device {m.device_id} measures {known[0]} in "
                    f"{known[1]}, not {m.quantity} in {m.unit}"))
            else:
                valid.append((i, m))
        while valid:
            try:
                res = self.gateway.record([m for _, m in valid])
            except MeasurementConflictError as exc:
                # Another value for a measurement already recorded: the outbox never
                # overwrites. Set that message aside and record the rest.
                at = int(exc.details["index"])
                rejections.append(_Rejection(valid[at][0], "measurement_conflict", str(exc)))
                del valid[at]
                continue
            except NotProvisionedError as exc:
                gone = exc.details.get("device")
                if gone is None:
                    raise
                self._devices.clear()
                self._keyed.discard(str(gone))
                rejections.extend(_Rejection(i, "device_not_provisioned", str(exc))
                                  for i, m in valid if m.device_id == gone)
                valid = [(i, m) for i, m in valid if m.device_id != gone]
                continue
            report.recorded, report.unchanged = res.recorded, res.unchanged
            break
        rejections.sort(key=lambda r: r.index)
        report.rejected = len(rejections)
        return report, rejections

    def record(self, messages: Sequence[tuple[str, bytes]]) -> BatchReport:
        """Record ``(topic, payload)`` messages; every one is durable on return."""
        report, rejections = self._process(messages)
        if rejections:
            report.dead_letter_ids = self.dead_letters.add(
                [(messages[r.index][0], messages[r.index][1], r.code, r.reason)
                 for r in rejections])
            for r, dl in zip(rejections, report.dead_letter_ids, strict=True):
                topic, payload = messages[r.index]
                log.warning("rejected MQTT message on %s: [%s] %s; kept as dead letter #%d, "
                            "payload %r", topic, r.code, r.reason, dl, payload[:300])
        return report

    def replay(self, limit: int | None = None) -> ReplayReport:
        """Record the dead letters that have become valid (e.g. their meter is now
        provisioned) and drop them from the table; the rest stay, with today's reason."""
        letters = self.dead_letters.list(limit)
        report, rejections = self._process([(d.topic, d.payload) for d in letters])
        still = {r.index for r in rejections}
        self.dead_letters.remove([d.id for i, d in enumerate(letters) if i not in still])
        self.dead_letters.add([(letters[r.index].topic, letters[r.index].payload, r.code,
                                r.reason) for r in rejections])
        return ReplayReport(len(letters), report.recorded, report.unchanged, len(rejections))


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Outcome of replaying dead letters."""

    replayed: int
    recorded: int
    unchanged: int
    still_rejected: int


# -- the subscriber ---------------------------------------------------------------------
@dataclass
class SubscriberStats:
    """Counters of one :meth:`MqttSubscriber.run`."""

    received: int = 0
    redelivered: int = 0
    """Messages the broker flagged as redelivered (DUP)."""
    recorded: int = 0
    unchanged: int = 0
    rejected: int = 0
    acked: int = 0
    batches: int = 0
    connects: int = 0
    sessions_lost: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped: float | None = None

    @property
    def seconds(self) -> float:
        """Running time so far (or in total, once stopped)."""
        return (self.stopped or time.monotonic()) - self.started

    def summary(self) -> str:
        """One line for logs and the CLI."""
        rate = self.received / self.seconds if self.seconds > 0 else 0.0
        return (f"received {self.received} ({self.redelivered} redelivered), recorded "
                f"{self.recorded}, already recorded {self.unchanged}, dead letters "
                f"{self.rejected}, in {self.batches} batches over {self.connects} "
                f"connection(s); {rate:.0f} msg/s")


class _Inbound(NamedTuple):
    mid: int
    qos: int
    topic: str
    payload: bytes
    generation: int


class MqttSubscriber:
    """The gateway's MQTT subscriber: one thread, one persistent session, batches
    committed to the outbox before they are acknowledged (see the module docstring).

    ``run`` drives paho's network loop itself (no background thread), so receiving,
    committing and acknowledging happen in one order on one thread.
    """

    def __init__(self, gateway: Gateway, config: MqttConfig, *,
                 dead_letters: DeadLetters | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None) -> None:
        self.gateway = gateway
        self.config = config
        self._own_dead_letters = dead_letters is None
        self.dead_letters = dead_letters or DeadLetters(gateway.data_dir / DEAD_LETTER_FILE)
        self.recorder = BatchRecorder(gateway, self.dead_letters, topic_root=config.topic_root)
        self.stats = SubscriberStats()
        self._on_batch = on_batch
        self._client: paho.Client | None = None
        self._generation = 0
        self._connected = False
        self._subscribed = 0
        self._refused: ReasonCode | None = None
        self._fatal: MqttError | None = None
        self._pending: list[_Inbound] = []
        self._first_at = 0.0
        self._last_message_at = time.monotonic()

    def close(self) -> None:
        """Close the dead-letter table if this subscriber opened it."""
        if self._own_dead_letters:
            self.dead_letters.close()

    def __enter__(self) -> MqttSubscriber:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def subscribed(self) -> bool:
        """Whether the subscriber is connected and its subscription granted."""
        return self._connected and self._subscribed == self._generation > 0

    # -- paho callbacks (called from within client.loop on this thread) ----------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            self._refused = reason
            return
        self._generation += 1
        self._connected = True
        self.stats.connects += 1
        if not flags.session_present and self.dead_letters.get_meta("subscribed") is not None:
            self.stats.sessions_lost += 1
            log.warning("the broker at %s had no session for client %s although this gateway "
                        "subscribed before: readings published while it was away may be lost "
                        "(does the broker run with persistence and a long enough session "
                        "expiry?)", self.config.broker, self.config.client_id)
        client.subscribe(self.config.subscription, qos=1)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        granted = reasons[0]
        if granted.is_failure or granted.value != 1:
            self._fatal = BrokerRefusedError(
                f"the broker at {self.config.broker} answered the QoS 1 subscription to "
                f"{self.config.subscription} with {describe(granted)}; refusing to run "
                "without it", topic=self.config.subscription)
            return
        self._subscribed = self._generation
        self.dead_letters.set_meta("subscribed", self.config.subscription)
        log.info("subscribed to %s (QoS 1) at %s as %s", self.config.subscription,
                 self.config.broker, self.config.client_id)

    def _on_disconnect(self, client: paho.Client, userdata: Any,
                       flags: paho.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        if self._connected:
            log.warning("disconnected from %s: %s", self.config.broker, describe(reason))
        self._connected = False

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = bytes(msg._topic).decode("utf-8", "replace")
        now = time.monotonic()
        if not self._pending:
            self._first_at = now
        self._last_message_at = now
        self._pending.append(_Inbound(msg.mid, msg.qos, topic, bytes(msg.payload),
                                      self._generation))
        self.stats.received += 1
        if msg.dup:
            self.stats.redelivered += 1

    # -- connection --------------------------------------------------------------------
    def _connack_refusal(self) -> ReasonCode | None:
        return self._refused  # set by _on_connect during client.loop

    def _connect(self, client: paho.Client) -> bool:
        """One connection attempt; True once connected and subscribed."""
        cfg = self.config
        self._refused = None
        props = connect_properties(cfg, persistent=True, receive_maximum=2 * cfg.batch_size)
        try:
            if cfg.protocol == "5":
                client.connect(cfg.host, cfg.port, cfg.keepalive, clean_start=False,
                               properties=props)
            else:
                client.connect(cfg.host, cfg.port, cfg.keepalive)
        except ssl.SSLError as exc:
            raise BrokerUnavailableError(
                f"TLS with the broker at {cfg.broker} failed: {exc}; check "
                "GATEWAY_MQTT_CA_FILE and the broker's certificate", broker=cfg.broker) from None
        except OSError as exc:
            log.warning("broker %s unreachable: %s", cfg.broker, exc)
            return False
        deadline = time.monotonic() + cfg.connect_timeout
        while time.monotonic() < deadline and self._fatal is None:
            rc = client.loop(0.05)
            refused = self._connack_refusal()
            if refused is not None:
                if is_auth_failure(refused):
                    who = f"user {cfg.username!r}" if cfg.username else "anonymous access"
                    raise BrokerAuthError(
                        f"the broker at {cfg.broker} refused {who} for client "
                        f"{cfg.client_id}: {describe(refused)}; check "
                        "GATEWAY_MQTT_USERNAME and GATEWAY_MQTT_PASSWORD",
                        broker=cfg.broker, username=cfg.username)
                log.warning("broker %s refused the connection: %s", cfg.broker,
                            describe(refused))
                return False
            if self._connected and self._subscribed == self._generation:
                return True
            if rc != paho.MQTT_ERR_SUCCESS:
                log.warning("connection to %s closed during set-up: %s", cfg.broker,
                            paho.error_string(rc))
                return False
        if self._fatal is not None:
            raise self._fatal
        log.warning("broker %s did not complete the connection within %.0f s", cfg.broker,
                    cfg.connect_timeout)
        client.disconnect()
        self._connected = False
        return False

    # -- batches -----------------------------------------------------------------------
    def _commit(self, client: paho.Client, *, ack: bool) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        report = self.recorder.record([(m.topic, m.payload) for m in batch])
        crash_point("gateway.mqtt.before_ack")
        acked = 0
        if ack:
            for m in batch:
                # Only on the connection that delivered it: after a reconnect the broker
                # redelivers (the outbox makes that a no-op), and an old packet id
                # could name another message now.
                if m.qos > 0 and m.generation == self._generation and self._connected:
                    client.ack(m.mid, m.qos)
                    acked += 1
        if report.unchanged:
            log.info("%d of %d messages were recorded before (redelivered after a crash or a "
                     "reconnect, or re-sent by a meter): no-ops", report.unchanged, len(batch))
        s = self.stats
        s.batches += 1
        s.recorded += report.recorded
        s.unchanged += report.unchanged
        s.rejected += report.rejected
        s.acked += acked
        if self._on_batch is not None:
            self._on_batch(report)
        self._last_message_at = time.monotonic()  # idle time starts after the commit

    def _check_ready(self) -> None:
        if self.gateway.outbox.domain() is None:
            raise ConfigurationError(
                "the outbox does not know the ledger's domain yet: run `carbon-gateway "
                "provision` once before `mqtt-run`")
        if not self.gateway.outbox.devices():
            raise ConfigurationError("no device is provisioned on this gateway: run "
                                     "`carbon-gateway provision` first")

    def run(self, stop: threading.Event | None = None, *, idle_exit: float | None = None,
            give_up_after: float | None = None) -> SubscriberStats:
        """Subscribe and record until ``stop`` is set (then commit, acknowledge and
        disconnect cleanly).

        ``idle_exit``: also return after that many seconds without a message.
        ``give_up_after``: raise :class:`BrokerUnavailableError` when the broker has
        been unreachable that long (default: keep retrying with backoff).
        Raises :class:`BrokerAuthError` at once when the credentials are refused.
        """
        stop = stop or threading.Event()
        self._check_ready()
        cfg = self.config
        client = self._client = new_client(cfg, client_id=cfg.client_id, persistent=True,
                                           manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        backoff = Backoff(cfg.reconnect_min, cfg.reconnect_max)
        down_since: float | None = time.monotonic()
        self.stats = SubscriberStats()
        self._last_message_at = time.monotonic()
        try:
            while not stop.is_set():
                if self._fatal is not None:
                    raise self._fatal
                if not self._connected:
                    # Keep what arrived (recording is idempotent); the broker redelivers it.
                    self._commit(client, ack=False)
                    if down_since is None:
                        down_since = time.monotonic()
                    if self._connect(client):
                        backoff.reset()
                        down_since = None
                        continue
                    if give_up_after is not None and \
                            time.monotonic() - down_since >= give_up_after:
                        raise BrokerUnavailableError(
                            f"the broker at {cfg.broker} has been unreachable for "
                            f"{give_up_after:.0f} s; readings stay queued in the broker's "
                            f"session for {cfg.client_id}", broker=cfg.broker)
                    stop.wait(backoff.next())
                    continue
                before = len(self._pending)
                if self._pending:
                    left = cfg.batch_wait - (time.monotonic() - self._first_at)
                    timeout = max(0.0, min(_IDLE_GAP, left))
                else:
                    timeout = 0.2
                rc = client.loop(timeout)
                last = before
                while rc == paho.MQTT_ERR_SUCCESS and last < len(self._pending) \
                        < cfg.batch_size:
                    # Read what the socket already holds without another select().
                    last = len(self._pending)
                    rc = client.loop_read()
                if rc != paho.MQTT_ERR_SUCCESS:
                    if self._connected:
                        log.warning("connection to %s lost: %s", cfg.broker,
                                    paho.error_string(rc))
                    self._connected = False
                    continue
                n = len(self._pending)
                if n and (n >= cfg.batch_size or n == before
                          or time.monotonic() - self._first_at >= cfg.batch_wait):
                    self._commit(client, ack=True)
                if (idle_exit is not None and not self._pending
                        and time.monotonic() - self._last_message_at >= idle_exit):
                    break
            self._commit(client, ack=True)
        finally:
            self._connected = False
            self.stats.stopped = time.monotonic()
            client.on_disconnect = None
            client.disconnect()
        log.info("MQTT subscriber stopped: %s", self.stats.summary())
        return self.stats


# -- delivering to the ledger while running ---------------------------------------------
class PeriodicFlush:
    """Deliver the outbox to the ledger every ``interval`` seconds on a thread of its
    own, with its own gateway (its own outbox connection), so a slow or absent ledger
    never holds up the MQTT subscriber. Ledger outages are logged and retried at the
    next interval; readings wait in the outbox meanwhile."""

    def __init__(self, open_gateway: Callable[[], Gateway], interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._open = open_gateway
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flushes = 0
        self.failures = 0

    def __enter__(self) -> PeriodicFlush:
        self._thread = threading.Thread(target=self._run, name="carbon-flush", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        try:
            gw = self._open()
        except Exception:
            log.exception("cannot open the gateway for flushing; no flushes will run")
            return
        with gw:
            while not self._stop.wait(self.interval):
                try:
                    report = gw.flush()
                except GatewayError as exc:
                    self.failures += 1
                    log.warning("flush to the ledger failed (readings stay in the outbox): "
                                "%s", exc)
                    continue
                self.flushes += 1
                if report.accepted or report.duplicates or report.rejected:
                    log.info("flushed to the ledger: accepted %d, duplicates %d, rejected %d",
                             report.accepted, report.duplicates, report.rejected)


# -- a meter, for simulations and tests -------------------------------------------------
@dataclass(frozen=True, slots=True)
class PublishReport:
    """How many readings a publisher delivered to the broker (PUBACK received)."""

    published: int
    seconds: float
    refused: int = 0
    """Messages the broker answered with a failure reason (MQTT 5, e.g. ACL denial)."""


class MeterPublisher:
    """Publishes measurements as meters would: one JSON message per measurement, QoS 1,
    on :func:`reading_topic`. :meth:`publish` returns once the broker acknowledged every
    message (paho resends unacknowledged ones after a reconnect)."""

    def __init__(self, config: MqttConfig, *, site: str | None = None,
                 client_id: str | None = None, inflight: int = 500) -> None:
        self.config = config
        self.site = site if site is not None else config.site
        if self.site == "+":
            raise ConfigurationError("a publisher needs a concrete site topic level, not '+'")
        self.client_id = client_id or f"carbon-meter-sim-{os.getpid()}-{secrets.token_hex(3)}"
        self._client = new_client(config, client_id=self.client_id, persistent=False,
                                  manual_ack=False)
        self._client.max_inflight_messages_set(inflight)
        self._client.reconnect_delay_set(1, max(1, int(config.reconnect_max)))
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._cond = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._refused_count = 0
        self._connected = False
        self._refused: ReasonCode | None = None
        self._started = False

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        with self._cond:
            if reason.is_failure:
                self._refused = reason
            else:
                self._connected = True
            self._cond.notify_all()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        with self._cond:
            self._acked += 1
            if reason.is_failure:
                self._refused_count += 1
            self._cond.notify_all()

    def connect(self, timeout: float = 30.0) -> None:
        """Connect (retrying with backoff for up to ``timeout`` seconds) and start the
        network thread; raises :class:`BrokerAuthError` or :class:`BrokerUnavailableError`."""
        cfg = self.config
        backoff = Backoff(cfg.reconnect_min, cfg.reconnect_max)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._client.connect(cfg.host, cfg.port, cfg.keepalive)
                break
            except ssl.SSLError as exc:
                raise BrokerUnavailableError(f"TLS with the broker at {cfg.broker} failed: "
                                             f"{exc}", broker=cfg.broker) from None
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailableError(f"the broker at {cfg.broker} is unreachable:"
                                                 f" {exc}", broker=cfg.broker) from None
                time.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))
        self._client.loop_start()
        self._started = True
        with self._cond:
            self._cond.wait_for(lambda: self._connected or self._refused is not None,
                                timeout=max(0.1, deadline - time.monotonic()))
            refused, connected = self._refused, self._connected
        if refused is not None:
            self.close()
            if is_auth_failure(refused):
                raise BrokerAuthError(f"the broker at {cfg.broker} refused "
                                      f"{cfg.username or 'anonymous access'!r}: "
                                      f"{describe(refused)}", broker=cfg.broker)
            raise BrokerRefusedError(f"the broker at {cfg.broker} refused the connection: "
                                     f"{describe(refused)}", broker=cfg.broker)
        if not connected:
            self.close()
            raise BrokerUnavailableError(f"the broker at {cfg.broker} did not accept the "
                                         f"connection within {timeout:.0f} s", broker=cfg.broker)

    def _send(self, topic: str, payload: bytes, qos: int) -> None:
        with self._cond:
            self._sent += 1
        self._client.publish(topic, payload, qos=qos)

    def publish_raw(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish one message as is (e.g. a malformed one, in tests); see :meth:`drain`."""
        if not self._started:
            self.connect()
        self._send(topic, payload, qos)

    def publish(self, measurements: Iterable[Measurement], *,
                timeout: float = 300.0) -> PublishReport:
        """Publish every measurement at QoS 1 and wait until the broker acknowledged all
        of them (across reconnects); raises :class:`BrokerUnavailableError` after
        ``timeout`` seconds."""
        if not self._started:
            self.connect()
        began = time.monotonic()
        with self._cond:
            refused_before = self._refused_count
        sent = 0
        for m in measurements:
            msg = MeterMessage.from_measurement(m)
            self._send(reading_topic(m.device_id, site=self.site, root=self.config.topic_root),
                       msg.payload(), 1)
            sent += 1
        self.drain(timeout=max(0.0, began + timeout - time.monotonic()))
        with self._cond:
            refused = self._refused_count - refused_before
        return PublishReport(sent, time.monotonic() - began, refused)

    def drain(self, timeout: float = 300.0) -> None:
        """Wait until the broker acknowledged every message published so far; raises
        :class:`BrokerUnavailableError` after ``timeout`` seconds."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._acked >= self._sent, timeout=timeout)
            acked, sent = self._acked, self._sent
        if not done:
            raise BrokerUnavailableError(
                f"the broker at {self.config.broker} acknowledged {acked} of {sent} messages "
                f"within {timeout:.0f} s", broker=self.config.broker)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def __enter__(self) -> MeterPublisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
