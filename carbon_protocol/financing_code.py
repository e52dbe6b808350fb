"""The signed financing code a bank scans: wire format and offline verifier.

A financing code states, for one enterprise and period, its green grade (carbon
intensity against an industry benchmark) and its red/yellow/green data-integrity code
with the rules that fired, the hash of the rule configuration that produced them, and
a validity window. The ledger signs the RFC 8785 JSON of :class:`FinancingCode` with
its log key (suite and key id inside the signed object, as for tree heads), so a bank
holding the ledger's public key verifies it with no network at all.

QR payload (what the image carries), ASCII only::

    CLFC1.<base64url(canonical_json(code))>.<base64url(signature)>

base64url without padding (RFC 4648 §5). The verifier re-canonicalises the decoded
object and refuses any payload whose JSON is not byte-identical to its RFC 8785 form,
so one code has exactly one payload.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from .canonical import canonical_json
from .errors import ExpiredFinancingCodeError, FinancingCodeError, SignatureError
from .identifiers import IdentifierStr
from .inventory import Period
from .models import DecimalStr, Hex16, Hex32, SignatureHex, SuiteField, UtcTimestamp, parse_utc
from .suites import PrivateKey, PublicKey

__all__ = [
    "FINANCING_CODE_FORMAT",
    "QR_PREFIX",
    "GREEN_GRADE_LABELS",
    "GreenGrade",
    "IntegrityCode",
    "RuleFinding",
    "FinancingCode",
    "SignedFinancingCode",
    "financing_code_bytes",
    "sign_financing_code",
    "encode_qr_payload",
    "decode_qr_payload",
    "verify_financing_code",
]

FINANCING_CODE_FORMAT: Literal["carbon-ledger/financing-code/v1"] = (
    "carbon-ledger/financing-code/v1")
QR_PREFIX: Final = "CLFC1"
_MAX_PAYLOAD: Final = 2900
"""Below the 2953 bytes a version-40 QR code holds in byte mode at error correction L."""

GreenGrade = Literal["dark_green", "medium_green", "light_green", "not_green"]
GREEN_GRADE_LABELS: Final[dict[str, str]] = {
    "dark_green": "深绿", "medium_green": "中绿", "light_green": "浅绿", "not_green": "非绿",
}
"""The grade names banks use (PBoC green-loan labelling); the wire carries ASCII names."""

IntegrityCode = Literal["green", "yellow", "red"]
"""``green``: no integrity rule fired. ``yellow``: a rule passed its warning threshold;
rely on the data after looking at the findings. ``red``: a rule passed its red
threshold; do not rely on the data until an inspection clears it."""

RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class RuleFinding(_Wire):
    """One integrity rule that fired: what was measured and the threshold it passed."""

    rule: RuleName
    level: Literal["yellow", "red"]
    measured: DecimalStr
    threshold: DecimalStr
    """The rule fires when ``measured`` is strictly greater than ``threshold``."""


class FinancingCode(_Wire):
    """A green grade and integrity code for one enterprise and period, as the ledger signs it."""

    format: Literal["carbon-ledger/financing-code/v1"] = FINANCING_CODE_FORMAT
    suite: SuiteField
    key_id: Hex16
    """The issuer's (the ledger's log) key."""
    issuer: IdentifierStr
    """The log id of the issuing ledger."""
    enterprise: IdentifierStr
    period: Period
    grade: GreenGrade
    intensity: DecimalStr
    benchmark: DecimalStr
    intensity_unit: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,32}$")]
    """E.g. ``tCO2e/t`` (per tonne of product) or ``tCO2e/10^4CNY`` (per 10k CNY revenue)."""
    code: IntegrityCode
    rules_fired: list[RuleFinding] = Field(max_length=16)
    rule_config_hash: Hex32
    """Hash (the suite's) of the RFC 8785 JSON of the grading and integrity configuration."""
    issued_at: UtcTimestamp
    expires_at: UtcTimestamp

    @model_validator(mode="after")
    def _consistent(self) -> FinancingCode:
        if parse_utc(self.expires_at) <= parse_utc(self.issued_at):
            raise ValueError(
                f"expires_at {self.expires_at} is not after issued_at {self.issued_at}")
        levels = {f.level for f in self.rules_fired}
        expected = "red" if "red" in levels else "yellow" if levels else "green"
        if self.code != expected:
            raise ValueError(
                f"code {self.code!r} contradicts the rules fired: expected {expected!r}")
        return self


class SignedFinancingCode(_Wire):
    """A financing code with the issuer's signature over its RFC 8785 JSON."""

    financing_code: FinancingCode
    signature: SignatureHex


def financing_code_bytes(code: FinancingCode) -> bytes:
    """The exact bytes the issuer signs: RFC 8785 JSON of the code."""
    return canonical_json(code.model_dump(mode="json"))


def sign_financing_code(code: FinancingCode, key: PrivateKey) -> SignedFinancingCode:
    """Sign ``code`` with the issuer key whose suite and id it names."""
    pub = key.public_key()
    if (code.suite, code.key_id) != (pub.suite, pub.key_id):
        raise SignatureError(
            f"financing code names {code.suite} key {code.key_id}, the signing key is "
            f"{pub.suite} key {pub.key_id}")
    return SignedFinancingCode(
        financing_code=code, signature=key.sign(financing_code_bytes(code)).hex())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    if not text or any(c not in _B64_ALPHABET for c in text) or len(text) % 4 == 1:
        raise FinancingCodeError(f"QR payload {what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise FinancingCodeError(f"QR payload {what} is not unpadded base64url") from None
    if _b64(raw) != text:  # non-zero trailing bits: a second spelling of the same bytes
        raise FinancingCodeError(f"QR payload {what} is not canonical base64url")
    return raw


_B64_ALPHABET: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def encode_qr_payload(signed: SignedFinancingCode) -> str:
    """The compact text a QR code carries (format in the module docstring)."""
    return ".".join((QR_PREFIX, _b64(financing_code_bytes(signed.financing_code)),
                     _b64(bytes.fromhex(signed.signature))))


def decode_qr_payload(payload: str) -> SignedFinancingCode:
    """Parse a QR payload into a signed code, without checking the signature.

    Raises :class:`FinancingCodeError` for anything that is not exactly one canonical
    encoding of a well-formed code.
    """
    if not isinstance(payload, str) or len(payload) > _MAX_PAYLOAD or not payload.isascii():
        raise FinancingCodeError("QR payload must be ASCII text of at most "
                                 f"{_MAX_PAYLOAD} characters")
    parts = payload.split(".")
    if len(parts) != 3 or parts[0] != QR_PREFIX:
        raise FinancingCodeError(
            f"QR payload is not a financing code: expected '{QR_PREFIX}.<code>.<signature>'")
    body = _unb64(parts[1], "code")
    signature = _unb64(parts[2], "signature")
    try:
        value = json.loads(body.decode("utf-8"))
        code = FinancingCode.model_validate(value)
    except (UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise FinancingCodeError(f"QR payload code is not a valid financing code: {exc}") from None
    if financing_code_bytes(code) != body:
        raise FinancingCodeError("QR payload code is not RFC 8785 canonical JSON")
    if len(signature) != 64:
        raise FinancingCodeError(f"QR payload signature has {len(signature)} bytes, expected 64")
    return SignedFinancingCode(financing_code=code, signature=signature.hex())


def verify_financing_code(
    qr_payload: str, issuer_public_key: PublicKey, *, now: datetime | None = None
) -> FinancingCode:
    """Check a scanned code offline and return it; raise if it must not be relied on.

    Steps: decode (:class:`FinancingCodeError`), the code names the key given
    (:class:`FinancingCodeError`), the signature verifies (:class:`SignatureError`),
    ``issued_at <= now < expires_at`` (:class:`ExpiredFinancingCodeError`). ``now``
    defaults to the current UTC time.
    """
    signed = decode_qr_payload(qr_payload)
    code = signed.financing_code
    if (code.suite, code.key_id) != (issuer_public_key.suite, issuer_public_key.key_id):
        raise FinancingCodeError(
            f"financing code is signed by {code.suite} key {code.key_id}, expected the "
            f"issuer's {issuer_public_key.suite} key {issuer_public_key.key_id}")
    issuer_public_key.verify(bytes.fromhex(signed.signature), financing_code_bytes(code))
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time")
    if not parse_utc(code.issued_at) <= moment < parse_utc(code.expires_at):
        raise ExpiredFinancingCodeError(
            f"financing code for {code.enterprise} is valid from {code.issued_at} to "
            f"{code.expires_at}, not at {moment.astimezone(UTC).isoformat()}")
    return code
