"""Through the HTTP API: every bad input gets a typed error saying what was wrong, and
nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carbon_protocol.models import Domain, SignedReading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey
from ledger_service import registry
from ledger_service.models import KeyRevoke


def post(client: Any, signed: SignedReading) -> Any:
    return client.post("/v1/readings", content=signed.model_dump_json(),
                       headers={"content-type": "application/json"})


def assert_nothing_stored(ledger: Any) -> None:
    assert ledger.reading_count() == 0
    assert ledger.tree_size() == 0


def test_accepts_a_good_reading(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    r = post(client, dev.signed())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["leaf_index"] == 0 and body["device"] == dev.id and body["gap_before"] == 0
    assert ledger.tree_size() == 1


def test_same_reading_twice_same_receipt_one_leaf(client: Any, ledger: Any,
                                                  make_device: Any) -> None:
    signed = make_device().signed()
    first, second = post(client, signed), post(client, signed)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert ledger.tree_size() == 1


def test_unknown_device(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    r = post(client, dev.signed(device="86.1000.1/dev.ghost"))
    assert r.status_code == 422
    assert r.json()["code"] == "unknown_device"
    assert "86.1000.1/dev.ghost is not registered" in r.json()["message"]
    assert_nothing_stored(ledger)


def test_unregistered_key(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    other = PrivateKey.generate("sm")
    reading = dev.reading(key_id=other.public_key().key_id)
    r = post(client, sign_reading(reading, other))
    assert r.status_code == 422 and r.json()["code"] == "unknown_key"
    assert_nothing_stored(ledger)


def test_revoked_key(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    ledger.call(registry.revoke_device_key, dev.id, dev.key.public_key().key_id,
                KeyRevoke(revoked_at="2026-01-02T00:00:00Z", reason="key extracted from meter"))
    r = post(client, dev.signed())
    assert r.status_code == 422
    assert r.json()["code"] == "revoked_key"
    assert "revoked at 2026-01-02T00:00:00Z" in r.json()["message"]
    assert_nothing_stored(ledger)


def test_key_not_yet_valid(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device(valid_from="2099-01-01T00:00:00Z")
    r = post(client, dev.signed())
    assert r.status_code == 422 and r.json()["code"] == "revoked_key"
    assert "valid only from 2099-01-01T00:00:00Z" in r.json()["message"]
    assert_nothing_stored(ledger)


@pytest.mark.parametrize(
    ("field", "value"),
    [("chain_id", 1), ("contract", "0x" + "11" * 20), ("log_id", "86.1000.1/log.other")],
)
def test_wrong_domain(client: Any, ledger: Any, make_device: Any, field: str,
                      value: Any) -> None:
    dev = make_device()
    domain = Domain(**{**ledger.domain.model_dump(), field: value})
    r = post(client, dev.signed(domain=domain))
    assert r.status_code == 422
    assert r.json()["code"] == "wrong_domain"
    assert f"signed for {field} {value}" in r.json()["message"]
    assert_nothing_stored(ledger)


def test_bad_signature(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    signed = dev.signed()
    tampered = signed.model_copy(update={"reading": signed.reading.model_copy(
        update={"value": "99.5"})})
    r = post(client, tampered)
    assert r.status_code == 422 and r.json()["code"] == "bad_signature"
    assert "signature does not verify" in r.json()["message"]
    assert_nothing_stored(ledger)


def test_replayed_sequence(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    assert post(client, dev.signed(seq=7)).status_code == 201
    r = post(client, dev.signed(seq=7, value="13.0"))
    assert r.status_code == 409
    assert r.json()["code"] == "replayed_sequence"
    assert "sequence number already used" in r.json()["message"]
    assert ledger.tree_size() == 1


def test_gap_is_accepted_and_flagged(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    assert post(client, dev.signed(seq=1)).json()["gap_before"] == 0
    assert post(client, dev.signed(seq=5)).json()["gap_before"] == 3
    report = client.get(f"/v1/devices/{dev.id}/sequence").json()
    assert report["missing"] == [[2, 4]] and report["count"] == 2


def test_malformed_json(client: Any, ledger: Any) -> None:
    r = client.post("/v1/readings", content=b'{"reading": {',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == "malformed_json"
    assert_nothing_stored(ledger)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["reading"].update(value=12.5), "reading.value"),
        (lambda d: d["reading"].update(seq=0), "reading.seq"),
        (lambda d: d["reading"].update(measured_at="2026-02-30T00:00:00Z"), "reading.measured_at"),
        (lambda d: d["reading"].update(unit="m3"), "reading"),
        (lambda d: d["reading"].update(extra="x"), "reading.extra"),
        (lambda d: d.update(signature="zz"), "signature"),
        (lambda d: d["reading"].update(device="not an id"), "reading.device"),
    ],
)
def test_schema_violations_name_the_field(client: Any, ledger: Any, make_device: Any,
                                          mutate: Any, where: str) -> None:
    data = json.loads(make_device().signed().model_dump_json())
    mutate(data)
    r = client.post("/v1/readings", json=data)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_input"
    locs = {".".join(e["loc"][1:]) for e in body["details"]["errors"]}
    assert any(loc.startswith(where) for loc in locs), locs
    assert_nothing_stored(ledger)


def test_oversized_body(client: Any, ledger: Any) -> None:
    limit = ledger.settings.max_body_bytes
    r = client.post("/v1/readings/batch", content=b"{" + b" " * limit + b"}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == "body_too_large"
    assert_nothing_stored(ledger)


def test_oversized_chunked_body(client: Any, ledger: Any) -> None:
    limit = ledger.settings.max_body_bytes

    def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = client.post("/v1/readings/batch", content=chunks(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_batch_mixes_outcomes_per_item(client: Any, ledger: Any, make_device: Any) -> None:
    dev = make_device()
    good = dev.signed()
    bad = dev.signed(device="86.1000.1/dev.ghost")
    body = {"readings": [json.loads(good.model_dump_json()), json.loads(bad.model_dump_json()),
                         json.loads(good.model_dump_json())]}
    r = client.post("/v1/readings/batch", json=body)
    assert r.status_code == 200
    out = r.json()
    assert [i["status"] for i in out["items"]] == ["accepted", "rejected", "duplicate"]
    assert out["items"][1]["error"]["code"] == "unknown_device"
    assert out["items"][0]["receipt"] == out["items"][2]["receipt"]
    assert ledger.tree_size() == 1
