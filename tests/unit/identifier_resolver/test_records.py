"""Records: what an owner signs, how versions chain, what the models refuse."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from carbon_protocol.canonical import canonical_json
from carbon_protocol.errors import SignatureError
from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.models import Record, SignedRecord

NOW = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("suite", ["sm", "intl"])
def test_sign_and_verify_each_suite(suite: str) -> None:
    key = PrivateKey.generate(suite)  # type: ignore[arg-type]
    signed = R.new_record("86.1/dev.a", "device", "86.1/ent.a", key, now=NOW)
    R.verify_record_signature(signed, key.public_key())
    assert R.record_digest(signed).alg == ("sm3" if suite == "sm" else "sha256")
    other = PrivateKey.generate(suite)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="names key"):
        R.verify_record_signature(signed, other.public_key())


def test_signed_bytes_are_rfc8785_of_the_envelope() -> None:
    key = PrivateKey.generate("intl")
    signed = R.new_record("86.1/site.a", "site", "86.1/ent.a", key, now=NOW,
                          links=[("part_of", "86.1/ent.a")],
                          data={"name": "Plant 北", "level": 3, "ok": True, "none": None})
    assert R.signed_record_bytes(signed) == canonical_json(signed.model_dump(mode="json"))


def test_tampered_record_fails_signature() -> None:
    key = PrivateKey.generate("intl")
    signed = R.new_record("86.1/ent.a", "enterprise", "86.1/ent.a", key, data={"name": "A"})
    forged = SignedRecord(record=signed.record.model_copy(update={"data": {"name": "B"}}),
                          signature=signed.signature)
    with pytest.raises(SignatureError, match="does not verify"):
        R.verify_record_signature(forged, key.public_key())


def test_versions_chain_by_digest() -> None:
    key = PrivateKey.generate("intl")
    v1 = R.new_record("86.1/dev.a", "device", "86.1/ent.a", key, now=NOW)
    v2 = R.next_version(v1, key, data={"serial": "X"}, reason="serial read", now=NOW)
    v3 = R.deactivation(v2, key, "meter retired", now=NOW)
    assert (v2.record.version, v3.record.version) == (2, 3)
    assert v2.record.prev == R.record_digest(v1).value
    assert v3.record.prev == R.record_digest(v2).value
    assert v3.record.status == "deactivated" and v3.record.data == {"serial": "X"}
    assert R.same_content(v1.record, R.next_version(v1, key).record)
    assert not R.same_content(v1.record, v2.record)


def _record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "86.1/dev.a", "type": "device", "version": 1, "owner": "86.1/ent.a",
        "updated_at": NOW, "signer": {"suite": "intl", "key_id": "00" * 16},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(("defect", "overrides", "message"), [
    ("invalid-identifier", {"id": "86.1/dev a"}, "string_pattern_mismatch|pattern"),
    ("unknown-type", {"type": "meter"}, "literal_error|Input should be"),
    ("version-2-without-prev", {"version": 2}, "names its prev"),
    ("version-1-with-prev", {"prev": "00" * 32}, "names its prev"),
    ("deactivated-without-reason", {"status": "deactivated"}, "reason"),
    ("link-not-allowed-for-type", {"links": [{"rel": "summarises", "target": "86.1/x"}]},
     "cannot declare"),
    ("self-link", {"links": [{"rel": "part_of", "target": "86.1/dev.a"}]}, "itself"),
    ("duplicate-link", {"links": [{"rel": "part_of", "target": "86.1/s"}] * 2}, "duplicate"),
    ("float-value", {"data": {"value": 1.5}}, "valid"),
    ("bad-data-key", {"data": {"Bad Key": "x"}}, "pattern"),
    ("unknown-field", {"colour": "red"}, "extra"),
    ("delegation-without-prefix", {"type": "delegation", "id": "0/na.86"}, "data.prefix"),
])
def test_model_refuses(defect: str, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Record.model_validate(_record(**overrides))


def test_delegation_shape() -> None:
    root, node, owner = (PrivateKey.generate("intl") for _ in range(3))
    d = R.delegation("0", "86.5", owner_keys=[owner.public_key()], node_key=node.public_key(),
                     url="http://10.0.0.5:8100", log_id="86.5/log.resolver", node_id="n5",
                     key=root)
    assert d.record.id == "0/na.86.5" and d.record.type == "delegation"
    assert [k.role for k in d.record.keys] == ["owner", "node"]
    with pytest.raises(ValidationError, match="suffix na.86.5"):
        Record.model_validate({**d.record.model_dump(), "id": "0/na.86.6"})
    with pytest.raises(ValidationError, match="URL"):
        Record.model_validate({**d.record.model_dump(),
                               "data": {**d.record.data, "url": "file:///etc/passwd"}})


def test_maintenance_and_calibration_builders() -> None:
    key = PrivateKey.generate("intl")
    m = R.maintenance("86.1/mnt.1", "86.1/dev.a", "86.1/ent.a", key,
                      performed_at=NOW, kind="repair", description="new CT",
                      document=b"work order 17")
    c = R.calibration("86.1/cal.1", "86.1/dev.a", "86.1/ent.a", key, calibrated_at=NOW,
                      laboratory="NIM", certificate="C-1", next_due="2027-01-01T00:00:00Z")
    assert [(link.rel, link.target) for link in m.record.links] == [("performed_on",
                                                                    "86.1/dev.a")]
    assert m.record.hash is not None and c.record.data["next_due"] == "2027-01-01T00:00:00Z"
