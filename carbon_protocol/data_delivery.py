"""Marketplace deliveries: the plaintext a buyer finds inside a delivery envelope.

A data owner lists a *dataset* (a set of its readings) in the data window with a
*content hash*, and the ledger records that hash on chain. Under a grant the buyer
receives, encrypted to its key (:mod:`.envelope`), a :class:`DataDelivery`: exactly the
dataset's signed readings, each with its device key, leaf and inclusion proof against
one signed tree head that a final anchor covers. The buyer checks everything offline
with :func:`verify_delivery`:

1. every reading passes the proof-bundle steps of :func:`.verify.verify_bundle`
   (device key, signature, leaf, inclusion, log key, tree head signature, domain,
   anchor, key validity; the chain step too, once, when a chain view is given);
2. the leaf indices strictly increase (no reading twice, a fixed order);
3. the content hash, ``MTH`` (RFC 9162 §2.1.1, the log's hash) over the delivered leaf
   hashes in that order, equals the delivery's and, when given, the one listed on chain.

So a delivery can hold neither more nor less than what was listed: one reading added,
dropped or swapped changes the content hash. ``docs/marketplace.md`` specifies the
format for an independent implementation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .chain_view import ChainView
from .errors import BundleVerificationError, VerificationError
from .identifiers import IdentifierStr
from .merkle import root_from_leaf_hashes
from .models import (
    AnchorRef,
    DeviceKeyInfo,
    Hex32,
    ProofBundle,
    PublicKeyInfo,
    SafeInt,
    SignedReading,
    SignedTreeHead,
    UtcTimestamp,
)
from .suites import SuiteName, hash_fn
from .verify import verify_bundle

__all__ = [
    "DELIVERY_FORMAT",
    "DeliveredReading",
    "DataDelivery",
    "DeliveryVerificationError",
    "DeliveryReport",
    "content_hash",
    "parse_delivery",
    "verify_delivery",
]

DELIVERY_FORMAT: Final = "carbon-ledger/data-delivery/v1"
MAX_DELIVERY_READINGS: Final = 200_000
"""The most readings one delivery (hence one dataset) may hold."""


class DeliveryVerificationError(VerificationError):
    """A delivery failed a check; ``reading`` names the reading when one is at fault."""

    code = "delivery_verification_failed"

    def __init__(self, message: str, *, reading: str | None = None) -> None:
        super().__init__(message if reading is None else f"reading {reading}: {message}")
        self.reading = reading


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DeliveredReading(_Wire):
    """One delivered reading with what proves it: its device key, leaf and path."""

    reading_id: IdentifierStr
    signed_reading: SignedReading
    device_key: DeviceKeyInfo
    leaf_index: SafeInt
    leaf_hash: Hex32
    inclusion_proof: list[Hex32] = Field(max_length=64)


class DataDelivery(_Wire):
    """What a buyer decrypts: the dataset's readings proven against one anchored head."""

    format: Literal["carbon-ledger/data-delivery/v1"] = DELIVERY_FORMAT
    grant: IdentifierStr
    dataset: IdentifierStr
    content_hash: Hex32
    """MTH of the readings' leaf hashes in leaf order (see :func:`content_hash`)."""
    delivered_at: UtcTimestamp
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef
    readings: list[DeliveredReading] = Field(min_length=1, max_length=MAX_DELIVERY_READINGS)


def content_hash(suite: SuiteName, leaf_hashes: list[bytes]) -> bytes:
    """A dataset's content hash: the RFC 9162 Merkle Tree Hash, with the log's hash
    function, of its readings' leaf hashes in increasing leaf index."""
    return root_from_leaf_hashes(hash_fn(suite), leaf_hashes)


def parse_delivery(data: str | bytes) -> DataDelivery:
    """Parse a delivery from JSON; :class:`DeliveryVerificationError` says what is wrong."""
    try:
        return DataDelivery.model_validate_json(data)
    except ValidationError as exc:
        raise DeliveryVerificationError(f"not a valid delivery: {exc}") from None


@dataclass
class DeliveryReport:
    """What :func:`verify_delivery` checked."""

    readings: int = 0
    content_hash: str = ""
    chain_checked: bool = False
    steps: list[str] = field(default_factory=list)


def verify_delivery(
    delivery: DataDelivery,
    *,
    expected_content_hash: str | None = None,
    chain: ChainView | None = None,
    trusted_log_keys: Collection[str] | None = None,
) -> DeliveryReport:
    """Check every reading's proofs and the content hash; raise at the first failure.

    ``expected_content_hash`` is the hash listed on chain for the dataset (hex); a
    ``chain`` view also checks the anchor on chain (once: every reading shares it).
    """
    report = DeliveryReport()
    previous = -1
    leaves: list[bytes] = []
    for n, item in enumerate(delivery.readings):
        bundle = ProofBundle(
            reading_id=item.reading_id, signed_reading=item.signed_reading,
            device_key=item.device_key, leaf_index=item.leaf_index, leaf_hash=item.leaf_hash,
            inclusion_proof=item.inclusion_proof, signed_tree_head=delivery.signed_tree_head,
            log_key=delivery.log_key, anchor=delivery.anchor)
        try:
            checked = verify_bundle(bundle, chain=chain if n == 0 else None,
                                    trusted_log_keys=trusted_log_keys)
        except BundleVerificationError as exc:
            raise DeliveryVerificationError(str(exc), reading=item.reading_id) from exc
        if n == 0:
            report.chain_checked = checked.chain_checked
            report.steps = list(checked.passed)
        if item.leaf_index <= previous:
            raise DeliveryVerificationError(
                f"leaf index {item.leaf_index} does not follow {previous}: readings must be "
                "in strictly increasing leaf order", reading=item.reading_id)
        previous = item.leaf_index
        leaves.append(bytes.fromhex(item.leaf_hash))
    computed = content_hash(delivery.signed_tree_head.tree_head.suite, leaves).hex()
    if computed != delivery.content_hash:
        raise DeliveryVerificationError(
            f"content hash of the delivered readings is {computed}, the delivery "
            f"says {delivery.content_hash}")
    if expected_content_hash is not None and computed != expected_content_hash.lower():
        raise DeliveryVerificationError(
            f"content hash of the delivered readings is {computed}, the listing "
            f"says {expected_content_hash}")
    report.readings = len(leaves)
    report.content_hash = computed
    report.steps.append("content hash")
    return report

