"""MQTT messages without a broker: topics, the strict payload, batches, dead letters,
acknowledgement order, settings.

Rejected payloads are named by their defect (``value-as-number``, ``topic-other-device``)
and each must be refused with its stable code, never coerced.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gw_support import JAN6, ORG, PREFIX
from pydantic import ValidationError

from node_gateway._internal.mqtt_client import Backoff
from node_gateway.errors import ConfigurationError
from node_gateway.gateway import Gateway
from node_gateway.mqtt import (
    MAX_PAYLOAD,
    BatchRecorder,
    BrokerUnavailableError,
    DeadLetters,
    MessageRejectedError,
    MeterMessage,
    MqttConfig,
    MqttSubscriber,
    parse_message,
    reading_topic,
    subscription_filter,
)
from node_gateway.settings import GatewaySettings

SITE = ORG.site_id.partition("/")[2]
ELEC = f"{PREFIX}/dev.elec-01"
GAS = f"{PREFIX}/dev.gas-01"


def topic(device: str = ELEC) -> str:
    return reading_topic(device, site=SITE)


def body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device": ELEC, "measured_at": "2025-01-06T00:15:00Z", "quantity": "active_energy",
        "unit": "kWh", "value": "15.342", "cumulative": "482113.207", "quality": "measured",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not ...}


def payload(**overrides: Any) -> bytes:
    return json.dumps(body(**overrides)).encode()


# -- topics and payloads --------------------------------------------------------------------
def test_topic_is_root_site_suffix_device_suffix_kind() -> None:
    assert reading_topic(ELEC, site=ORG.site_id) == "carbon/site.gwtest/dev.elec-01/reading"
    assert reading_topic(ELEC, site="plant-9", root="acme") == "acme/plant-9/dev.elec-01/reading"
    assert subscription_filter(site=SITE) == "carbon/site.gwtest/+/reading"
    assert subscription_filter() == "carbon/+/+/reading"


def test_simulated_measurements_round_trip_through_the_payload(
    offline_gateway: Gateway
) -> None:
    measurements = list(offline_gateway.simulator(seed=5).readings(JAN6, JAN6 + timedelta(days=3)))
    assert any(m.cumulative is None for m in measurements)  # estimated readings included
    for m in measurements:
        raw = MeterMessage.from_measurement(m).payload()
        assert parse_message(reading_topic(m.device_id, site=SITE), raw) == m
        assert json.loads(raw)["measured_at"].endswith("Z")


def test_cumulative_may_be_absent() -> None:
    m = parse_message(topic(), payload(cumulative=...))
    assert m.cumulative is None


REJECTED: dict[str, tuple[str, bytes, str, str]] = {
    # name: (topic, payload, code, reason pattern)
    "topic-too-short": ("carbon/dev.elec-01/reading", payload(), "invalid_topic",
                        "is not carbon/<site>/<device>/reading"),
    "topic-wrong-root": (f"other/{SITE}/dev.elec-01/reading", payload(), "invalid_topic", ""),
    "topic-wrong-kind": (f"carbon/{SITE}/dev.elec-01/status", payload(), "invalid_topic", ""),
    "topic-empty-level": ("carbon//dev.elec-01/reading", payload(), "invalid_topic", ""),
    "topic-other-device": (topic(GAS), payload(), "device_mismatch",
                           "was published to the topic of device 'dev.gas-01'"),
    "payload-too-large": (topic(), payload(value="1" * 4) + b" " * MAX_PAYLOAD, "too_large",
                          "exceeds 4096"),
    "not-json": (topic(), b"{device: elec}", "invalid_json", "not UTF-8 JSON"),
    "not-utf8": (topic(), b"\xff\xfe\x00{}", "invalid_json", ""),
    "json-array": (topic(), b"[1, 2]", "invalid_reading", ""),
    "value-as-number": (topic(), payload(value=15.342), "invalid_reading",
                        "value: Input should be a valid string"),
    "value-with-exponent": (topic(), payload(value="1e3"), "invalid_reading", "value"),
    "cumulative-as-number": (topic(), payload(cumulative=482113), "invalid_reading",
                             "cumulative"),
    "unknown-field": (topic(), payload(temperature="21.5"), "invalid_reading",
                      "temperature: Extra inputs are not permitted"),
    "missing-quality": (topic(), payload(quality=...), "invalid_reading",
                        "quality: Field required"),
    "quality-unknown": (topic(), payload(quality="guessed"), "invalid_reading", "quality"),
    "time-naive": (topic(), payload(measured_at="2025-01-06T00:15:00"), "invalid_reading",
                   "measured_at"),
    "time-with-offset": (topic(), payload(measured_at="2025-01-06T08:15:00+08:00"),
                         "invalid_reading", "measured_at"),
    "time-impossible-date": (topic(), payload(measured_at="2025-02-30T00:15:00Z"),
                             "invalid_reading", "measured_at"),
    "time-as-epoch": (topic(), payload(measured_at=1736122500), "invalid_reading",
                      "measured_at"),
    "unit-wrong-for-quantity": (topic(), payload(unit="m3"), "invalid_reading",
                                "unit 'm3' is not valid for active_energy"),
    "quantity-unknown": (topic(), payload(quantity="co2"), "invalid_reading", "quantity"),
    "device-not-an-identifier": (topic(), payload(device="dev.elec-01"), "invalid_reading",
                                 "device"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_payloads_name_their_defect(name: str) -> None:
    t, raw, code, pattern = REJECTED[name]
    with pytest.raises(MessageRejectedError, match=pattern or None) as info:
        parse_message(t, raw)
    assert info.value.reason == code
    assert info.value.diagnostics()["code"] == "mqtt_message_rejected"


def test_meter_message_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        MeterMessage.model_validate(body(value=1.5))
    msg = MeterMessage.model_validate(body())
    with pytest.raises(ValidationError):
        msg.value = "2.0"  # type: ignore[misc]


# -- batches: recording, dead letters, replay ------------------------------------------------
@pytest.fixture
def recorder(offline_gateway: Gateway) -> Any:
    with DeadLetters(offline_gateway.data_dir / "mqtt.db") as dead:
        yield BatchRecorder(offline_gateway, dead)


def sim_messages(gw: Gateway, hours: int = 2) -> list[tuple[str, bytes]]:
    return [(reading_topic(m.device_id, site=SITE), MeterMessage.from_measurement(m).payload())
            for m in gw.simulator(seed=1).readings(JAN6, JAN6 + timedelta(hours=hours))]


def test_a_batch_records_the_valid_and_keeps_the_rest_as_dead_letters(
    offline_gateway: Gateway, recorder: BatchRecorder
) -> None:
    good = sim_messages(offline_gateway)
    bad = [(topic(), b"{oops"),
           (topic(f"{PREFIX}/dev.ghost"), payload(device=f"{PREFIX}/dev.ghost")),
           (topic(GAS), payload(device=GAS))]  # a gas meter reporting kWh
    report = recorder.record(good[:5] + bad + good[5:])
    assert (report.received, report.recorded, report.unchanged, report.rejected) == (
        len(good) + 3, len(good), 0, 3)
    letters = recorder.dead_letters.list()
    assert [(d.topic, d.payload, d.code) for d in letters] == [
        (bad[0][0], bad[0][1], "invalid_json"),
        (bad[1][0], bad[1][1], "device_not_provisioned"),
        (bad[2][0], bad[2][1], "quantity_mismatch"),
    ]
    assert report.dead_letter_ids == [d.id for d in letters]
    assert "measures gas_volume in m3, not active_energy in kWh" in letters[2].reason
    assert offline_gateway.outbox.counts()["pending"] == len(good)


def test_a_redelivered_batch_is_a_no_op(offline_gateway: Gateway,
                                        recorder: BatchRecorder) -> None:
    batch = sim_messages(offline_gateway) + [(topic(), b"{oops")]
    recorder.record(batch)
    entries = offline_gateway.outbox.entries()
    again = recorder.record(batch)
    assert (again.recorded, again.unchanged, again.rejected) == (0, len(batch) - 1, 1)
    assert offline_gateway.outbox.entries() == entries  # same bytes, same sequence numbers
    [letter] = recorder.dead_letters.list()
    assert letter.deliveries == 2


def test_a_different_value_for_a_recorded_measurement_is_a_dead_letter(
    offline_gateway: Gateway, recorder: BatchRecorder
) -> None:
    first = recorder.record([(topic(), payload())])
    assert first.recorded == 1
    changed = (topic(), payload(value="99.000"))
    later = (topic(), payload(measured_at="2025-01-06T00:30:00Z", cumulative="482128.549"))
    report = recorder.record([changed, later, changed])
    assert (report.recorded, report.rejected) == (1, 2)
    assert {d.code for d in recorder.dead_letters.list()} == {"measurement_conflict"}
    assert [e.value for e in offline_gateway.outbox.entries(ELEC)] == ["15.342", "15.342"]


def test_oversized_payloads_are_kept_truncated_with_the_hash_of_the_whole(
    recorder: BatchRecorder
) -> None:
    raw = b"x" * (MAX_PAYLOAD * 3)
    recorder.record([(topic(), raw)])
    [letter] = recorder.dead_letters.list()
    assert (letter.code, letter.payload_size, len(letter.payload)) == (
        "too_large", len(raw), MAX_PAYLOAD)
    import hashlib

    assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()


def test_replay_records_dead_letters_that_became_valid(
    offline_gateway: Gateway, recorder: BatchRecorder
) -> None:
    new = f"{PREFIX}/dev.elec-02"
    recorder.record([(topic(new), payload(device=new)), (topic(), b"{oops")])
    assert recorder.dead_letters.count() == 2
    nothing = recorder.replay()
    assert (nothing.replayed, nothing.recorded, nothing.still_rejected) == (2, 0, 2)

    offline_gateway.keystore.create(new, "sm")
    offline_gateway.outbox.add_device(new, "active_energy", "kWh")
    report = recorder.replay()
    assert (report.replayed, report.recorded, report.still_rejected) == (2, 1, 1)
    assert [d.code for d in recorder.dead_letters.list()] == ["invalid_json"]
    assert offline_gateway.outbox.seqs(new) == [1]


# -- acknowledgement order -------------------------------------------------------------------
class RecordingClient:
    """Stands in for paho's client in ``_commit``: checks that a message is in the
    outbox at the moment it is acknowledged."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.acked: list[int] = []
        self.stored_at_ack: list[int] = []

    def ack(self, mid: int, qos: int) -> int:
        self.acked.append(mid)
        self.stored_at_ack.append(sum(self.gw.outbox.counts().values()))
        return 0


def test_messages_are_acknowledged_after_the_commit_and_only_on_their_connection(
    offline_gateway: Gateway, tmp_path: Path
) -> None:
    from node_gateway.mqtt import _Inbound

    messages = sim_messages(offline_gateway, hours=1)
    with MqttSubscriber(offline_gateway, MqttConfig(site=SITE)) as sub:
        sub._generation, sub._connected = 2, True
        sub._pending = [_Inbound(i + 1, 1, t, p, 2 if i % 4 else 1)
                        for i, (t, p) in enumerate(messages)]
        client = RecordingClient(offline_gateway)
        sub._commit(client, ack=True)  # type: ignore[arg-type]
    current = [i + 1 for i in range(len(messages)) if i % 4]
    assert client.acked == current  # generation 1 is left to the broker to redeliver
    assert set(client.stored_at_ack) == {len(messages)}  # everything committed first
    assert (sub.stats.acked, sub.stats.recorded) == (len(current), len(messages))


def test_the_subscriber_refuses_to_start_without_a_domain_or_devices(tmp_path: Path) -> None:
    with Gateway(tmp_path / "gw") as gw, MqttSubscriber(gw, MqttConfig()) as sub:
        with pytest.raises(ConfigurationError, match="provision"):
            sub.run()


def test_an_unreachable_broker_is_retried_then_reported(offline_gateway: Gateway) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        cfg = MqttConfig(port=port, reconnect_min=0.05, reconnect_max=0.1)
        with MqttSubscriber(offline_gateway, cfg) as sub:
            with pytest.raises(BrokerUnavailableError, match="unreachable for 1 s") as info:
                sub.run(give_up_after=1)
    assert isinstance(info.value, ConnectionError)
    assert info.value.diagnostics()["code"] == "broker_unavailable"


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    import random

    b = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    b.reset()
    assert b.next() <= 0.5


# -- settings --------------------------------------------------------------------------------
def settings(**values: Any) -> GatewaySettings:
    return GatewaySettings(**values)


def test_mqtt_settings_default_to_a_fixed_client_id_and_the_own_site() -> None:
    cfg = MqttConfig.from_settings(settings(gateway_id=f"{PREFIX}/gw.north",
                                            site_id=f"{PREFIX}/site.north",
                                            mqtt_username="gw", mqtt_password="s3cret"))
    assert cfg.client_id == "carbon-gateway-gw.north"
    assert cfg.subscription == "carbon/site.north/+/reading"
    assert cfg.password == "s3cret" and "s3cret" not in repr(cfg)
    assert "s3cret" not in repr(settings(mqtt_username="gw", mqtt_password="s3cret"))
    assert MqttConfig.from_settings(settings(mqtt_site="+")).subscription == "carbon/+/+/reading"


def test_mqtt_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for key, value in {"HOST": "broker.local", "PORT": "8883", "PROTOCOL": "3.1.1",
                       "TLS": "true", "CA_FILE": str(ca), "BATCH_SIZE": "200"}.items():
        monkeypatch.setenv(f"GATEWAY_MQTT_{key}", value)
    cfg = MqttConfig.from_settings(GatewaySettings())
    assert (cfg.host, cfg.port, cfg.protocol, cfg.tls, cfg.ca_file, cfg.batch_size) == (
        "broker.local", 8883, "3.1.1", True, ca, 200)
    assert cfg.broker == "mqtts://broker.local:8883"


@pytest.mark.parametrize(("values", "message"), [
    ({"mqtt_password": "x"}, "GATEWAY_MQTT_PASSWORD is set but GATEWAY_MQTT_USERNAME is not"),
    ({"mqtt_tls": True, "mqtt_cert_file": __file__}, "CERT_FILE and GATEWAY_MQTT_KEY_FILE go"),
    ({"mqtt_ca_file": __file__}, "GATEWAY_MQTT_CA_FILE is set but GATEWAY_MQTT_TLS"),
    ({"mqtt_tls_insecure": True}, "GATEWAY_MQTT_TLS_INSECURE is set but GATEWAY_MQTT_TLS"),
    ({"mqtt_tls": True, "mqtt_ca_file": "/nonexistent/ca.pem"}, "is not a file"),
    ({"mqtt_topic_root": "carbon/v2"}, "not a single MQTT topic level"),
    ({"mqtt_topic_root": "+"}, "must be a fixed topic level"),
    ({"mqtt_site": "site#1"}, "not a single MQTT topic level"),
    ({"mqtt_batch_size": 0}, "greater than or equal to 1"),
    ({"mqtt_reconnect_min": 5, "mqtt_reconnect_max": 1}, "RECONNECT_MAX is below"),
])
def test_mqtt_settings_refuse_to_start_wrong(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)
