"""Requests, grants, revocations and the audit trail of a dataset.

A request names the buyer, its purpose and its encryption key. The owner grants it at
most once (the grant's id is derived from the request's, so a second grant is refused
here and, across replicas, by the contract). Every step is first recorded on chain,
then appended to the log with the transaction hash; the audit trail is those records.
"""

from __future__ import annotations

from carbon_protocol.envelope import RecipientPublicKey
from carbon_protocol.errors import KeyFormatError
from carbon_protocol.market_records import (
    DataGrant,
    DataRequest,
    DataRevocation,
    RecipientKeyRef,
)
from carbon_protocol.models import parse_utc

from .._internal.clock import utc_now, utc_text
from ..errors import InvalidInputError, NotFoundError
from ..ledger import Ledger
from ..log_records import LoggedRecord, append_record, get_record, list_records
from .contract import chain_key
from .datasets import chain_ref, dataset_record, market_client, market_lock, new_id
from .errors import (
    AlreadyGrantedError,
    AlreadyRevokedError,
    GrantInactiveError,
    GrantNotFoundError,
    MarketContractError,
    RequestNotFoundError,
)
from .models import (
    ChainRef,
    DataRequestCreate,
    DataRequestPublic,
    GrantCreate,
    GrantPublic,
    MarketEvent,
    RevokeCreate,
)

__all__ = ["MARKET_KINDS", "accesses", "check_active", "grant", "grant_record", "list_grants",
           "list_requests", "request", "revoke"]

MARKET_KINDS = ("data_listing", "data_request", "data_grant", "data_revocation", "data_access")


def _record(ledger: Ledger, record_id: str, kind: str) -> LoggedRecord | None:
    try:
        record = get_record(ledger, record_id)
    except NotFoundError:
        return None
    return record if record.kind == kind else None


def _token(record_id: str) -> str:
    return record_id.rsplit(".", 1)[1]


def _grant_id(ledger: Ledger, request_id: str) -> str:
    return new_id(ledger, "dg", _token(request_id))


def _revocation_id(ledger: Ledger, grant_id: str) -> str:
    return new_id(ledger, "drev", _token(grant_id))


def request(ledger: Ledger, dataset_id: str, body: DataRequestCreate) -> DataRequestPublic:
    """Log a buyer's request for ``dataset_id``."""
    listing = dataset_record(ledger, dataset_id)
    try:
        key = RecipientPublicKey.from_hex(body.recipient_key.suite, body.recipient_key.public_key)
    except KeyFormatError as exc:
        raise InvalidInputError(f"recipient_key: {exc}") from exc
    request_id = new_id(ledger, "dreq")
    _, record = append_record(ledger, kind="data_request", record_id=request_id,
                              enterprise_id=listing.enterprise_id, document=DataRequest(
        request=request_id, dataset=dataset_id, owner=listing.enterprise_id, buyer=body.buyer,
        purpose=body.purpose,
        recipient_key=RecipientKeyRef(suite=key.suite, public_key=key.hex(), key_id=key.key_id),
        requested_at=utc_text()).model_dump(mode="json"))
    return _request_public(ledger, record)


def _request_public(ledger: Ledger, record: LoggedRecord) -> DataRequestPublic:
    doc = record.document
    granted = _record(ledger, _grant_id(ledger, record.record_id), "data_grant")
    return DataRequestPublic(
        request_id=record.record_id, dataset_id=doc["dataset"], owner=doc["owner"],
        buyer=doc["buyer"], purpose=doc["purpose"], recipient_key=doc["recipient_key"],
        requested_at=doc["requested_at"], grant_id=None if granted is None else granted.record_id,
        record_leaf_index=record.leaf_index)


def grant(ledger: Ledger, request_id: str, body: GrantCreate) -> GrantPublic:
    """Grant (or sell) a request: on chain, then logged. A request already granted is
    :class:`AlreadyGrantedError` (409) with nothing new on chain or in the log."""
    req = _record(ledger, request_id, "data_request")
    if req is None:
        raise RequestNotFoundError(f"no data request {request_id}", request_id=request_id)
    client = market_client(ledger)
    doc = req.document
    grant_id = _grant_id(ledger, request_id)
    purpose = body.purpose or doc["purpose"]
    expires = int(parse_utc(body.expires_at).timestamp())
    with market_lock(ledger):
        existing = _record(ledger, grant_id, "data_grant")
        if existing is not None:
            raise AlreadyGrantedError(f"request {request_id} was granted already as {grant_id}",
                                      grant_id=grant_id)
        chain_now = client.block_time()
        if expires <= max(chain_now, int(utc_now().timestamp())):
            raise InvalidInputError(f"expires_at {body.expires_at} is not in the future",
                                    expires_at=body.expires_at)
        try:
            tx = client.grant(grant_id, doc["dataset"], doc["buyer"], purpose, expires,
                              body.kind, body.price)
        except MarketContractError as exc:
            if exc.details.get("error") != "DataMarketAlreadyGranted":
                raise
            # On chain but not in the log: an earlier attempt died after its transaction.
            # Log that transaction if it granted exactly this; otherwise it is a conflict.
            on_chain = client.grant_of(grant_id)
            found = client.find_tx("AccessGranted", chain_key(grant_id))
            if found is None or (on_chain.dataset_key, on_chain.buyer_key,
                                 on_chain.purpose_hash, on_chain.expires_at, on_chain.kind,
                                 on_chain.price) != (
                    chain_key(doc["dataset"]).hex(), chain_key(doc["buyer"]).hex(),
                    chain_key(purpose).hex(), expires, body.kind, body.price):
                raise AlreadyGrantedError(f"request {request_id} was granted already on chain "
                                          f"as {grant_id}, on other terms",
                                          grant_id=grant_id) from exc
            tx = found
        _, record = append_record(ledger, kind="data_grant", record_id=grant_id,
                                  enterprise_id=req.enterprise_id, document=DataGrant(
            grant=grant_id, request=request_id, dataset=doc["dataset"], owner=doc["owner"],
            buyer=doc["buyer"], purpose=purpose, purpose_hash=chain_key(purpose).hex(),
            kind=body.kind, price=str(body.price), currency=body.currency,
            expires_at=body.expires_at,
            recipient_key=RecipientKeyRef.model_validate(doc["recipient_key"]),
            granted_at=utc_text(), chain=chain_ref(ledger, tx, client.address),
        ).model_dump(mode="json"))
    return _grant_public(ledger, record)


def grant_record(ledger: Ledger, grant_id: str) -> LoggedRecord:
    """The grant record (:class:`GrantNotFoundError` if none)."""
    record = _record(ledger, grant_id, "data_grant")
    if record is None:
        raise GrantNotFoundError(f"no grant {grant_id}", grant_id=grant_id)
    return record


def _grant_public(ledger: Ledger, record: LoggedRecord) -> GrantPublic:
    doc = record.document
    revoked = _record(ledger, _revocation_id(ledger, record.record_id), "data_revocation")
    expired = parse_utc(doc["expires_at"]) <= utc_now()
    return GrantPublic(
        grant_id=record.record_id, request_id=doc["request"], dataset_id=doc["dataset"],
        owner=doc["owner"], buyer=doc["buyer"], purpose=doc["purpose"], kind=doc["kind"],
        price=int(doc["price"]), currency=doc["currency"], expires_at=doc["expires_at"],
        granted_at=doc["granted_at"], chain=ChainRef.model_validate(doc["chain"]),
        record_leaf_index=record.leaf_index,
        revoked_at=None if revoked is None else revoked.document["revoked_at"],
        revocation_record_id=None if revoked is None else revoked.record_id,
        active=revoked is None and not expired)


def check_active(ledger: Ledger, record: LoggedRecord) -> None:
    """Refuse (:class:`GrantInactiveError`, 410) a grant that is revoked or expired by
    the ledger's records and clock, or not active on chain at the latest block."""
    state = _grant_public(ledger, record)
    if state.revoked_at is not None:
        raise GrantInactiveError(f"grant {state.grant_id} was revoked at {state.revoked_at}",
                                 reason="revoked", grant_id=state.grant_id)
    if not state.active:
        raise GrantInactiveError(f"grant {state.grant_id} expired at {state.expires_at}",
                                 reason="expired", grant_id=state.grant_id)
    client = market_client(ledger)
    if not client.is_active(state.grant_id):
        raise GrantInactiveError(
            f"grant {state.grant_id} is not active on chain (DataMarket at {client.address}, "
            f"block time {client.block_time()}, expiry {state.expires_at})",
            reason="inactive_on_chain", grant_id=state.grant_id)


def revoke(ledger: Ledger, grant_id: str, body: RevokeCreate) -> GrantPublic:
    """Revoke a grant: on chain, then logged; deliveries stop at once."""
    record = grant_record(ledger, grant_id)
    client = market_client(ledger)
    revocation_id = _revocation_id(ledger, grant_id)
    with market_lock(ledger):
        if _record(ledger, revocation_id, "data_revocation") is not None:
            raise AlreadyRevokedError(f"grant {grant_id} was revoked already",
                                      grant_id=grant_id)
        try:
            tx = client.revoke(grant_id)
        except MarketContractError as exc:
            found = client.find_tx("GrantRevoked", chain_key(grant_id))
            if exc.details.get("error") != "DataMarketAlreadyRevoked" or found is None:
                raise
            tx = found  # revoked on chain by an attempt that died before logging it
        doc = record.document
        append_record(ledger, kind="data_revocation", record_id=revocation_id,
                      enterprise_id=record.enterprise_id, document=DataRevocation(
            revocation=revocation_id, grant=grant_id, dataset=doc["dataset"],
            owner=doc["owner"], buyer=doc["buyer"], reason=body.reason,
            revoked_at=utc_text(), chain=chain_ref(ledger, tx, client.address),
        ).model_dump(mode="json"))
    return _grant_public(ledger, record)


def _involving(ledger: Ledger, kind: str, enterprise: str) -> list[LoggedRecord]:
    return [r for r in list_records(ledger, kinds=(kind,))
            if enterprise in (r.document.get("owner"), r.document.get("buyer"))]


def list_requests(ledger: Ledger, enterprise: str) -> list[DataRequestPublic]:
    """Requests made by ``enterprise`` or for its datasets."""
    return [_request_public(ledger, r) for r in _involving(ledger, "data_request", enterprise)]


def list_grants(ledger: Ledger, enterprise: str) -> list[GrantPublic]:
    """Grants made to ``enterprise`` or on its datasets."""
    return [_grant_public(ledger, r) for r in _involving(ledger, "data_grant", enterprise)]


def accesses(ledger: Ledger, dataset_id: str) -> list[MarketEvent]:
    """The dataset's audit trail in log order: its listing, every request, grant,
    revocation and read, each with the record id that proves it."""
    listing = dataset_record(ledger, dataset_id)
    out: list[MarketEvent] = []
    for r in list_records(ledger, enterprise_id=listing.enterprise_id, kinds=MARKET_KINDS):
        if r.document.get("dataset") == dataset_id:
            out.append(MarketEvent(record_id=r.record_id, kind=r.kind,
                                   leaf_index=r.leaf_index, leaf_hash=r.leaf_hash,
                                   created_at=r.created_at, document=r.document))
    return out
