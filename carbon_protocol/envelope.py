"""Encrypted delivery envelopes: what a data buyer receives under a marketplace grant.

An envelope carries one plaintext (typically a JSON bundle of readings with their
inclusion proofs) encrypted to one buyer key, with a clear-text header that the
AEAD authenticates as associated data (its RFC 8785 form), so no header field can
be changed without the open failing. ``docs/envelope.md`` gives the byte layouts
for an independent decryptor.

``"sm"``
    SM4-GCM (GB/T 32907 block cipher, GCM as RFC 8998 uses it) under a fresh
    random 128-bit content key; the key is wrapped to the buyer's SM2 encryption key
    with SM2 public-key encryption (GB/T 32918.4, ``C1 || C3 || C2``).
``"intl"``
    X25519 (RFC 7748) between a fresh ephemeral key and the buyer's static key,
    HKDF-SHA256 (RFC 5869) to a 256-bit key, AES-256-GCM.

The header deliberately carries no hash of the plaintext: anyone relaying the
envelope could test guesses against it (which dataset, which month, whether two
buyers got the same data), and delivered content is often low-entropy or public
elsewhere even when each reading is salted. What gets logged instead is
:func:`envelope_digest`, the hash of the whole envelope: it names exactly what was
delivered, and because the content key follows deterministically from the
envelope and the buyer's key, it also fixes the plaintext the buyer can read.

An envelope is not signed: anyone can encrypt to a public key. Origin comes from
the ledger logging the envelope digest under the grant, and from the content
itself (signed readings with inclusion proofs), which the buyer verifies after
opening.
"""

from __future__ import annotations

import binascii
import os
import re
from typing import Annotated, Final, Literal, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from .canonical import canonical_json
from .errors import DecryptionError, EnvelopeError, KeyFormatError
from .identifiers import IdentifierStr
from .models import Hex16, SuiteField, UtcTimestamp
from .sm2_encrypt import (
    SM2_CIPHERTEXT_OVERHEAD,
    sm2_decrypt,
    sm2_encrypt,
    sm2_generate_scalar,
    sm2_public_key,
)
from .suites import PublicKey, SuiteName, digest, parse_suite

__all__ = [
    "ENVELOPE_CONTEXT",
    "RecipientPublicKey",
    "RecipientPrivateKey",
    "EnvelopeHeader",
    "Envelope",
    "header_bytes",
    "seal",
    "open_",
    "parse_envelope",
    "envelope_digest",
]

ENVELOPE_CONTEXT: Final = "carbon-ledger/envelope/v1"
"""Names the format in the intl key derivation, so keys never serve another protocol."""

_SM4_KEY_BYTES: Final = 16
_AES_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_KEY_WRAP_BYTES: Final = {"sm": SM2_CIPHERTEXT_OVERHEAD + _SM4_KEY_BYTES, "intl": 32}
"""sm: SM2 ciphertext of the 16-byte content key; intl: the ephemeral X25519 key."""

_X25519_P: Final = 2**255 - 19
_X25519_PROBE: Final = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


# --- recipient keys -------------------------------------------------------------


def _key_id(suite: SuiteName, raw: bytes) -> str:
    # The same rule as signing keys (suites.PublicKey.key_id), so tools show one id form.
    return digest(suite, raw)[:16].hex()


def _check_x25519_public(raw: bytes) -> None:
    if len(raw) != 32:
        raise KeyFormatError(f"X25519 public key must be 32 bytes, got {len(raw)}")
    if int.from_bytes(raw, "little") >= _X25519_P:
        # RFC 7748 decoders mask bit 255 and reduce mod p; refusing those forms gives
        # each key one encoding, hence one key id.
        raise KeyFormatError("X25519 public key is not canonically encoded")
    try:
        _X25519_PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        # The all-zero shared secret appears exactly for the points of small order:
        # a sender could not hide anything from an observer with such a key.
        raise KeyFormatError("X25519 public key is a point of small order") from None


class RecipientPublicKey:
    """A buyer's encryption public key: SM2 ``04 || X || Y`` (sm) or X25519 (intl).

    Separate from signing keys on purpose. Ed25519 keys only sign; an SM2 key
    may by the standard both sign and decrypt, but a separate encryption key lets
    a buyer rotate or escrow it without touching their signing identity.
    """

    __slots__ = ("_suite", "_raw", "_key_id")

    _suite: SuiteName
    _raw: bytes
    _key_id: str

    def __init__(self, suite: SuiteName, raw: bytes) -> None:
        """Validate ``raw`` for ``suite``; prefer :meth:`from_raw` / :meth:`from_hex`."""
        suite = parse_suite(suite)
        raw = bytes(raw)
        if suite == "sm":
            PublicKey("sm", raw)  # one SM2 point check for signing and encryption keys
        else:
            _check_x25519_public(raw)
        object.__setattr__(self, "_suite", suite)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_key_id", _key_id(suite, raw))

    @classmethod
    def from_raw(cls, suite: SuiteName, raw: bytes) -> RecipientPublicKey:
        """Parse the raw encoding; raises :class:`KeyFormatError` if it is not a key."""
        return cls(suite, raw)

    @classmethod
    def from_hex(cls, suite: SuiteName, hex_str: str) -> RecipientPublicKey:
        """Parse lowercase hex, the protocol's text form for keys."""
        if not isinstance(hex_str, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", hex_str):
            raise KeyFormatError(f"{suite} encryption key is not lowercase hex of whole bytes")
        return cls(suite, bytes.fromhex(hex_str))

    @property
    def suite(self) -> SuiteName:
        """The suite whose envelopes this key receives."""
        return self._suite

    @property
    def raw(self) -> bytes:
        """SM2: 65 bytes ``04 || X || Y``; X25519: the 32-byte u-coordinate (RFC 7748)."""
        return self._raw

    def hex(self) -> str:
        """The raw encoding as lowercase hex."""
        return self._raw.hex()

    @property
    def key_id(self) -> str:
        """First 16 bytes of the suite hash of :attr:`raw`, lowercase hex."""
        return self._key_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecipientPublicKey):
            return NotImplemented
        return self._suite == other._suite and self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self._suite, self._raw))

    def __repr__(self) -> str:
        return f"RecipientPublicKey(suite={self._suite!r}, key_id={self._key_id!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RecipientPublicKey is immutable; cannot set {name!r}")


class RecipientPrivateKey:
    """A buyer's decryption key. Its ``repr`` shows only suite and key id.

    The raw form is 32 bytes in both suites: the SM2 scalar big-endian, or the
    X25519 private key as RFC 7748 defines it.
    """

    __slots__ = ("_suite", "_sm2_scalar", "_x25519", "_public")

    _suite: SuiteName
    _sm2_scalar: int
    _x25519: X25519PrivateKey | None
    _public: RecipientPublicKey

    def __init__(self, suite: SuiteName, raw: bytes) -> None:
        """Wrap 32 raw private-key bytes; prefer :meth:`generate` / :meth:`from_private_bytes`."""
        suite = parse_suite(suite)
        raw = bytes(raw)
        if len(raw) != 32:
            raise KeyFormatError(f"{suite} private encryption key must be 32 bytes, got {len(raw)}")
        scalar, x25519 = 0, None
        if suite == "sm":
            scalar = int.from_bytes(raw, "big")
            public_raw = sm2_public_key(scalar)  # checks 1 <= d <= n-2
        else:
            x25519 = X25519PrivateKey.from_private_bytes(raw)
            public_raw = x25519.public_key().public_bytes_raw()
        object.__setattr__(self, "_suite", suite)
        object.__setattr__(self, "_sm2_scalar", scalar)
        object.__setattr__(self, "_x25519", x25519)
        object.__setattr__(self, "_public", RecipientPublicKey(suite, public_raw))

    @classmethod
    def generate(cls, suite: SuiteName) -> RecipientPrivateKey:
        """A fresh key from the operating system's CSPRNG."""
        if parse_suite(suite) == "sm":
            return cls("sm", sm2_generate_scalar().to_bytes(32, "big"))
        return cls("intl", X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_private_bytes(cls, suite: SuiteName, raw: bytes) -> RecipientPrivateKey:
        """Load the 32-byte raw private key; raises :class:`KeyFormatError`."""
        return cls(suite, raw)

    def private_bytes(self) -> bytes:
        """The 32 raw secret bytes; the caller is responsible for protecting them."""
        if self._x25519 is not None:
            return self._x25519.private_bytes_raw()
        return self._sm2_scalar.to_bytes(32, "big")

    @property
    def suite(self) -> SuiteName:
        """The suite whose envelopes this key opens."""
        return self._suite

    def public_key(self) -> RecipientPublicKey:
        """The matching public key, to hand to the data owner."""
        return self._public

    def __repr__(self) -> str:
        return f"RecipientPrivateKey(suite={self._suite!r}, key_id={self._public.key_id!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RecipientPrivateKey is immutable; cannot set {name!r}")

    def __reduce__(self) -> NoReturn:
        raise TypeError("RecipientPrivateKey cannot be pickled; use private_bytes() deliberately")


# --- wire model -------------------------------------------------------------------

ContentType = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$"
    ),
]
"""A lowercase media type without parameters (RFC 6838 §4.2 names), e.g. ``application/json``."""

NonceHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]
KeyWrapHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2}){32,113}$")]
Base64Url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,}$")]
"""RFC 4648 §5 base64url without padding; at least the 16-byte GCM tag."""


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class EnvelopeHeader(_Wire):
    """The clear-text part of an envelope, authenticated as the AEAD's associated data."""

    v: Literal[1] = 1
    suite: SuiteField
    grant: IdentifierStr
    """The marketplace grant this delivery is made under."""
    recipient_key_id: Hex16
    content_type: ContentType
    created_at: UtcTimestamp


class Envelope(_Wire):
    """A sealed delivery: header, wrapped key, nonce and ``ciphertext || tag``."""

    header: EnvelopeHeader
    key_wrap: KeyWrapHex
    """sm: SM2 ``C1 || C3 || C2`` of the content key (113 bytes); intl: ephemeral X25519 key."""
    nonce: NonceHex
    ciphertext: Base64Url
    """The AEAD output ``C || T`` (16-byte tag last), base64url without padding."""

    @model_validator(mode="after")
    def _fits_suite(self) -> Envelope:
        expected = _KEY_WRAP_BYTES[self.header.suite]
        if len(self.key_wrap) != 2 * expected:
            raise ValueError(
                f"key_wrap for suite {self.header.suite!r} must be {expected} bytes, "
                f"got {len(self.key_wrap) // 2}"
            )
        _check_canonical_base64url(self.ciphertext)
        return self


_LAST_CHAR_OF: Final = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
"""Base64url digits allowed last when a text of length 4k+2 / 4k+3 ends: unused bits zero."""


def _check_canonical_base64url(text: str) -> None:
    # The field pattern already fixed the alphabet; this makes the decoding one-to-one,
    # in O(1) rather than by re-encoding a ciphertext that may be hundreds of megabytes.
    rest = len(text) % 4
    if rest == 1:
        raise ValueError("ciphertext is not base64url: its length is 1 mod 4")
    if rest and text[-1] not in _LAST_CHAR_OF[rest]:
        raise ValueError("ciphertext is not canonical base64url: unused low bits are set")


def _b64encode(data: bytes) -> str:
    text = binascii.b2a_base64(data, newline=False).decode("ascii")
    return text.rstrip("=").replace("+", "-").replace("/", "_")


def _b64decode(text: str) -> bytes:
    """Decode a base64url text the model already checked (alphabet, length, last digit)."""
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


def header_bytes(header: EnvelopeHeader) -> bytes:
    """The associated data: RFC 8785 canonical JSON of the header."""
    return canonical_json(header.model_dump(mode="json"))


def parse_envelope(data: str | bytes) -> Envelope:
    """Parse an envelope from JSON text; raises :class:`EnvelopeError` saying what is wrong."""
    try:
        return Envelope.model_validate_json(data)
    except ValidationError as exc:
        raise EnvelopeError(f"not a valid envelope: {exc}") from None


def envelope_digest(envelope: Envelope) -> str:
    """Suite hash of the envelope's RFC 8785 form, hex: the value a delivery log records."""
    return digest(envelope.header.suite, canonical_json(envelope.model_dump(mode="json"))).hex()


# --- seal and open -------------------------------------------------------------------


def _intl_key(shared: bytes, ephemeral: bytes, recipient: bytes, header: EnvelopeHeader) -> bytes:
    info = canonical_json(
        {
            "context": ENVELOPE_CONTEXT,
            "grant": header.grant,
            "recipient_key_id": header.recipient_key_id,
            "suite": "intl",
        }
    )
    # The salt binds both public keys, so the key belongs to this exchange alone
    # (as HPKE's KEM context does).
    hkdf = HKDF(hashes.SHA256(), length=_AES_KEY_BYTES, salt=ephemeral + recipient, info=info)
    return hkdf.derive(shared)


def _sm4_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return body + encryptor.tag


def _sm4_gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    body, tag = sealed[:-_TAG_BYTES], sealed[-_TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    plaintext = decryptor.update(body)
    decryptor.finalize()  # raises InvalidTag before anything is returned
    return plaintext


def _check_recipient(header: EnvelopeHeader, suite: SuiteName, key_id: str) -> None:
    if header.suite != suite:
        raise EnvelopeError(f"envelope is for suite {header.suite!r} but the key is {suite!r}")
    if header.recipient_key_id != key_id:
        raise EnvelopeError(
            f"envelope is for recipient key {header.recipient_key_id} but the key is {key_id}"
        )


def seal(plaintext: bytes, recipient: RecipientPublicKey, header: EnvelopeHeader) -> Envelope:
    """Encrypt ``plaintext`` to ``recipient`` under ``header``.

    The header must name the recipient's suite and key id (else
    :class:`EnvelopeError`): a mislabelled envelope would be undeliverable.
    """
    _check_recipient(header, recipient.suite, recipient.key_id)
    aad = header_bytes(header)
    nonce = os.urandom(_NONCE_BYTES)
    if recipient.suite == "sm":
        content_key = os.urandom(_SM4_KEY_BYTES)
        key_wrap = sm2_encrypt(recipient.raw, content_key)
        sealed = _sm4_gcm_seal(content_key, nonce, bytes(plaintext), aad)
    else:
        ephemeral = X25519PrivateKey.generate()
        key_wrap = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.raw))
        content_key = _intl_key(shared, key_wrap, recipient.raw, header)
        sealed = AESGCM(content_key).encrypt(nonce, bytes(plaintext), aad)
    return Envelope(
        header=header, key_wrap=key_wrap.hex(), nonce=nonce.hex(), ciphertext=_b64encode(sealed)
    )


def open_(envelope: Envelope, recipient_key: RecipientPrivateKey) -> bytes:
    """Decrypt ``envelope`` with the buyer's key and return the plaintext.

    Raises :class:`EnvelopeError` if the envelope names another suite or key, and
    :class:`DecryptionError` (a subclass) if any header field, key-wrap, nonce or
    ciphertext byte was changed. No plaintext is returned before authentication.
    """
    header = envelope.header
    public = recipient_key.public_key()
    _check_recipient(header, public.suite, public.key_id)
    aad = header_bytes(header)
    key_wrap = bytes.fromhex(envelope.key_wrap)
    nonce = bytes.fromhex(envelope.nonce)
    sealed = _b64decode(envelope.ciphertext)
    try:
        if header.suite == "sm":
            content_key = sm2_decrypt(recipient_key._sm2_scalar, key_wrap)
            return _sm4_gcm_open(content_key, nonce, sealed, aad)
        assert recipient_key._x25519 is not None
        shared = recipient_key._x25519.exchange(X25519PublicKey.from_public_bytes(key_wrap))
        content_key = _intl_key(shared, key_wrap, public.raw, header)
        return AESGCM(content_key).decrypt(nonce, sealed, aad)
    except (InvalidTag, ValueError):
        # ValueError: an ephemeral key of small order (all-zero shared secret).
        raise DecryptionError(
            f"envelope for grant {header.grant} does not decrypt under key {public.key_id}"
        ) from None
