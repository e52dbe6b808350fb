"""API models: what clients send (``XCreate``) and what the service answers (``XPublic``).

Wire objects that are signed (readings, tree heads, bundles) live in
:mod:`carbon_protocol.models`; these are the service's own request and response
shapes. Requests are strict and forbid unknown fields, so a typo in a field name is
an error rather than a silently ignored value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.models import (
    DeviceKeyInfo,
    Domain,
    PublicKeyHex,
    Quantity,
    SignedReading,
    SignedTreeHead,
    SuiteField,
    UtcTimestamp,
)

__all__ = [
    "EnterpriseCreate", "EnterprisePublic", "SiteCreate", "SitePublic", "GatewayCreate",
    "GatewayPublic", "DeviceCreate", "DevicePublic", "DeviceKeyCreate", "KeyRevoke",
    "ReadingBatch", "Receipt", "IngestItem", "IngestResult", "Problem", "LogInfo",
    "InclusionProofPublic", "ConsistencyProofPublic", "AnchorPublic", "SequenceReport",
]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class EnterpriseCreate(_Request):
    id: IdentifierStr
    name: str = Field(min_length=1, max_length=200)


class EnterprisePublic(_Response):
    id: str
    name: str
    created_at: str


class SiteCreate(_Request):
    id: IdentifierStr
    enterprise_id: IdentifierStr
    name: str = Field(min_length=1, max_length=200)
    region: str = Field(min_length=1, max_length=100)


class SitePublic(_Response):
    id: str
    enterprise_id: str
    name: str
    region: str
    created_at: str


class GatewayCreate(_Request):
    id: IdentifierStr
    enterprise_id: IdentifierStr
    name: str = Field(min_length=1, max_length=200)


class GatewayPublic(_Response):
    id: str
    enterprise_id: str
    name: str
    created_at: str


class DeviceCreate(_Request):
    id: IdentifierStr
    site_id: IdentifierStr
    gateway_id: IdentifierStr | None = None
    quantity: Quantity
    unit: str = Field(max_length=8)
    serial: str = Field(min_length=1, max_length=100)
    calibration: dict[str, str] = Field(default_factory=dict, max_length=20)
    """Calibration facts as text (certificate number, lab, date, next due)."""


class DevicePublic(_Response):
    id: str
    site_id: str
    gateway_id: str | None
    quantity: str
    unit: str
    serial: str
    calibration: dict[str, str]
    created_at: str
    last_seq: int
    keys: list[DeviceKeyInfo]


class DeviceKeyCreate(_Request):
    suite: SuiteField
    public_key: PublicKeyHex
    valid_from: UtcTimestamp | None = None
    """Defaults to now; a key never signs validly before it is registered."""


class KeyRevoke(_Request):
    revoked_at: UtcTimestamp | None = None
    """When the key stopped being trustworthy (the compromise time); defaults to now."""
    reason: str = Field(min_length=1, max_length=500)


class ReadingBatch(_Request):
    readings: list[SignedReading] = Field(min_length=1)


class Receipt(_Response):
    """The ledger's answer for an accepted reading; the same reading gets the same receipt."""

    reading_id: str
    device: str
    seq: int
    leaf_index: int
    leaf_hash: str
    log_id: str
    gap_before: int = 0
    """How many sequence numbers were missing before this one when it arrived."""


class Problem(_Response):
    """A typed error: a stable ``code`` and a message saying what was wrong."""

    code: str
    message: str
    details: dict[str, Any] | None = None


class IngestItem(_Response):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    receipt: Receipt | None = None
    error: Problem | None = None


class IngestResult(_Response):
    accepted: int
    duplicates: int
    rejected: int
    items: list[IngestItem]


class LogInfo(_Response):
    log_id: str
    suite: str
    tree_size: int
    domain: Domain
    log_key: dict[str, str]
    signed_tree_head: SignedTreeHead | None


class InclusionProofPublic(_Response):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyProofPublic(_Response):
    size1: int
    size2: int
    proof: list[str]


class AnchorPublic(_Response):
    tree_size: int
    root_hash: str
    tx_hash: str
    nonce: int
    status: str
    block_number: int | None
    block_hash: str | None
    block_timestamp: int | None
    confirmations: int | None = None


class SequenceReport(_Response):
    """Per-device sequence evidence: what was received and what is missing."""

    device: str
    count: int
    first_seq: int | None
    last_seq: int | None
    missing: list[tuple[int, int]]
    """Inclusive ranges of sequence numbers never received."""
