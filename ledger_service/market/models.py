"""The marketplace's API models: what callers send (validated) and what they get back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from carbon_protocol.envelope import Envelope
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.models import SuiteField, UtcTimestamp, parse_utc

from .contract import GrantKind, Scene

__all__ = ["ChainRef", "DataRequestCreate", "DataRequestPublic", "DatasetCreate",
           "DatasetPublic", "Delivery", "GrantCreate", "GrantPublic", "MarketEvent",
           "RecipientKeyIn", "RevokeCreate"]

Title = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(max_length=4000)]
Purpose = Annotated[str, StringConstraints(min_length=1, max_length=1000,
                                           strip_whitespace=True)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetCreate(_In):
    """A listing: the owner's readings of ``devices`` measured in
    ``(period_from, period_to]``, as the log holds them when the listing is made."""

    owner: IdentifierStr
    """The enterprise listing its data (the caller's own)."""
    scene: Scene
    title: Title
    description: Text = ""
    devices: list[IdentifierStr] = Field(min_length=1, max_length=1000)
    period_from: UtcTimestamp
    period_to: UtcTimestamp

    @model_validator(mode="after")
    def _sane(self) -> DatasetCreate:
        if parse_utc(self.period_to) <= parse_utc(self.period_from):
            raise ValueError("period_to must be after period_from")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError("a device is named twice")
        return self


class RecipientKeyIn(_In):
    """The buyer's encryption public key: SM2 ``04||X||Y`` (sm) or X25519 (intl), hex."""

    suite: SuiteField
    public_key: Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2}){32,65}$")]


class DataRequestCreate(_In):
    """A buyer's request for a dataset: who asks, why, and where to deliver."""

    buyer: IdentifierStr
    """The buyer's enterprise (the caller's own)."""
    purpose: Purpose
    recipient_key: RecipientKeyIn


class GrantCreate(_In):
    """The owner's answer to a request: free (``grant``) or ``sale`` at ``price`` (in
    the smallest unit of ``currency``, e.g. fen), until ``expires_at``."""

    kind: GrantKind = "grant"
    expires_at: UtcTimestamp
    price: int = Field(default=0, ge=0, lt=2**128)
    currency: Currency = "CNY"
    purpose: Purpose | None = None
    """The purpose granted (default: the one requested)."""

    @model_validator(mode="after")
    def _priced(self) -> GrantCreate:
        if self.kind == "grant" and self.price != 0:
            raise ValueError("a free grant has price 0; use kind 'sale'")
        if self.kind == "sale" and self.price == 0:
            raise ValueError("a sale has a price above 0")
        return self


class RevokeCreate(_In):
    """Why a grant is revoked (logged)."""

    reason: Text = ""


class ChainRef(BaseModel):
    """The ``DataMarket`` transaction that recorded a step."""

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int


class DatasetPublic(BaseModel):
    """A dataset as the window shows it: metadata and hashes, never readings."""

    dataset_id: str
    owner: str
    scene: Scene
    title: str
    description: str
    metadata: dict[str, Any]
    content_hash: str
    hash_suite: str
    listed_at: str
    chain: ChainRef
    record_leaf_index: int


class DataRequestPublic(BaseModel):
    """A request, with the grant made for it if there is one."""

    request_id: str
    dataset_id: str
    owner: str
    buyer: str
    purpose: str
    recipient_key: dict[str, str]
    requested_at: str
    grant_id: str | None
    record_leaf_index: int


class GrantPublic(BaseModel):
    """A grant and its state (``active``: not revoked, not expired by the ledger's clock)."""

    grant_id: str
    request_id: str
    dataset_id: str
    owner: str
    buyer: str
    purpose: str
    kind: GrantKind
    price: int
    currency: str
    expires_at: str
    granted_at: str
    chain: ChainRef
    record_leaf_index: int
    revoked_at: str | None = None
    revocation_record_id: str | None = None
    active: bool


class Delivery(BaseModel):
    """What the buyer downloads: the envelope and the log record of this read."""

    envelope: Envelope
    access_record_id: str
    access_leaf_index: int
    content_hash: str
    readings: int


class MarketEvent(BaseModel):
    """One logged step of a dataset's life, provable by its record's inclusion proof
    against an anchor (:func:`ledger_service.log_records.record_proof`)."""

    record_id: str
    kind: Literal["data_listing", "data_request", "data_grant", "data_revocation",
                  "data_access"]
    leaf_index: int
    leaf_hash: str
    created_at: str
    document: dict[str, Any]
