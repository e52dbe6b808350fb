"""The evidence verifier on its own, without a ledger: a log built leaf by leaf with the
reference Merkle functions, heads signed by a log key, log records (a financing code and
a record of an unknown format), no readings or inventories. Steps that have nothing to
check say so, a code's expiry is a note, and each defect stops at its own step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from carbon_protocol.canonical import canonical_json
from carbon_protocol.chain_view import log_key
from carbon_protocol.evidence import (
    EVIDENCE_STEPS,
    AnchoredHead,
    EvidenceBundle,
    EvidenceReadings,
    RecordItem,
    record_format,
    verify_evidence,
)
from carbon_protocol.financing_code import FinancingCode, sign_financing_code
from carbon_protocol.inventory import Period
from carbon_protocol.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
)
from carbon_protocol.models import AnchorRef, TreeHead
from carbon_protocol.signing import sign_tree_head
from carbon_protocol.suites import PrivateKey, hash_fn

LOG_ID = "86.1000.1/log.main"
ENTERPRISE = "86.1000.1/ent.proto"
PERIOD = Period(label="2026-01", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z")


def _code(key: PrivateKey, enterprise: str = ENTERPRISE) -> dict[str, Any]:
    pub = key.public_key()
    code = FinancingCode(
        suite=pub.suite, key_id=pub.key_id, issuer=LOG_ID, enterprise=enterprise,
        period=PERIOD, grade="medium_green", intensity="0.4", benchmark="0.6",
        intensity_unit="tCO2e/t", code="green", rules_fired=[], rule_config_hash="cd" * 32,
        issued_at="2026-02-02T00:00:00Z", expires_at="2026-05-02T00:00:00Z")
    return sign_financing_code(code, key).model_dump(mode="json")


def _bundle(suite: str = "sm", *, documents: list[dict[str, Any]] | None = None,
            key: PrivateKey | None = None) -> dict[str, Any]:
    key = key or PrivateKey.generate(suite)  # type: ignore[arg-type]
    h = hash_fn(suite)  # type: ignore[arg-type]
    docs = documents if documents is not None else [_code(key), {"format": "x/y/v1", "n": 1}]
    leaves = [leaf_hash(h, f"filler {i}".encode()) for i in range(5)]
    first = len(leaves)
    leaves += [leaf_hash(h, canonical_json(d)) for d in docs]
    leaves += [leaf_hash(h, b"later")]
    sizes = [first + 1, len(leaves)]  # the first head covers the first record only
    pub = key.public_key()
    heads = []
    for n, size in enumerate(sizes):
        root = root_from_leaf_hashes(h, leaves[:size])
        sth = sign_tree_head(TreeHead(log_id=LOG_ID, suite=pub.suite, key_id=pub.key_id,
                                      tree_size=size, root_hash=root.hex(),
                                      timestamp=f"2026-02-0{n + 3}T00:00:00Z"), key)
        anchor = AnchorRef(chain_id=1337, contract="0x" + "ab" * 20,
                           log_key=log_key(LOG_ID).hex(), tree_size=size, root_hash=root.hex(),
                           tx_hash="0x" + f"{n:064x}", block_number=10 + n,
                           block_hash="0x" + f"{n + 100:064x}", block_timestamp=1_780_000_000 + n,
                           submitter="0x" + "cd" * 20)
        heads.append(AnchoredHead(signed_tree_head=sth, anchor=anchor))
    size = sizes[-1]
    records = [RecordItem(record_id=f"86.1000.1/rec.{i}", kind="financing_code" if i == 0
                          else "note", leaf_index=first + i, document=d,
                          inclusion_proof=[p.hex() for p in inclusion_proof(
                              h, first + i, leaves[:size])])
               for i, d in enumerate(docs)]
    bundle = EvidenceBundle(
        enterprise=ENTERPRISE, period=PERIOD, exported_at="2026-02-10T00:00:00Z",
        log_key={"suite": pub.suite, "public_key": pub.hex(), "key_id": pub.key_id},
        heads=heads, consistency=[[p.hex() for p in consistency_proof(h, sizes[0],
                                                                     leaves[:sizes[1]])]],
        device_keys=[], readings=EvidenceReadings(indices=[], readings=[], proof=[]),
        rules=[], inventories=[], reports=[], records=records)
    return json.loads(bundle.model_dump_json())


def _verify(doc: dict[str, Any], **kwargs: Any) -> Any:
    return verify_evidence(EvidenceBundle.model_validate(doc), **kwargs)


@pytest.mark.parametrize("suite", ["sm", "intl"])
def test_records_only_bundle_verifies_and_says_what_it_did_not_check(suite: str) -> None:
    report = _verify(_bundle(suite), now=datetime(2026, 6, 1, tzinfo=UTC))
    status = {s.name: s.status for s in report.steps}
    assert report.ok and [s.name for s in report.steps] == list(EVIDENCE_STEPS)
    assert [n for n, s in status.items() if s == "pass"] == [
        "log key", "tree heads", "consistency", "anchors", "log record inclusion"]
    skipped = {s.name: s.detail for s in report.steps if s.status == "not-checked"}
    assert "no chain" in skipped["chain"] and "no readings" in skipped["reading inclusion"]
    assert "no recomputer" in skipped["inventory recomputation"]
    assert "no inventories" in skipped["inventory signatures"]
    assert "no reports" in skipped["report inclusion"]
    recomputed = _verify(_bundle(suite), recomputer=_NeverCalled())
    assert recomputed.ok and "no inventories" in recomputed.steps[12].detail
    assert "86.1000.1/rec.1 (x/y/v1)" in skipped["log record formats"]
    assert report.notes == ["financing code 86.1000.1/rec.0 expired at 2026-05-02T00:00:00Z"]
    assert report.summary().startswith("OK (")


class _NeverCalled:
    """A recomputer that fails any call: with nothing to recompute, none is made."""

    def rule(self, *args: Any) -> None:
        raise AssertionError("called")

    inventory = report = rule


def test_a_valid_code_of_another_enterprise_fails_at_record_formats() -> None:
    key = PrivateKey.generate("intl")
    doc = _bundle("intl", key=key, documents=[_code(key, "86.1000.1/ent.else")])
    report = _verify(doc)
    failure = report.first_failure
    assert failure is not None and failure.name == "log record formats"
    assert (failure.expected, failure.found) == (ENTERPRISE, "86.1000.1/ent.else")
    assert report.summary().startswith("step 17 (log record formats) failed: ")


def test_a_code_signed_by_another_key_fails_at_record_formats() -> None:
    doc = _bundle("intl", documents=[_code(PrivateKey.generate("intl"))])
    failure = _verify(doc).first_failure
    assert failure is not None and failure.name == "log record formats"


@pytest.mark.parametrize(("defect", "step"), [
    ("log key id", "log key"),
    ("heads out of order", "tree heads"),
    ("head of another log", "tree heads"),
    ("missing consistency proof", "consistency"),
    ("anchor of another log", "anchors"),
    ("anchor on another contract", "anchors"),
    ("record path", "log record inclusion"),
    ("record twice", "log record inclusion"),
])
def test_each_defect_stops_at_its_step(defect: str, step: str) -> None:
    doc = _bundle()
    if defect == "log key id":
        doc["log_key"]["key_id"] = "00" * 16
    elif defect == "heads out of order":
        doc["heads"].reverse()
    elif defect == "head of another log":
        doc["heads"][0]["signed_tree_head"]["tree_head"]["log_id"] = "86.1000.1/log.other"
    elif defect == "missing consistency proof":
        doc["consistency"] = []
    elif defect == "anchor of another log":
        doc["heads"][1]["anchor"]["log_key"] = "00" * 32
    elif defect == "anchor on another contract":
        doc["heads"][1]["anchor"]["contract"] = "0x" + "ef" * 20
    elif defect == "record path":
        doc["records"][1]["inclusion_proof"][0] = "00" * 32
    elif defect == "record twice":
        doc["records"].append(doc["records"][0])
    report = _verify(doc)
    failure = report.first_failure
    assert failure is not None and failure.name == step, report.summary()
    assert all(s.status == "not-checked" for s in report.steps[failure.number:])


def test_unknown_fields_are_refused() -> None:
    doc = _bundle()
    doc["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        EvidenceBundle.model_validate(doc)


def test_record_format_reads_plain_and_signed_wrappers() -> None:
    assert record_format({"format": "a/b/v1"}) == "a/b/v1"
    assert record_format({"attestation": {"format": "c/d/v1"}, "signature": "00"}) == "c/d/v1"
    assert record_format({"n": 1}) is None
