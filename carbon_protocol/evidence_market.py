"""Step 17 checks of the marketplace's log records: who saw what, and when.

A bundle's market records (:mod:`.market_records`) tell a story a stranger can check
against itself: a dataset was listed with a content hash, a buyer asked for it, the
owner granted the request, a delivery was read under the grant, the grant was revoked.
Each record must name the ones it follows from, and those must be in the bundle at an
*earlier leaf* (the log's order is the one proof of "before" that no clock can fake):
a grant its request and listing, a read and a revocation their grant. The check that
matters most is the read's: its grant must be the buyer's for that dataset, not revoked
by a ``data_revocation`` logged before the read, and not expired when it was read.

What a stranger cannot check here: that the ledger logged every read (an unlogged
delivery is a ledger that cheats against its own code) and that the exporter carried
every revocation (the bundle is the ledger's selection; ``docs/evidence-bundle.md`` §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from eth_utils.crypto import keccak
from pydantic import BaseModel, ValidationError

from .data_delivery import content_hash
from .envelope import RecipientPublicKey
from .evidence import CheckContext, EvidenceCheckError, RecordChecker, RecordItem
from .market_records import (
    ACCESS_FORMAT,
    GRANT_FORMAT,
    LISTING_FORMAT,
    REQUEST_FORMAT,
    REVOCATION_FORMAT,
    DataAccess,
    DataGrant,
    DataListing,
    DataRequest,
    DataRevocation,
    MarketChainRef,
    RecipientKeyRef,
    id_token,
)
from .merkle import leaf_hash
from .models import parse_utc
from .signing import leaf_bytes
from .suites import hash_fn

__all__ = ["MARKET_CHECKERS"]

M = TypeVar("M", bound=BaseModel)

_INDEX: list[tuple[object, dict[str, RecordItem]]] = []
"""The last bundle's records by id (one entry: checks run bundle by bundle)."""


def _records(ctx: CheckContext) -> Mapping[str, RecordItem]:
    if not _INDEX or _INDEX[0][0] is not ctx.bundle:
        _INDEX[:] = [(ctx.bundle, {r.record_id: r for r in ctx.bundle.records})]
    return _INDEX[0][1]


def _parse(model: type[M], document: object, record_id: str, what: str) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EvidenceCheckError(f"record {record_id} is not a {what}: "
                                 f"{where}: {first['msg']}") from None


def _earlier(ctx: CheckContext, record: RecordItem, ref: str, model: type[M],
             what: str) -> M:
    """The ``what`` record ``ref`` that ``record`` names: in the bundle, logged before it."""
    held = _records(ctx).get(ref)
    if held is None:
        raise EvidenceCheckError(f"the {what} it names is not in the bundle",
                                 expected=ref, found="nothing")
    if held.leaf_index >= record.leaf_index:
        raise EvidenceCheckError(f"the {what} it names is logged after it",
                                 expected=f"{ref} before leaf {record.leaf_index}",
                                 found=f"leaf {held.leaf_index}")
    return _parse(model, held.document, ref, what)


def _same(what: str, **pairs: tuple[object, object]) -> None:
    for name, (mine, theirs) in pairs.items():
        if mine != theirs:
            raise EvidenceCheckError(f"its {name} is not the {what}'s", expected=theirs,
                                     found=mine)


def _own(ctx: CheckContext, record_id: str, field: str, value: str) -> None:
    if value != record_id:
        raise EvidenceCheckError(f"its {field} field is not its record id",
                                 expected=record_id, found=value)


def _owner(ctx: CheckContext, owner: str) -> None:
    if owner != ctx.bundle.enterprise:
        raise EvidenceCheckError("the dataset's owner is not the bundle's enterprise",
                                 expected=ctx.bundle.enterprise, found=owner)


def _chain(ctx: CheckContext, chain: MarketChainRef) -> None:
    expected = ctx.bundle.heads[-1].anchor.chain_id
    if chain.chain_id != expected:
        raise EvidenceCheckError("its DataMarket transaction is on another chain than the "
                                 "anchors", expected=expected, found=chain.chain_id)


def _derived_id(record_id: str, tag: str, parent: str) -> None:
    expected = f"{parent.split('/', 1)[0]}/{tag}.{id_token(parent)}"
    if record_id != expected:
        raise EvidenceCheckError(f"its id is not {tag}.<the token of {parent}>",
                                 expected=expected, found=record_id)


def _suite(ctx: CheckContext, suite: str) -> None:
    log_suite = ctx.bundle.heads[-1].signed_tree_head.tree_head.suite
    if suite != log_suite:
        raise EvidenceCheckError("its hash suite is not the log's", expected=log_suite,
                                 found=suite)


def _recipient_key(key: RecipientKeyRef) -> None:
    derived = RecipientPublicKey.from_hex(key.suite, key.public_key).key_id
    if derived != key.key_id:
        raise EvidenceCheckError("the recipient key id is not derived from the key",
                                 expected=derived, found=key.key_id)


def _listing(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(DataListing, record.document, record.record_id, "data listing")
    _own(ctx, record.record_id, "dataset", doc.dataset)
    _owner(ctx, doc.owner)
    _chain(ctx, doc.chain)
    _suite(ctx, doc.hash_suite)
    sel, meta = doc.selection, doc.metadata
    if sel.tree_size > record.leaf_index:
        raise EvidenceCheckError("it selects leaves logged after the listing itself",
                                 expected=f"tree_size <= {record.leaf_index}",
                                 found=sel.tree_size)
    _same("selection", period_from=(meta.period_from, sel.period_from),
          period_to=(meta.period_to, sel.period_to),
          devices=([d.device for d in meta.devices], sel.devices))
    counted = sum(d.readings for d in meta.devices)
    if counted != meta.readings or meta.readings == 0:
        raise EvidenceCheckError("its reading count is not the sum of its devices' (or is 0)",
                                 expected=counted, found=meta.readings)
    if not meta.first_leaf <= meta.last_leaf < sel.tree_size:
        raise EvidenceCheckError("its first and last leaves are not inside the selection",
                                 expected=f"first <= last < {sel.tree_size}",
                                 found=f"{meta.first_leaf}..{meta.last_leaf}")
    # The bundle's readings that the selection holds: all of them recompute the hash.
    devices = set(sel.devices)
    start, end = parse_utc(sel.period_from), parse_utc(sel.period_to)
    held = [(i, r) for i, r in zip(ctx.bundle.readings.indices, ctx.bundle.readings.readings,
                                   strict=True)
            if i < sel.tree_size and r.reading.device in devices
            and start < parse_utc(r.reading.measured_at) <= end]
    if len(held) > meta.readings:
        raise EvidenceCheckError("the bundle holds more readings of the selection than the "
                                 "listing counts", expected=meta.readings, found=len(held))
    if len(held) == meta.readings:
        h = hash_fn(doc.hash_suite)
        got = content_hash(doc.hash_suite, [leaf_hash(h, leaf_bytes(r)) for _, r in held]).hex()
        if got != doc.content_hash:
            raise EvidenceCheckError("the content hash is not that of the selected readings",
                                     expected=got, found=doc.content_hash)
    return None


def _request(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(DataRequest, record.document, record.record_id, "data request")
    _own(ctx, record.record_id, "request", doc.request)
    _owner(ctx, doc.owner)
    _recipient_key(doc.recipient_key)
    listing = _earlier(ctx, record, doc.dataset, DataListing, "listing")
    _same("listing", owner=(doc.owner, listing.owner))
    return None


def _grant(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(DataGrant, record.document, record.record_id, "data grant")
    _own(ctx, record.record_id, "grant", doc.grant)
    _owner(ctx, doc.owner)
    _chain(ctx, doc.chain)
    _derived_id(record.record_id, "dg", doc.request)
    request = _earlier(ctx, record, doc.request, DataRequest, "request")
    _same("request", dataset=(doc.dataset, request.dataset), owner=(doc.owner, request.owner),
          buyer=(doc.buyer, request.buyer),
          recipient_key=(doc.recipient_key, request.recipient_key))
    listing = _earlier(ctx, record, doc.dataset, DataListing, "listing")
    _same("listing", owner=(doc.owner, listing.owner))
    purpose_hash = keccak(doc.purpose.encode("utf-8")).hex()
    if purpose_hash != doc.purpose_hash:
        raise EvidenceCheckError("its purpose hash is not keccak256 of its purpose",
                                 expected=purpose_hash, found=doc.purpose_hash)
    if parse_utc(doc.expires_at) <= parse_utc(doc.granted_at):
        raise EvidenceCheckError("it expires before it was granted",
                                 expected=f"after {doc.granted_at}", found=doc.expires_at)
    return None


def _revocation(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(DataRevocation, record.document, record.record_id, "data revocation")
    _own(ctx, record.record_id, "revocation", doc.revocation)
    _owner(ctx, doc.owner)
    _chain(ctx, doc.chain)
    _derived_id(record.record_id, "drev", doc.grant)
    grant = _earlier(ctx, record, doc.grant, DataGrant, "grant")
    _same("grant", dataset=(doc.dataset, grant.dataset), owner=(doc.owner, grant.owner),
          buyer=(doc.buyer, grant.buyer))
    return None


def _access(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(DataAccess, record.document, record.record_id, "data access")
    _own(ctx, record.record_id, "access", doc.access)
    _owner(ctx, doc.owner)
    _suite(ctx, doc.hash_suite)
    grant = _earlier(ctx, record, doc.grant, DataGrant, "grant")
    _same("grant", dataset=(doc.dataset, grant.dataset), owner=(doc.owner, grant.owner),
          buyer=(doc.buyer, grant.buyer),
          recipient_key_id=(doc.recipient_key_id, grant.recipient_key.key_id))
    revocation_id = f"{doc.grant.split('/', 1)[0]}/drev.{id_token(doc.grant)}"
    revoked = _records(ctx).get(revocation_id)
    if revoked is not None and revoked.leaf_index < record.leaf_index:
        raise EvidenceCheckError(
            f"{doc.buyer} read {doc.dataset} after grant {doc.grant} was revoked",
            expected=f"no revocation before leaf {record.leaf_index}",
            found=f"{revocation_id} at leaf {revoked.leaf_index}")
    if parse_utc(doc.accessed_at) >= parse_utc(grant.expires_at):
        raise EvidenceCheckError(
            f"{doc.buyer} read {doc.dataset} after grant {doc.grant} expired",
            expected=f"before {grant.expires_at}", found=doc.accessed_at)
    if parse_utc(doc.accessed_at) < parse_utc(grant.granted_at):
        raise EvidenceCheckError("it was read before the grant was made",
                                 expected=f"at or after {grant.granted_at}",
                                 found=doc.accessed_at)
    listing = _earlier(ctx, record, doc.dataset, DataListing, "listing")
    if doc.readings != listing.metadata.readings:
        raise EvidenceCheckError("the delivery's reading count is not the listing's",
                                 expected=listing.metadata.readings, found=doc.readings)
    if not listing.metadata.last_leaf < doc.tree_size <= record.leaf_index:
        raise EvidenceCheckError(
            "the delivery's tree head does not cover the dataset or follows the read",
            expected=f"{listing.metadata.last_leaf} < tree_size <= {record.leaf_index}",
            found=doc.tree_size)
    return None


MARKET_CHECKERS: dict[str, RecordChecker] = {
    LISTING_FORMAT: _listing,
    REQUEST_FORMAT: _request,
    GRANT_FORMAT: _grant,
    REVOCATION_FORMAT: _revocation,
    ACCESS_FORMAT: _access,
}
"""Market record format -> its checker (wrapped by :mod:`.evidence_records`)."""
