"""Wire models: the objects gateways sign, the ledger stores and verifiers check.

Parse, don't validate: every model is frozen, forbids unknown fields and is strict,
so an object that exists is well-formed (a ``SignedReading`` always has a 64-byte
hex signature and a positive sequence number). Field formats are enforced with
patterns evaluated in pydantic's Rust core, which keeps batch parsing cheap.

Binary values travel as lowercase hex without ``0x`` (hashes, keys, signatures,
salts); EVM values (addresses, transaction and block hashes) keep the ``0x`` form
EVM tooling prints. Times are RFC 3339 UTC with a ``Z`` and whole seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from .canonical import MAX_SAFE_INTEGER
from .identifiers import IdentifierStr

__all__ = [
    "QUANTITY_UNITS",
    "Quantity",
    "Quality",
    "SuiteField",
    "Domain",
    "Reading",
    "SignedReading",
    "TreeHead",
    "SignedTreeHead",
    "PublicKeyInfo",
    "DeviceKeyInfo",
    "AnchorRef",
    "ProofBundle",
    "BUNDLE_FORMAT",
    "format_utc",
    "parse_utc",
]

BUNDLE_FORMAT: Literal["carbon-ledger/proof-bundle/v1"] = "carbon-ledger/proof-bundle/v1"

Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""32 bytes as lowercase hex (hash, Merkle node, root)."""
Hex16 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""16 bytes as lowercase hex (salt, key id)."""
SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
"""A 64-byte signature: Ed25519 ``R||S`` or SM2 ``r||s`` (GB/T 32918), lowercase hex."""
PublicKeyHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{64}|04[0-9a-f]{128})$")]
"""Ed25519 raw key (32 bytes) or SM2 uncompressed point ``04||X||Y`` (65 bytes)."""
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{40}$")]
"""An EVM address, lowercase (no EIP-55 mixed case, so it compares as text)."""
TxHash = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
DecimalStr = Annotated[
    str, StringConstraints(pattern=r"^-?(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,12})?$")
]
"""A decimal number as text: never a float, so no value is rounded on the wire."""
SafeInt = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]


_UTC_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def parse_utc(text: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` into an aware UTC datetime.

    By position rather than with ``strptime``, which costs ten times as much (this runs
    for every reading parsed) and accepts one-digit fields that RFC 3339 does not.
    Raises ``ValueError`` for any other form and for impossible dates (2026-02-30)."""
    match = _UTC_TEXT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a UTC time of the form YYYY-MM-DDTHH:MM:SSZ")
    year, month, day, hour, minute, second = map(int, match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def format_utc(moment: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: protocol times must be timezone-aware")
    m = moment.astimezone(UTC)  # not strftime: glibc writes the year 999 as "999"
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def _check_utc(text: str) -> str:
    parse_utc(text)  # rejects impossible dates such as 2026-02-30
    return text


UtcTimestamp = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z$"),
    AfterValidator(_check_utc),
]

SuiteField = Literal["sm", "intl"]
Quantity = Literal[
    "active_energy", "reactive_energy", "gas_volume", "heat", "steam_mass",
    "water_volume", "fuel_mass", "fuel_volume",
]
Quality = Literal["measured", "estimated", "manual", "substituted"]

QUANTITY_UNITS: dict[str, frozenset[str]] = {
    "active_energy": frozenset({"kWh", "MWh"}),
    "reactive_energy": frozenset({"kvarh", "Mvarh"}),
    "gas_volume": frozenset({"m3", "Nm3"}),
    "heat": frozenset({"GJ", "MJ", "kWh"}),
    "steam_mass": frozenset({"t", "kg"}),
    "water_volume": frozenset({"m3", "t"}),
    "fuel_mass": frozenset({"t", "kg"}),
    "fuel_volume": frozenset({"L", "m3"}),
}
"""The units each quantity may be reported in; anything else is refused at parse time."""


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Domain(_Wire):
    """Where a signature is valid: one chain, one anchor contract, one log.

    Signing the domain prevents replaying a reading into another deployment (the
    cross-chain replay class of bugs, cf. ETHW/Omni 2022).
    """

    chain_id: PositiveInt
    contract: Address
    log_id: IdentifierStr


class Reading(_Wire):
    """One meter reading as the gateway signs it (the signed bytes are its RFC 8785 form)."""

    v: Literal[1] = 1
    suite: SuiteField
    key_id: Hex16
    device: IdentifierStr
    seq: PositiveInt
    measured_at: UtcTimestamp
    quantity: Quantity
    unit: str = Field(max_length=8)
    value: DecimalStr
    cumulative: DecimalStr | None = None
    """The meter's cumulative register, where it has one (lets a verifier check deltas)."""
    quality: Quality
    salt: Hex16
    domain: Domain

    @model_validator(mode="after")
    def _unit_fits_quantity(self) -> Reading:
        if self.unit not in QUANTITY_UNITS[self.quantity]:
            allowed = ", ".join(sorted(QUANTITY_UNITS[self.quantity]))
            raise ValueError(f"unit {self.unit!r} is not valid for {self.quantity} (use {allowed})")
        return self


class SignedReading(_Wire):
    """A reading with its device signature; the Merkle leaf is its canonical form."""

    reading: Reading
    signature: SignatureHex


class TreeHead(_Wire):
    """A Merkle tree head (RFC 9162 §4.10 in spirit, JSON instead of TLS encoding)."""

    v: Literal[1] = 1
    log_id: IdentifierStr
    suite: SuiteField
    key_id: Hex16
    tree_size: SafeInt
    root_hash: Hex32
    timestamp: UtcTimestamp


class SignedTreeHead(_Wire):
    """A tree head signed by the log's key."""

    tree_head: TreeHead
    signature: SignatureHex


class PublicKeyInfo(_Wire):
    """A public key with its suite; ``key_id`` is the first 16 bytes of H(raw key)."""

    suite: SuiteField
    public_key: PublicKeyHex
    key_id: Hex16


class DeviceKeyInfo(PublicKeyInfo):
    """A device key and the period it may sign in (time-aware revocation)."""

    device: IdentifierStr
    valid_from: UtcTimestamp
    revoked_at: UtcTimestamp | None = None

    def valid_at(self, block_time: int) -> bool:
        """Whether the key may sign at ``block_time`` (Unix seconds: verifiers pass the
        time of the block that anchored the leaf): from ``valid_from`` up to, not
        including, ``revoked_at``."""
        return parse_utc(self.valid_from).timestamp() <= block_time and (
            self.revoked_at is None or block_time < parse_utc(self.revoked_at).timestamp())


class AnchorRef(_Wire):
    """Where and when a tree head was anchored on chain."""

    chain_id: PositiveInt
    contract: Address
    log_key: Hex32
    tree_size: PositiveInt
    root_hash: Hex32
    tx_hash: TxHash
    block_number: SafeInt
    block_hash: TxHash
    block_timestamp: SafeInt
    submitter: Address


class ProofBundle(_Wire):
    """Everything needed to check one reading offline, from signature to anchor."""

    format: Literal["carbon-ledger/proof-bundle/v1"] = BUNDLE_FORMAT
    reading_id: IdentifierStr
    signed_reading: SignedReading
    device_key: DeviceKeyInfo
    leaf_index: SafeInt
    leaf_hash: Hex32
    inclusion_proof: list[Hex32] = Field(max_length=64)
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef
