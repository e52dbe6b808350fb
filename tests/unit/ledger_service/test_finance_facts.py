"""Integrity facts gathered from a real ledger (real signatures, real database, real EVM)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from carbon_protocol.inventory import Period
from carbon_protocol.suites import PrivateKey
from ledger_service import registry
from ledger_service.errors import InvalidInputError
from ledger_service.finance.facts import Bill, gather_integrity_facts, period_months
from ledger_service.finance.integrity import BillCheck, evaluate_integrity
from ledger_service.models import (
    DeviceCreate,
    DeviceKeyCreate,
    EnterpriseCreate,
    SiteCreate,
)

ENTERPRISE = "86.1000.1/ent.test"  # tests/conftest.py registers it with its site
OCT = Period(label="2026-10", start="2026-09-30T16:00:00Z", end="2026-10-31T16:00:00Z")


def _at(seq: int) -> str:
    minutes = 15 * seq
    return f"2026-10-05T{minutes // 60:02d}:{minutes % 60:02d}:00Z"


@pytest.fixture
def populated(ledger: Any, make_device: Any) -> tuple[Any, Any, Any, str]:
    a, b = make_device("sm"), make_device("intl")
    # Device a: seq 4 never arrives, seq 5 arrives late (after 6 and 7), seq 9 jumps
    # tenfold, seq 11 lies after the period.
    values = {s: "100" if s == 9 else "10" for s in range(1, 12)}
    first = [a.signed(seq=s, measured_at=_at(s), value=values[s]) for s in (1, 2, 3, 6, 7)]
    late = [a.signed(seq=s, measured_at=_at(s), value=values[s]) for s in (5, 8, 9, 10)]
    after = [a.signed(seq=11, measured_at="2026-11-01T00:00:00Z", value="10")]
    steady = [b.signed(seq=s, measured_at=_at(s), value="20") for s in range(1, 6)]
    for batch in (first, late, after, steady):
        result = ledger.ingest(batch)
        assert result.accepted == len(batch), result
    # Another enterprise's meter with a gap of three: it must count nowhere here.
    other_ent, other_site, other_dev = ("86.1000.1/ent.other", "86.1000.1/site.other",
                                        "86.1000.1/dev.other")
    ledger.call(registry.create_enterprise, EnterpriseCreate(id=other_ent, name="Other"))
    ledger.call(registry.create_site, SiteCreate(id=other_site, enterprise_id=other_ent,
                                                 name="P", region="Hebei"))
    ledger.call(registry.create_device, DeviceCreate(
        id=other_dev, site_id=other_site, quantity="active_energy", unit="kWh",
        serial="x"))
    key = PrivateKey.generate("intl")
    ledger.call(registry.add_device_key, other_dev, DeviceKeyCreate(
        suite="intl", public_key=key.public_key().hex(), valid_from="2026-01-01T00:00:00Z"))
    from carbon_protocol.signing import sign_reading

    for s in (1, 5):
        reading = a.reading(device=other_dev, seq=s, measured_at=_at(s), suite="intl",
                            key_id=key.public_key().key_id)
        ledger.ingest_one(sign_reading(reading, key))
    return ledger, a, b, other_dev


def test_facts_from_the_ledger_by_hand(populated: tuple[Any, Any, Any, str]) -> None:
    ledger, a, b, _ = populated
    facts, series = gather_integrity_facts(
        ledger, ENTERPRISE, OCT, signature_failures=0,
        bills=[Bill(device=a.id, billed=D(175), unit="kWh")], attested_months=["2026-10"])
    # a: seqs 1-3, 5-10 in the period (9 readings, seq 4 missing); b: seqs 1-5.
    assert facts.readings == 14
    assert facts.missing_sequence_numbers == 1  # not 2: the late seq 5 closed part of the gap
    assert facts.bills == [BillCheck(label=a.id, metered=D(180), billed=D(175))]  # 8x10 + 100
    assert (facts.months, facts.unverified_months) == (["2026-10"], [])
    assert series == {a.id: [D(10)] * 7 + [D(100), D(10)], b.id: [D(20)] * 5}

    result = evaluate_integrity(facts, series)
    # gaps 1/15 = 0.0667 > 0.05: red; bill 5/175 = 0.0286 > 0.02: yellow; one jump: yellow.
    assert result.code == "red"
    assert [(f.rule, f.level, f.measured) for f in result.fired] == [
        ("sequence_gaps", "red", "0.066666666667"),
        ("bill_mismatch", "yellow", "0.028571428571"),
        ("sudden_jumps", "yellow", "1"),
    ]
    assert [(j.device, j.value, j.median) for j in result.jumps] == [(a.id, D(100), D(10))]


def test_quarter_without_attestations(populated: tuple[Any, Any, Any, str]) -> None:
    ledger, *_ = populated
    q4 = Period(label="2026-Q4", start="2026-09-30T16:00:00Z", end="2026-12-31T16:00:00Z")
    facts, _series = gather_integrity_facts(ledger, ENTERPRISE, q4, signature_failures=3,
                                            attested_months={"2026-10"})
    assert facts.readings == 15  # seq 11 of device a is inside the quarter
    assert facts.unverified_months == ["2026-11", "2026-12"]
    assert facts.signature_failures == 3 and facts.bills == []


def test_refused_signatures_and_keys_are_counted_once_each(
        populated: tuple[Any, Any, Any, str]) -> None:
    """Refused readings are kept out of the log but counted: a bad signature and a wrong
    domain of this enterprise's meters count (a resend once), a replay and another
    enterprise's meter do not, nor a refusal measured outside the period."""
    from carbon_protocol.models import Domain, SignedReading

    ledger, a, b, other_dev = populated
    size = ledger.tree_size()
    good = a.signed(seq=20, measured_at=_at(20), value="10")
    forged = SignedReading(reading=good.reading.model_copy(update={"value": "1"}),
                           signature=good.signature)  # the signature no longer verifies
    elsewhere = b.signed(seq=20, measured_at=_at(20), domain=Domain(
        chain_id=999, contract="0x" + "11" * 20, log_id="86.1000.1/log.other"))
    replay = a.signed(seq=1, measured_at=_at(1), value="11")  # seq 1 is stored already
    november = a.signed(seq=21, measured_at="2026-11-02T00:00:00Z", value="10")
    late_forgery = SignedReading(reading=november.reading.model_copy(update={"value": "2"}),
                                 signature=november.signature)
    for _ in range(3):  # a gateway retrying: the same refusals, counted once
        result = ledger.ingest([forged, elsewhere, replay, late_forgery])
        assert result.rejected == 4 and result.accepted == 0
    assert [i.error.code for i in result.items if i.error] == [
        "bad_signature", "wrong_domain", "replayed_sequence", "bad_signature"]
    assert ledger.tree_size() == size  # nothing refused reached the log
    facts, _ = gather_integrity_facts(ledger, ENTERPRISE, OCT)
    assert facts.signature_failures == 2
    other, _ = gather_integrity_facts(ledger, "86.1000.1/ent.other", OCT)
    assert other.signature_failures == 0
    assert evaluate_integrity(facts, {}).fired[0].rule == "signature_failures"
    explicit, _ = gather_integrity_facts(ledger, ENTERPRISE, OCT, signature_failures=0)
    assert explicit.signature_failures == 0  # an override still wins


def test_bills_for_foreign_devices_or_other_units_are_refused(
        populated: tuple[Any, Any, Any, str]) -> None:
    ledger, a, _, other_dev = populated
    with pytest.raises(InvalidInputError, match="not a device of"):
        gather_integrity_facts(ledger, ENTERPRISE, OCT, signature_failures=0,
                               bills=[Bill(device=other_dev, billed=D(1), unit="kWh")])
    with pytest.raises(InvalidInputError, match="convert the bill"):
        gather_integrity_facts(ledger, ENTERPRISE, OCT, signature_failures=0,
                               bills=[Bill(device=a.id, billed=D(1), unit="MWh")])
    with pytest.raises(InvalidInputError):
        gather_integrity_facts(ledger, ENTERPRISE, OCT, signature_failures=-1)


def test_period_months_are_local_months() -> None:
    assert period_months(OCT) == ["2026-10"]
    utc_month = Period(label="x", start="2026-10-01T00:00:00Z", end="2026-11-01T00:00:00Z")
    assert period_months(utc_month) == ["2026-10", "2026-11"]  # 08:00 local on 1 Nov
    year_end = Period(label="x", start="2026-11-30T16:00:00Z", end="2027-01-31T16:00:00Z")
    assert period_months(year_end) == ["2026-12", "2027-01"]
