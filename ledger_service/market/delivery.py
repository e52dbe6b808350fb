"""Delivery under a grant, and opening it on the buyer's side.

The ledger checks the grant twice, in its own records (not revoked, not expired) and on
chain (``isActive``), then builds a :class:`~carbon_protocol.data_delivery.DataDelivery`
holding exactly the dataset's readings, their device keys and one leaf-set proof of all
of them against the first final anchored tree head that covers them (hashes fetched in
one pass, not a path per reading), encrypts it to the key the buyer
named in its request, and appends a ``data_access`` record (grant, buyer, time, hash of
the plaintext, digest of the envelope) *before* answering: a read that is not logged
does not happen.

:func:`open_delivery` is the buyer's side: decrypt with its private key, then verify
every signature, the leaf-set proof and the content hash (optionally against the chain).
"""

from __future__ import annotations

import re
from typing import Any

from carbon_protocol.canonical import canonical_json
from carbon_protocol.chain_view import ChainView
from carbon_protocol.data_delivery import (
    DELIVERY_FORMAT,
    DataDelivery,
    DeliveryReport,
    DeliveryVerificationError,
    content_hash,
    parse_delivery,
    verify_delivery,
)
from carbon_protocol.envelope import (
    Envelope,
    EnvelopeHeader,
    RecipientPrivateKey,
    RecipientPublicKey,
    envelope_digest,
    open_,
    seal,
)
from carbon_protocol.market_records import DataAccess
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.suites import hash_fn

from .._internal.clock import utc_text
from .._internal.db import readings
from ..auth.keys import Principal
from ..errors import NotFoundError
from ..inventories import anchor_covering
from ..ledger import Ledger
from ..log_records import append_record
from ..registry import device_key_info
from .datasets import Selection, dataset_record, new_id, selected_readings
from .errors import DeliveryNotReadyError, InvalidDatasetError, NotGrantBuyerError
from .grants import check_active, grant_record
from .models import Delivery

__all__ = ["deliver", "open_delivery"]

_EMPTY_READINGS = b'"readings":[]'
_KEY_ID = re.compile(rb'"key_id":"([0-9a-f]+)"')
"""A signed reading's canonical bytes name its key once (the domain has no key id)."""


def _plaintext(ledger: Ledger, grant_id: str, dataset_id: str,
               listing: dict[str, Any]) -> tuple[bytes, int, int]:
    """The delivery's RFC 8785 bytes, its reading count and tree size.

    The readings are not parsed: each one's leaf data already is the RFC 8785 form of
    the signed reading (checked against its stored leaf hash here), so the bytes are
    spliced into the canonical document in place of an empty ``readings`` array.
    Parsing 200,000 readings into objects only to serialise them again cost more time
    and memory than everything else; the buyer's side parses and checks them all."""
    selection = Selection.of(listing)
    h = hash_fn(ledger.settings.log_suite)
    with ledger.reader.connect() as conn:
        rows = selected_readings(conn, selection, (readings.c.leaf_data,))
        if not rows:
            raise InvalidDatasetError(f"dataset {dataset_id} selects no readings any more")
        try:
            anchor = anchor_covering(ledger, int(rows[-1].leaf_index), f"dataset {dataset_id}")
        except NotFoundError as exc:
            raise DeliveryNotReadyError(str(exc), dataset_id=dataset_id) from exc
        indices = [int(row.leaf_index) for row in rows]
        proof = ledger.log.leaf_set_proof(conn, indices, anchor.tree_size)
        datas = [bytes(row.leaf_data) for row in rows]
        key_ids = {m.group(1).decode("ascii") for d in datas
                   if (m := _KEY_ID.search(d)) is not None}
        keys = [device_key_info(conn, k).model_dump(mode="json") for k in sorted(key_ids)]
        conn.rollback()
    altered = next((row.leaf_index for row, data in zip(rows, datas, strict=True)
                    if leaf_hash(h, data) != bytes(row.leaf_hash)), None)
    digest = content_hash(ledger.settings.log_suite, [bytes(r.leaf_hash) for r in rows]).hex()
    # The log is append-only and the selection fixed: either means tampered storage.
    if altered is not None:
        raise InvalidDatasetError(f"the stored reading at leaf {altered} of dataset "
                                  f"{dataset_id} no longer matches its leaf hash: storage "
                                  "was altered")
    if digest != listing["content_hash"]:
        raise InvalidDatasetError(f"dataset {dataset_id} now hashes to {digest}, listed as "
                                  f"{listing['content_hash']}: storage was altered")
    sth = ledger.tree_head(anchor.tree_size)
    assert sth is not None
    sel = listing["selection"]
    document = {
        "format": DELIVERY_FORMAT, "grant": grant_id, "dataset": dataset_id,
        "content_hash": digest, "delivered_at": utc_text(),
        "selection": {"devices": sel["devices"], "period_from": sel["period_from"],
                      "period_to": sel["period_to"], "tree_size": int(sel["tree_size"])},
        "signed_tree_head": sth.model_dump(mode="json"),
        "log_key": ledger.log_key_info().model_dump(mode="json"),
        "anchor": anchor.model_dump(mode="json"), "device_keys": keys,
        "indices": indices, "readings": [], "proof": [p.hex() for p in proof]}
    skeleton = canonical_json(document)
    # A quote inside a JSON string is escaped, so this byte string can only be the key.
    at = skeleton.index(_EMPTY_READINGS) + len(_EMPTY_READINGS) - 1
    assert skeleton.count(_EMPTY_READINGS) == 1
    return b"".join((skeleton[:at], b",".join(datas), skeleton[at:])), len(rows), \
        anchor.tree_size


def deliver(ledger: Ledger, grant_id: str, principal: Principal | None) -> Delivery:
    """The encrypted delivery of ``grant_id`` to its buyer, logged before it is returned.

    Refuses a caller whose enterprise is not the grant's buyer (403), a revoked or
    expired grant or one not active on chain (410), readings not yet anchored (409)."""
    record = grant_record(ledger, grant_id)
    doc = record.document
    if principal is None or doc["buyer"] not in principal.enterprises:
        raise NotGrantBuyerError(f"grant {grant_id} was made to {doc['buyer']}, not to this "
                                 "key's enterprise", grant_id=grant_id)
    check_active(ledger, record)
    listing = dataset_record(ledger, doc["dataset"]).document
    plaintext, count, tree_size = _plaintext(ledger, grant_id, doc["dataset"], listing)
    rk = doc["recipient_key"]
    recipient = RecipientPublicKey.from_hex(rk["suite"], rk["public_key"])
    envelope = seal(plaintext, recipient, EnvelopeHeader(
        suite=recipient.suite, grant=grant_id, recipient_key_id=recipient.key_id,
        content_type="application/json", created_at=utc_text()))
    access_id = new_id(ledger, "dacc")
    _, access = append_record(ledger, kind="data_access", record_id=access_id,
                              enterprise_id=record.enterprise_id, document=DataAccess(
        access=access_id, grant=grant_id, dataset=doc["dataset"], owner=doc["owner"],
        buyer=doc["buyer"], accessed_at=utc_text(),
        plaintext_hash=hash_fn(ledger.settings.log_suite)(plaintext).hex(),
        hash_suite=ledger.settings.log_suite, envelope_digest=envelope_digest(envelope),
        recipient_key_id=recipient.key_id, readings=count,
        tree_size=tree_size).model_dump(mode="json"))
    return Delivery(envelope=envelope, access_record_id=access_id,
                    access_leaf_index=access.leaf_index, content_hash=listing["content_hash"],
                    readings=count)


def open_delivery(envelope: Envelope, key: RecipientPrivateKey, *,
                  expected_content_hash: str | None = None, chain: ChainView | None = None,
                  trusted_log_keys: list[str] | None = None
                  ) -> tuple[DataDelivery, DeliveryReport]:
    """Decrypt ``envelope`` with the buyer's ``key`` and verify what it holds: every
    reading's signature and proofs, and the content hash (against
    ``expected_content_hash``, the listed one, when given). Raises the protocol's
    ``EnvelopeError`` / ``DeliveryVerificationError`` at the first failure."""
    delivery = parse_delivery(open_(envelope, key))
    if delivery.grant != envelope.header.grant:
        raise DeliveryVerificationError(f"the envelope is for grant {envelope.header.grant} "
                                        f"but holds a delivery for {delivery.grant}")
    report = verify_delivery(delivery, expected_content_hash=expected_content_hash,
                             chain=chain, trusted_log_keys=trusted_log_keys)
    return delivery, report
