"""Issuing a financing code: signed by the ledger's log key, carried by a QR image that a
real QR decoder (zxing-cpp) reads back into a code the offline verifier accepts."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
import zxingcpp  # type: ignore[import-not-found,unused-ignore]
from PIL import Image

from carbon_protocol.canonical import canonical_json
from carbon_protocol.errors import ExpiredFinancingCodeError, SignatureError
from carbon_protocol.financing_code import encode_qr_payload, verify_financing_code
from carbon_protocol.inventory import Period
from carbon_protocol.suites import PrivateKey, PublicKey, digest
from ledger_service.finance.grading import Benchmark, GradeThresholds, green_grade
from ledger_service.finance.integrity import (
    BillCheck,
    IntegrityFacts,
    IntegrityRules,
    evaluate_integrity,
)
from ledger_service.finance.issuing import (
    FinanceConfig,
    issue_financing_code,
    render_qr_png,
    rule_config_hash,
)

OCT = Period(label="2026-10", start="2026-09-30T16:00:00Z", end="2026-10-31T16:00:00Z")
ISSUED = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
STEEL = Benchmark(industry="crude steel", value=D("2.0"), unit="tCO2e/t", source="test")


def _issue(key: PrivateKey, config: FinanceConfig | None = None, **facts: Any) -> Any:
    config = config or FinanceConfig()
    values: dict[str, Any] = {"readings": 2000, "missing_sequence_numbers": 0,
                              "signature_failures": 0, "months": ["2026-10"]}
    values.update(facts)
    integrity = evaluate_integrity(IntegrityFacts(**values), {}, config.integrity)
    grade = green_grade(D("1710"), D("1000"), STEEL, config.grade)
    return issue_financing_code(key=key, issuer="86.1000.1/log.main",
                                enterprise="86.1000.1/ent.steel", period=OCT, grade=grade,
                                integrity=integrity, config=config, issued_at=ISSUED)


def _scan(png: bytes) -> str:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (barcode,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    return str(barcode.text)


@pytest.mark.parametrize("suite", ["sm", "intl"])
def test_qr_round_trip_through_a_real_decoder(suite: str) -> None:
    key = PrivateKey.generate(suite)  # type: ignore[arg-type]
    signed = _issue(key, signature_failures=2,
                    bills=[BillCheck(label="86.1000.1/dev.m1", metered=D(94), billed=D(100))])
    payload = _scan(render_qr_png(signed))
    assert payload == encode_qr_payload(signed)
    code = verify_financing_code(payload, key.public_key(), now=ISSUED + timedelta(days=1))
    assert (code.grade, code.intensity, code.benchmark, code.code) == (
        "medium_green", "1.71", "2", "red")
    assert [(f.rule, f.level, f.measured, f.threshold) for f in code.rules_fired] == [
        ("signature_failures", "yellow", "2", "0"), ("bill_mismatch", "red", "0.06", "0.05")]
    assert (code.issued_at, code.expires_at) == ("2026-11-03T09:30:00Z", "2026-12-03T09:30:00Z")
    with pytest.raises(ExpiredFinancingCodeError):
        verify_financing_code(payload, key.public_key(), now=ISSUED + timedelta(days=30))


def test_issued_with_the_ledgers_log_key(ledger: Any) -> None:
    signed = issue_financing_code(
        key=ledger.log_key, issuer=ledger.settings.log_id, enterprise="86.1000.1/ent.test",
        period=OCT, grade=green_grade(D(1), D(1000), STEEL),
        integrity=evaluate_integrity(IntegrityFacts(readings=1, missing_sequence_numbers=0,
                                                    signature_failures=0), {}),
        config=FinanceConfig(), issued_at=ISSUED)
    info = ledger.log_key_info()  # what a bank is given, like for tree heads
    bank_key = PublicKey.from_hex(info.suite, info.public_key)
    payload = _scan(render_qr_png(signed))
    code = verify_financing_code(payload, bank_key, now=ISSUED)
    assert (code.grade, code.code, code.key_id) == ("dark_green", "green", info.key_id)
    with pytest.raises(SignatureError):
        verify_financing_code(payload[:-8] + "A" * 8, bank_key, now=ISSUED)


def test_config_hash_is_the_documented_digest_and_tracks_every_setting() -> None:
    config = FinanceConfig()
    doc = {"benchmark": STEEL.model_dump(mode="json"), "config": config.model_dump(mode="json")}
    assert rule_config_hash(config, STEEL, "intl") == digest(
        "intl", canonical_json(doc)).hex()
    variants = [
        FinanceConfig(grade=GradeThresholds(dark_green=D("0.75"))),
        FinanceConfig(integrity=IntegrityRules(jump_factor=D("3.5"))),
        FinanceConfig(valid_days=7),
    ]
    hashes = {rule_config_hash(c, STEEL, "sm") for c in [config, *variants]}
    assert len(hashes) == 4
    other = Benchmark(industry="crude steel", value=D("2.1"), unit="tCO2e/t", source="test")
    assert rule_config_hash(config, other, "sm") != rule_config_hash(config, STEEL, "sm")
    key = PrivateKey.generate("sm")
    assert _issue(key).financing_code.rule_config_hash == rule_config_hash(config, STEEL, "sm")


def test_every_rule_firing_still_fits_one_qr_code() -> None:
    key = PrivateKey.generate("sm")
    signed = _issue(key, signature_failures=99, readings=10, missing_sequence_numbers=90,
                    bills=[BillCheck(label="b", metered=D(1), billed=D(3))],
                    months=["2026-10"], unverified_months=["2026-10"])
    assert len(signed.financing_code.rules_fired) == 4
    payload = _scan(render_qr_png(signed))
    assert len(payload) < 1500
    verify_financing_code(payload, key.public_key(), now=ISSUED)
