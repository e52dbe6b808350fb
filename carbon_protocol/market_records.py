"""Wire models of the data marketplace's log records (``docs/marketplace.md`` §4).

Each step of a sale is one log record, so who listed, asked for, was granted, lost and
read which dataset, and when, is provable from the log alone: a ``data_listing``
(the dataset and its content hash), a ``data_request`` (buyer, purpose, encryption
key), a ``data_grant`` (terms and expiry), a ``data_revocation`` and a ``data_access``
(one delivery, logged before it left). The ledger writes them with these models and
an evidence bundle's verifier reads them with the same ones
(:mod:`carbon_protocol.evidence_market` checks them), so writer and checker cannot
drift apart. Every model rejects unknown fields; the record's leaf is the RFC 8785
JSON of ``model_dump(mode="json")``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .identifiers import IdentifierStr
from .models import (
    Address,
    Hex16,
    Hex32,
    PublicKeyHex,
    SafeInt,
    SuiteField,
    TxHash,
    UtcTimestamp,
    parse_utc,
)

__all__ = [
    "ACCESS_FORMAT", "GRANT_FORMAT", "LISTING_FORMAT", "MARKET_FORMATS", "REQUEST_FORMAT",
    "REVOCATION_FORMAT", "DataAccess", "DataGrant", "DataListing", "DataRequest",
    "DataRevocation", "DataSelection", "DeviceSummary", "ListingMetadata", "MarketChainRef",
    "RecipientKeyRef", "id_token",
]

LISTING_FORMAT: Final = "carbon-ledger/data-listing/v1"
REQUEST_FORMAT: Final = "carbon-ledger/data-request/v1"
GRANT_FORMAT: Final = "carbon-ledger/data-grant/v1"
REVOCATION_FORMAT: Final = "carbon-ledger/data-revocation/v1"
ACCESS_FORMAT: Final = "carbon-ledger/data-access/v1"

MARKET_FORMATS: Final = {
    "data_listing": LISTING_FORMAT, "data_request": REQUEST_FORMAT, "data_grant": GRANT_FORMAT,
    "data_revocation": REVOCATION_FORMAT, "data_access": ACCESS_FORMAT,
}
"""Record kind -> the format of its document."""

Scene = Literal["accounting", "verification", "trading"]
Text = Annotated[str, StringConstraints(max_length=4000)]
Purpose = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Price = Annotated[str, StringConstraints(pattern=r"^(?:0|[1-9][0-9]{0,38})$")]
"""An integer below 2**128 in the smallest unit of the currency, as decimal text."""


def id_token(record_id: str) -> str:
    """The token after the last ``.`` of a record id: a grant's id carries its
    request's token, a revocation's its grant's (one grant per request, one revocation
    per grant, also across replicas)."""
    return record_id.rsplit(".", 1)[-1]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarketChainRef(_Wire):
    """The ``DataMarket`` transaction that recorded a step (same chain as the anchors)."""

    chain_id: SafeInt
    contract: Address
    tx_hash: TxHash
    block_number: SafeInt


class RecipientKeyRef(_Wire):
    """The buyer's encryption public key (SM2 ``04||X||Y`` or X25519) and its id."""

    suite: SuiteField
    public_key: PublicKeyHex
    key_id: Hex16


class DataSelection(_Wire):
    """Which readings a dataset holds: those of ``devices`` measured in
    ``(period_from, period_to]`` among the first ``tree_size`` leaves of the log."""

    devices: list[IdentifierStr] = Field(min_length=1, max_length=1000)
    """Sorted, each once."""
    period_from: UtcTimestamp
    period_to: UtcTimestamp
    tree_size: SafeInt

    @model_validator(mode="after")
    def _sane(self) -> DataSelection:
        if self.devices != sorted(set(self.devices)):
            raise ValueError("devices must be sorted and each named once")
        if parse_utc(self.period_to) <= parse_utc(self.period_from):
            raise ValueError("period_to must be after period_from")
        return self


class DeviceSummary(_Wire):
    """One device of a dataset: what it measures and how many of its readings are in."""

    device: IdentifierStr
    quantity: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    unit: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    readings: SafeInt


class ListingMetadata(_Wire):
    """What the window shows of a dataset (never the readings)."""

    period_from: UtcTimestamp
    period_to: UtcTimestamp
    devices: list[DeviceSummary] = Field(max_length=1000)
    readings: SafeInt
    first_leaf: SafeInt
    last_leaf: SafeInt


class DataListing(_Wire):
    """``data_listing``: a dataset put in the window, its content hash recorded on chain.

    ``content_hash`` is the RFC 9162 Merkle Tree Hash, with the ``hash_suite``'s hash,
    of the selected readings' leaf hashes in leaf order
    (:func:`carbon_protocol.data_delivery.content_hash`)."""

    format: Literal["carbon-ledger/data-listing/v1"] = LISTING_FORMAT
    dataset: IdentifierStr
    owner: IdentifierStr
    scene: Scene
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Text
    selection: DataSelection
    metadata: ListingMetadata
    content_hash: Hex32
    hash_suite: SuiteField
    listed_at: UtcTimestamp
    chain: MarketChainRef


class DataRequest(_Wire):
    """``data_request``: a buyer asks for a dataset, says why, and names its key."""

    format: Literal["carbon-ledger/data-request/v1"] = REQUEST_FORMAT
    request: IdentifierStr
    dataset: IdentifierStr
    owner: IdentifierStr
    buyer: IdentifierStr
    purpose: Purpose
    recipient_key: RecipientKeyRef
    requested_at: UtcTimestamp


class DataGrant(_Wire):
    """``data_grant``: the owner grants (or sells) a request until ``expires_at``; the
    id is ``<prefix>/dg.<the request's token>``."""

    format: Literal["carbon-ledger/data-grant/v1"] = GRANT_FORMAT
    grant: IdentifierStr
    request: IdentifierStr
    dataset: IdentifierStr
    owner: IdentifierStr
    buyer: IdentifierStr
    purpose: Purpose
    """The purpose granted: the requested one unless the owner narrowed it."""
    purpose_hash: Hex32
    """``keccak256(utf8(purpose))``, the contract's ``purposeHash``."""
    kind: Literal["grant", "sale"]
    price: Price
    currency: Currency
    expires_at: UtcTimestamp
    recipient_key: RecipientKeyRef
    granted_at: UtcTimestamp
    chain: MarketChainRef


class DataRevocation(_Wire):
    """``data_revocation``: a grant withdrawn; id ``<prefix>/drev.<the grant's token>``."""

    format: Literal["carbon-ledger/data-revocation/v1"] = REVOCATION_FORMAT
    revocation: IdentifierStr
    grant: IdentifierStr
    dataset: IdentifierStr
    owner: IdentifierStr
    buyer: IdentifierStr
    reason: Text
    """The owner's reason (may be empty)."""
    revoked_at: UtcTimestamp
    chain: MarketChainRef


class DataAccess(_Wire):
    """``data_access``: one delivery under a grant, logged before it was returned."""

    format: Literal["carbon-ledger/data-access/v1"] = ACCESS_FORMAT
    access: IdentifierStr
    grant: IdentifierStr
    dataset: IdentifierStr
    owner: IdentifierStr
    buyer: IdentifierStr
    accessed_at: UtcTimestamp
    plaintext_hash: Hex32
    """``hex(H(plaintext))`` of the delivery's JSON, ``H`` the ``hash_suite``'s hash."""
    hash_suite: SuiteField
    envelope_digest: Hex32
    recipient_key_id: Hex16
    readings: SafeInt
    tree_size: SafeInt
    """The size of the anchored tree head the delivery's proofs lead to."""
