"""The financing code's wire format and offline verifier: each defect named, each refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from carbon_protocol.canonical import canonical_json
from carbon_protocol.errors import (
    ExpiredFinancingCodeError,
    FinancingCodeError,
    SignatureError,
    VerificationError,
)
from carbon_protocol.financing_code import (
    FinancingCode,
    decode_qr_payload,
    encode_qr_payload,
    financing_code_bytes,
    sign_financing_code,
    verify_financing_code,
)
from carbon_protocol.suites import PrivateKey

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _code(key: PrivateKey, **overrides: Any) -> FinancingCode:
    pub = key.public_key()
    values: dict[str, Any] = {
        "suite": pub.suite, "key_id": pub.key_id, "issuer": "86.1000.1/log.main",
        "enterprise": "86.1000.1/ent.steel", "period": {
            "label": "2026-10", "start": "2026-09-30T16:00:00Z", "end": "2026-10-31T16:00:00Z"},
        "grade": "medium_green", "intensity": "1.71", "benchmark": "1.9",
        "intensity_unit": "tCO2e/t", "code": "yellow",
        "rules_fired": [{"rule": "sequence_gaps", "level": "yellow", "measured": "0.02",
                         "threshold": "0.01"}],
        "rule_config_hash": "ab" * 32, "issued_at": "2026-11-01T00:00:00Z",
        "expires_at": "2026-12-01T00:00:00Z",
    }
    values.update(overrides)
    return FinancingCode.model_validate(values, strict=False)


@pytest.fixture(params=["sm", "intl"])
def key(request: pytest.FixtureRequest) -> PrivateKey:
    return PrivateKey.generate(request.param)


def test_round_trip(key: PrivateKey) -> None:
    signed = sign_financing_code(_code(key), key)
    payload = encode_qr_payload(signed)
    assert payload.startswith("CLFC1.") and payload.isascii()
    assert decode_qr_payload(payload) == signed
    code = verify_financing_code(payload, key.public_key(), now=NOW)
    assert code == signed.financing_code
    # The payload is exactly the documented concatenation, so a stranger can rebuild it.
    assert payload == "CLFC1." + _b64(canonical_json(code.model_dump(mode="json"))) + "." + _b64(
        bytes.fromhex(signed.signature))


def _resign_body(payload: str, change: dict[str, Any]) -> str:
    """Alter the code inside a payload but keep the original signature."""
    prefix, body, sig = payload.split(".")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc.update(change)
    return ".".join((prefix, _b64(canonical_json(doc)), sig))


@pytest.mark.parametrize("change", [
    {"grade": "dark_green"},
    {"code": "green", "rules_fired": []},
    {"enterprise": "86.1000.1/ent.other"},
    {"expires_at": "2027-12-01T00:00:00Z"},
], ids=["upgraded_grade", "cleared_code", "other_enterprise", "extended_expiry"])
def test_altered_code_fails_the_signature(key: PrivateKey, change: dict[str, Any]) -> None:
    payload = encode_qr_payload(sign_financing_code(_code(key), key))
    with pytest.raises(SignatureError):
        verify_financing_code(_resign_body(payload, change), key.public_key(), now=NOW)


def test_forged_code_signed_by_another_key_names_the_key(key: PrivateKey) -> None:
    forger = PrivateKey.generate(key.suite)
    forged = encode_qr_payload(sign_financing_code(_code(forger), forger))
    with pytest.raises(FinancingCodeError, match="expected the issuer's"):
        verify_financing_code(forged, key.public_key(), now=NOW)


def test_forger_claiming_the_issuer_key_id_fails_the_signature(key: PrivateKey) -> None:
    forger = PrivateKey.generate(key.suite)
    signed = sign_financing_code(_code(forger), forger)
    prefix, _, sig = encode_qr_payload(signed).split(".")
    claimed = _code(key)  # names the real issuer's key id, signature is the forger's
    payload = ".".join((prefix, _b64(financing_code_bytes(claimed)), sig))
    with pytest.raises(SignatureError):
        verify_financing_code(payload, key.public_key(), now=NOW)


def test_wrong_key_of_other_suite(key: PrivateKey) -> None:
    other = PrivateKey.generate("intl" if key.suite == "sm" else "sm")
    payload = encode_qr_payload(sign_financing_code(_code(key), key))
    with pytest.raises(FinancingCodeError):
        verify_financing_code(payload, other.public_key(), now=NOW)


def test_flipped_signature_bit(key: PrivateKey) -> None:
    signed = sign_financing_code(_code(key), key)
    sig = bytearray(bytes.fromhex(signed.signature))
    sig[10] ^= 0x01
    prefix, body, _ = encode_qr_payload(signed).split(".")
    with pytest.raises(SignatureError):
        verify_financing_code(".".join((prefix, body, _b64(bytes(sig)))), key.public_key(),
                              now=NOW)


@pytest.mark.parametrize("now", [datetime(2026, 12, 1, tzinfo=UTC),
                                 datetime(2027, 1, 1, tzinfo=UTC),
                                 datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)],
                         ids=["at_expiry", "after_expiry", "before_issue"])
def test_outside_validity_window(key: PrivateKey, now: datetime) -> None:
    payload = encode_qr_payload(sign_financing_code(_code(key), key))
    with pytest.raises(ExpiredFinancingCodeError) as info:
        verify_financing_code(payload, key.public_key(), now=now)
    assert info.value.code == "expired_financing_code"
    # One second before expiry it still verifies.
    verify_financing_code(payload, key.public_key(),
                          now=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))


@pytest.mark.parametrize("mangle", [
    lambda p: p.replace("CLFC1.", "CLFC2.", 1),
    lambda p: p + ".extra",
    lambda p: p[:-3],
    lambda p: p.replace(".", ".=", 1),
    lambda p: "CLFC1." + _b64(b'{"format": 1}') + "." + p.split(".")[2],
    lambda p: "CLFC1.%%%." + p.split(".")[2],
    lambda p: "x" * 5000,
], ids=["wrong_prefix", "extra_part", "truncated_signature", "padding", "not_a_code",
        "not_base64", "too_long"])
def test_malformed_payloads(key: PrivateKey, mangle: Any) -> None:
    payload = encode_qr_payload(sign_financing_code(_code(key), key))
    with pytest.raises(FinancingCodeError):
        verify_financing_code(mangle(payload), key.public_key(), now=NOW)


def test_non_canonical_json_is_refused_even_with_a_valid_signature(key: PrivateKey) -> None:
    code = _code(key)
    pretty = json.dumps(code.model_dump(mode="json"), indent=1).encode()
    sig = key.sign(pretty)  # a signature over the non-canonical bytes themselves
    payload = "CLFC1." + _b64(pretty) + "." + _b64(sig)
    with pytest.raises(FinancingCodeError, match="canonical"):
        verify_financing_code(payload, key.public_key(), now=NOW)


def test_code_must_agree_with_the_rules_fired(key: PrivateKey) -> None:
    with pytest.raises(ValueError, match="contradicts"):
        _code(key, code="green")
    with pytest.raises(ValueError, match="contradicts"):
        _code(key, code="yellow", rules_fired=[])
    with pytest.raises(ValueError, match="not after"):
        _code(key, expires_at="2026-11-01T00:00:00Z")


def test_signing_with_a_key_the_code_does_not_name(key: PrivateKey) -> None:
    with pytest.raises(SignatureError):
        sign_financing_code(_code(key), PrivateKey.generate(key.suite))


def test_errors_are_one_family() -> None:
    assert issubclass(ExpiredFinancingCodeError, FinancingCodeError)
    assert issubclass(FinancingCodeError, VerificationError)
