"""Step 17 on the marketplace's records, in a log built by hand as a forger would build
it: listing, request, grant, read, revocation, each a leaf, heads signed by the log key.
The honest story passes; a read logged after the grant's revocation, a read after the
grant expired, a read under another buyer's grant and a grant whose request is missing
each fail step 17 naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from carbon_protocol.canonical import canonical_json
from carbon_protocol.chain_view import log_key
from carbon_protocol.envelope import RecipientPrivateKey
from carbon_protocol.evidence import (
    AnchoredHead,
    EvidenceBundle,
    EvidenceReadings,
    EvidenceReport,
    RecordItem,
    verify_evidence,
)
from carbon_protocol.inventory import Period
from carbon_protocol.market_records import (
    DataAccess,
    DataGrant,
    DataListing,
    DataRequest,
    DataRevocation,
    DataSelection,
    ListingMetadata,
    MarketChainRef,
    RecipientKeyRef,
)
from carbon_protocol.merkle import inclusion_proof, leaf_hash, root_from_leaf_hashes
from carbon_protocol.models import AnchorRef, TreeHead
from carbon_protocol.signing import sign_tree_head
from carbon_protocol.suites import PrivateKey, hash_fn

LOG_ID = "86.1000.1/log.main"
OWNER = "86.1000.1/ent.steel"
BUYER = "86.1000.1/ent.parts"
DS = "86.1000.1/ds.00aa"
REQ = "86.1000.1/dreq.11bb"
GRANT = "86.1000.1/dg.11bb"
REV = "86.1000.1/drev.11bb"
PERIOD = Period(label="2026-01", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z")
CHAIN = MarketChainRef(chain_id=1337, contract="0x" + "ef" * 20, tx_hash="0x" + "12" * 32,
                       block_number=3)
PURPOSE = "product carbon footprint"


def _key() -> RecipientKeyRef:
    pub = RecipientPrivateKey.generate("sm").public_key()
    return RecipientKeyRef(suite="sm", public_key=pub.hex(), key_id=pub.key_id)


def _story(key: RecipientKeyRef) -> dict[str, dict[str, Any]]:
    """The honest records, by id, in log order (filler leaves 0..4 come first)."""
    listing = DataListing(
        dataset=DS, owner=OWNER, scene="trading", title="January electricity",
        description="", selection=DataSelection(
            devices=["86.1000.1/dev.m1"], period_from="2026-01-01T00:00:00Z",
            period_to="2026-02-01T00:00:00Z", tree_size=5),
        metadata=ListingMetadata.model_validate({
            "period_from": "2026-01-01T00:00:00Z", "period_to": "2026-02-01T00:00:00Z",
            "devices": [{"device": "86.1000.1/dev.m1", "quantity": "active_energy",
                         "unit": "kWh", "readings": 3}],
            "readings": 3, "first_leaf": 1, "last_leaf": 3}),
        content_hash="ab" * 32, hash_suite="sm", listed_at="2026-02-01T08:00:00Z", chain=CHAIN)
    request = DataRequest(request=REQ, dataset=DS, owner=OWNER, buyer=BUYER, purpose=PURPOSE,
                          recipient_key=key, requested_at="2026-02-01T09:00:00Z")
    grant = DataGrant(grant=GRANT, request=REQ, dataset=DS, owner=OWNER, buyer=BUYER,
                      purpose=PURPOSE, purpose_hash=keccak(PURPOSE.encode()).hex(),
                      kind="sale", price="50000", currency="CNY",
                      expires_at="2026-03-01T00:00:00Z", recipient_key=key,
                      granted_at="2026-02-01T10:00:00Z", chain=CHAIN)
    access = _access("86.1000.1/dacc.01", "2026-02-02T00:00:00Z", key)
    revocation = DataRevocation(revocation=REV, grant=GRANT, dataset=DS, owner=OWNER,
                                buyer=BUYER, reason="contract ended",
                                revoked_at="2026-02-03T00:00:00Z", chain=CHAIN)
    return {r_id: doc.model_dump(mode="json") for r_id, doc in [
        (DS, listing), (REQ, request), (GRANT, grant), ("86.1000.1/dacc.01", access),
        (REV, revocation)]}


def _access(access_id: str, at: str, key: RecipientKeyRef, *, buyer: str = BUYER,
            grant: str = GRANT) -> DataAccess:
    return DataAccess(access=access_id, grant=grant, dataset=DS, owner=OWNER, buyer=buyer,
                      accessed_at=at, plaintext_hash="cd" * 32, hash_suite="sm",
                      envelope_digest="ef" * 32, recipient_key_id=key.key_id, readings=3,
                      tree_size=5)


def _bundle(records: dict[str, dict[str, Any]]) -> EvidenceBundle:
    """A log of 5 filler leaves then ``records`` in order, under one signed head."""
    key = PrivateKey.generate("sm")
    h = hash_fn("sm")
    leaves = [leaf_hash(h, f"filler {i}".encode()) for i in range(5)]
    leaves += [leaf_hash(h, canonical_json(d)) for d in records.values()]
    size, pub = len(leaves), key.public_key()
    root = root_from_leaf_hashes(h, leaves)
    sth = sign_tree_head(TreeHead(log_id=LOG_ID, suite="sm", key_id=pub.key_id,
                                  tree_size=size, root_hash=root.hex(),
                                  timestamp="2026-02-05T00:00:00Z"), key)
    anchor = AnchorRef(chain_id=1337, contract="0x" + "ab" * 20, log_key=log_key(LOG_ID).hex(),
                       tree_size=size, root_hash=root.hex(), tx_hash="0x" + "01" * 32,
                       block_number=10, block_hash="0x" + "02" * 32,
                       block_timestamp=1_780_000_000, submitter="0x" + "cd" * 20)
    items = [RecordItem(record_id=r_id, kind=str(doc["format"]).split("/")[1].replace("-", "_"),
                        leaf_index=5 + n, document=doc,
                        inclusion_proof=[p.hex() for p in inclusion_proof(h, 5 + n, leaves)])
             for n, (r_id, doc) in enumerate(records.items())]
    return EvidenceBundle(
        enterprise=OWNER, period=PERIOD, exported_at="2026-02-10T00:00:00Z",
        log_key={"suite": "sm", "public_key": pub.hex(), "key_id": pub.key_id},
        heads=[AnchoredHead(signed_tree_head=sth, anchor=anchor)], consistency=[],
        device_keys=[], readings=EvidenceReadings(indices=[], readings=[], proof=[]),
        rules=[], inventories=[], reports=[], records=items)


def _step17(report: EvidenceReport) -> Any:
    return report.steps[16]


def test_the_honest_story_passes_every_record_check() -> None:
    report = verify_evidence(_bundle(_story(_key())))
    assert report.ok, report.steps
    assert _step17(report).status == "pass"


def test_a_read_logged_after_the_revocation_fails() -> None:
    key = _key()
    records = _story(key)
    records["86.1000.1/dacc.02"] = _access("86.1000.1/dacc.02", "2026-02-04T00:00:00Z",
                                           key).model_dump(mode="json")
    step = _step17(verify_evidence(_bundle(records)))
    assert step.status == "fail"
    assert "86.1000.1/dacc.02" in step.detail and "after grant" in step.detail
    assert "was revoked" in step.detail and REV in (step.found or "")


def test_a_read_after_the_grant_expired_fails() -> None:
    key = _key()
    records = _story(key)
    del records[REV]
    records["86.1000.1/dacc.02"] = _access("86.1000.1/dacc.02", "2026-03-01T00:00:00Z",
                                           key).model_dump(mode="json")
    step = _step17(verify_evidence(_bundle(records)))
    assert step.status == "fail" and "expired" in step.detail
    assert step.expected == "before 2026-03-01T00:00:00Z"


@pytest.mark.parametrize(("change", "message"), [
    ({"buyer": "86.1000.1/ent.other"}, "its buyer is not the grant's"),
    ({"grant": "86.1000.1/dg.99zz"}, "the grant it names is not in the bundle"),
    ({"readings": 4}, "reading count is not the listing's"),
])
def test_a_read_that_does_not_match_its_grant_fails(change: dict[str, Any],
                                                    message: str) -> None:
    records = _story(_key())
    records["86.1000.1/dacc.01"].update(change)
    step = _step17(verify_evidence(_bundle(records)))
    assert step.status == "fail" and message in step.detail


def test_a_grant_without_its_request_fails() -> None:
    records = _story(_key())
    del records[REQ]
    step = _step17(verify_evidence(_bundle(records)))
    assert step.status == "fail" and "the request it names is not in the bundle" in step.detail


def test_a_grant_logged_before_its_listing_fails() -> None:
    records = _story(_key())
    listing = records.pop(DS)
    reordered = {REQ: records.pop(REQ), GRANT: records.pop(GRANT), DS: listing, **records}
    step = _step17(verify_evidence(_bundle(reordered)))
    assert step.status == "fail" and "logged after it" in step.detail


def test_a_grant_whose_purpose_hash_lies_fails() -> None:
    records = _story(_key())
    records[GRANT]["purpose_hash"] = "00" * 32
    step = _step17(verify_evidence(_bundle(records)))
    assert step.status == "fail" and "purpose hash" in step.detail


def test_a_market_record_with_an_unknown_field_fails() -> None:
    records = _story(_key())
    records[DS]["extra"] = 1
    step = _step17(verify_evidence(_bundle(records)))
    assert step.status == "fail" and "is not a data listing" in step.detail


def test_documents_carry_their_format() -> None:
    assert {json.loads(canonical_json(d))["format"] for d in _story(_key()).values()} == {
        "carbon-ledger/data-listing/v1", "carbon-ledger/data-request/v1",
        "carbon-ledger/data-grant/v1", "carbon-ledger/data-access/v1",
        "carbon-ledger/data-revocation/v1"}
