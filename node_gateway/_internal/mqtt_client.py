"""paho-mqtt plumbing for :mod:`node_gateway.mqtt`: clients, CONNACK reasons, backoff.

Kept apart so the public module speaks of readings, batches and sessions rather than
packets. Everything here uses paho-mqtt 2.x with ``CallbackAPIVersion.VERSION2``.
"""

from __future__ import annotations

import random
import ssl
from typing import TYPE_CHECKING

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

if TYPE_CHECKING:
    from ..mqtt import MqttConfig

__all__ = ["AUTH_REASONS", "Backoff", "connect_properties", "describe", "is_auth_failure",
           "new_client"]

AUTH_REASONS = {
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x8A: "banned",
    0x8C: "bad authentication method",
}
"""CONNACK reason codes (MQTT 5 numbering; paho maps 3.1.1 return codes 4 and 5 onto
0x86 and 0x87) that mean "these credentials are refused": retrying cannot help."""


def new_client(config: MqttConfig, *, client_id: str, persistent: bool,
               manual_ack: bool) -> paho.Client:
    """A paho client for ``config``: protocol, credentials and TLS set, not connected.

    ``persistent`` asks for a session the broker keeps across disconnections. For MQTT
    3.1.1 that is ``clean_session=False`` here; for MQTT 5 it is ``clean_start=False``
    and a session expiry interval at connect time (:func:`connect_properties`).
    """
    if config.protocol == "5":
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=client_id, protocol=paho.MQTTv5, manual_ack=manual_ack)
    else:
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=client_id, protocol=paho.MQTTv311,
                             clean_session=not persistent, manual_ack=manual_ack)
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if config.tls:
        client.tls_set(
            ca_certs=None if config.ca_file is None else str(config.ca_file),
            certfile=None if config.cert_file is None else str(config.cert_file),
            keyfile=None if config.key_file is None else str(config.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(config.tls_insecure)
    return client


def connect_properties(config: MqttConfig, *, persistent: bool,
                       receive_maximum: int | None = None) -> Properties | None:
    """CONNECT properties for MQTT 5 (``None`` for 3.1.1, which has none)."""
    if config.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if persistent:
        props.SessionExpiryInterval = config.session_expiry
    if receive_maximum is not None:
        # MQTT 5 lets the client bound how many unacknowledged QoS 1 messages the broker
        # sends it; Mosquitto then uses this instead of its max_inflight_messages.
        props.ReceiveMaximum = max(1, min(65535, receive_maximum))
    return props


def is_auth_failure(reason: ReasonCode) -> bool:
    """Whether a CONNACK reason says the broker refuses these credentials."""
    return reason.value in AUTH_REASONS


def describe(reason: ReasonCode) -> str:
    """A CONNACK/SUBACK reason as text, e.g. ``'Not authorized' (0x87)``."""
    return f"{str(reason)!r} (0x{reason.value:02x})"


class Backoff:
    """Exponential reconnect delays with jitter: ``min``, ``2*min``, ... capped at ``max``,
    each multiplied by a random factor in [0.5, 1] so a fleet does not reconnect in step."""

    def __init__(self, minimum: float, maximum: float, *,
                 rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        delay = min(self.maximum, self.minimum * (1 << min(self.attempt, 30)))
        self.attempt += 1
        return delay * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from ``min`` (after a successful connection)."""
        self.attempt = 0
