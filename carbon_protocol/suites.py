"""The two crypto suites every signed object names, behind one small interface.

``"sm"``
    Signatures: SM2 per GB/T 32918.2-2016 §6-§7 on the recommended curve
    sm2p256v1 (GB/T 32918.5), with the user-identity digest Z computed from the
    default ID ``1234567812345678`` and message digest SM3 (GB/T 32905-2016).
    Hashing: SM3.
``"intl"``
    Signatures: pure Ed25519 (RFC 8032 §5.1). Hashing: SHA-256 (FIPS 180-4).

Wire formats are fixed here so every component agrees on them:

* public keys: Ed25519 is the 32-byte RFC 8032 encoding; SM2 is the 65-byte
  uncompressed point ``04 || X || Y``;
* signatures: 64 bytes in both suites. SM2 signatures travel as ``r || s``, two
  32-byte big-endian integers, the form GB/T 32918.2 and gmssl use; the DER
  ``SEQUENCE { r, s }`` that OpenSSL-style APIs want is an internal detail;
* key ids: the first 16 bytes of the suite's hash of the raw public key, in
  lowercase hex.

SM2 runs on tongsuopy (Tongsuo, an OpenSSL fork with SM2 signatures; pyca
``cryptography`` refuses the curve). Ed25519, SHA-256 and the SM3 fallback run on
``cryptography`` / ``hashlib``. Each public key is parsed once into a backend key
object and kept, because the ledger verifies thousands of signatures per second.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, Literal, NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes as _c_hashes
from cryptography.hazmat.primitives import serialization as _c_ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from tongsuopy.crypto import exceptions as _t_exc  # type: ignore[import-untyped]
from tongsuopy.crypto import hashes as _t_hashes
from tongsuopy.crypto import serialization as _t_ser
from tongsuopy.crypto.asymciphers import ec as _t_ec  # type: ignore[import-untyped]

from .errors import KeyFormatError, SignatureError, UnsupportedSuiteError

__all__ = [
    "SuiteName",
    "SUITES",
    "parse_suite",
    "hash_fn",
    "digest",
    "PublicKey",
    "PrivateKey",
]

SuiteName = Literal["sm", "intl"]
"""The name of a crypto suite as it appears in every signed object."""

SUITES: tuple[SuiteName, ...] = ("sm", "intl")
"""Every suite this implementation knows, in a stable order."""


def parse_suite(name: str) -> SuiteName:
    """Turn an untrusted suite name into a :data:`SuiteName`.

    Wire data and database rows carry plain strings; narrowing them here once
    lets the rest of the code rely on the type instead of re-checking it.
    Raises :class:`UnsupportedSuiteError` for any other name.
    """
    if name == "sm":
        return "sm"
    if name == "intl":
        return "intl"
    raise _unsupported(name)


def _unsupported(name: object) -> UnsupportedSuiteError:
    expected = ", ".join(map(repr, SUITES))
    return UnsupportedSuiteError(f"unsupported crypto suite {name!r}: expected one of {expected}")


# --- hashing -----------------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sm3_cryptography(data: bytes) -> bytes:
    h = _c_hashes.Hash(_c_hashes.SM3())
    h.update(data)
    return h.finalize()


def _pick_sm3() -> Callable[[bytes], bytes]:
    # hashlib's SM3 comes from the OpenSSL Python links against, which may be built
    # without it (FIPS builds, some distros). Copying a prepared object is ~35 %
    # faster than hashlib.new("sm3", data) and ~60 % faster than cryptography's
    # hashes.Hash, which stays as the fallback because it always ships SM3.
    try:
        proto = hashlib.new("sm3")
    except ValueError:
        return _sm3_cryptography

    def _sm3_hashlib(data: bytes) -> bytes:
        h = proto.copy()
        h.update(data)
        return h.digest()

    return _sm3_hashlib


_sm3: Final[Callable[[bytes], bytes]] = _pick_sm3()

_HASHES: Final[dict[str, Callable[[bytes], bytes]]] = {"sm": _sm3, "intl": _sha256}


def hash_fn(suite: SuiteName) -> Callable[[bytes], bytes]:
    """The suite's hash as a plain function ``bytes -> 32 bytes``.

    Returned as a function (not a name) so hot loops such as Merkle tree building
    look the suite up once and then call straight into hashlib.
    Raises :class:`UnsupportedSuiteError` for an unknown suite.
    """
    try:
        return _HASHES[suite]
    except KeyError:
        raise _unsupported(suite) from None


def digest(suite: SuiteName, data: bytes) -> bytes:
    """Hash ``data`` with the suite's hash function (SM3 or SHA-256)."""
    return hash_fn(suite)(data)


# --- curve facts ----------------------------------------------------------------

_SM2_N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
"""Order n of the sm2p256v1 base point (GB/T 32918.5-2017)."""

_SM2_WITH_SM3: Final[Any] = _t_ec.ECDSA(_t_hashes.SM3())
"""tongsuopy's name for "SM2 signature with SM3": for an SM2 key it prepends Z."""

_TONGSUO_ERRORS: Final = (
    ValueError,
    TypeError,
    _t_exc.UnsupportedAlgorithm,
    _t_exc.InternalError,
)

_ED_P: Final = 2**255 - 19
_ED_D: Final = -121665 * pow(121666, -1, _ED_P) % _ED_P
"""Edwards curve constant d = -121665/121666 mod p (RFC 8032 §5.1)."""

_X25519_PROBE: Final = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
"""Any fixed scalar: X25519 clamps it to a multiple of 8, which kills small-order points."""


@lru_cache(maxsize=4096)
def _check_ed25519_point(raw: bytes) -> None:
    """Reject Ed25519 public keys that are non-canonical, off the curve or of small order.

    ``cryptography`` loads any 32 bytes as an Ed25519 public key. A small-order
    key (the identity, for instance) verifies a signature ``(R=[S]B, S)`` on
    *every* message under cofactorless verification, so anybody could sign as
    that device; refuse such keys at registration rather than trust them.
    The check costs ~0.1 ms of Python big-int arithmetic, so results for keys
    seen recently are cached (the same device and log keys recur in every bundle).
    """
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)  # bit 255 is the sign of x
    if y >= _ED_P:
        raise KeyFormatError("Ed25519 public key is not canonical: y >= p")
    # RFC 8032 §5.1.3: x^2 = u / v with u = y^2 - 1, v = d y^2 + 1 (v is never 0).
    yy = y * y % _ED_P
    u = (yy - 1) % _ED_P
    if u == 0:
        # x = 0: the identity (y = 1) or the point of order 2 (y = -1); both small order.
        raise KeyFormatError("Ed25519 public key is a point of small order")
    # u / v is a square iff u * v is (Euler's criterion), which saves an inversion.
    if pow(u * (_ED_D * yy + 1) % _ED_P, (_ED_P - 1) // 2, _ED_P) != 1:
        raise KeyFormatError("Ed25519 public key is not a point on the curve")
    # Map to the Montgomery u-coordinate (1 + y) / (1 - y). X25519 clamps its scalar
    # to a multiple of 8 and refuses its all-zero output, which on the curve it
    # produces exactly for the points of small order.
    mont_u = (1 + y) * pow(1 - y, -1, _ED_P) % _ED_P
    try:
        _X25519_PROBE.exchange(X25519PublicKey.from_public_bytes(mont_u.to_bytes(32, "little")))
    except ValueError:
        raise KeyFormatError("Ed25519 public key is a point of small order") from None


def _sm2_point(key: Any) -> bytes:
    return bytes(key.public_bytes(_t_ser.Encoding.X962, _t_ser.PublicFormat.UncompressedPoint))


# --- public keys ----------------------------------------------------------------

_LOWER_HEX: Final = re.compile(r"(?:[0-9a-f]{2})*")


class PublicKey:
    """A parsed, valid public key of one suite; verifies signatures.

    Immutable and hashable, equal when suite and raw encoding are equal (the raw
    encoding is checked to be canonical, so equal keys have equal bytes). The
    backend key object is built once here, so :meth:`verify` does no parsing.
    """

    __slots__ = ("_suite", "_raw", "_key_id", "_backend")

    _suite: SuiteName
    _raw: bytes
    _key_id: str
    _backend: Any

    def __init__(self, suite: SuiteName, raw: bytes) -> None:
        """Validate ``raw`` for ``suite``; prefer :meth:`from_raw` / :meth:`from_hex`."""
        suite = parse_suite(suite)
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise TypeError(f"raw public key must be bytes, not {type(raw).__name__}")
        raw = bytes(raw)
        backend: Any
        if suite == "intl":
            if len(raw) != 32:
                raise KeyFormatError(f"Ed25519 public key must be 32 bytes, got {len(raw)}")
            _check_ed25519_point(raw)
            backend = Ed25519PublicKey.from_public_bytes(raw)
        else:
            if len(raw) != 65 or raw[0] != 0x04:
                # Compressed (02/03) and hybrid (06/07) forms are refused so that one
                # key has exactly one encoding, hence one key id.
                raise KeyFormatError(
                    f"SM2 public key must be 65 bytes 04||X||Y, got {len(raw)} bytes "
                    f"starting {raw[:1].hex() or 'empty'}"
                )
            try:
                backend = _t_ec.EllipticCurvePublicKey.from_encoded_point(_t_ec.SM2(), raw)
            except _TONGSUO_ERRORS:
                raise KeyFormatError("SM2 public key is not a point on sm2p256v1") from None
            if _sm2_point(backend) != raw:  # e.g. a coordinate >= p that OpenSSL reduced
                raise KeyFormatError("SM2 public key is not canonically encoded")
        object.__setattr__(self, "_suite", suite)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_key_id", digest(suite, raw)[:16].hex())
        object.__setattr__(self, "_backend", backend)

    @classmethod
    def from_raw(cls, suite: SuiteName, raw: bytes) -> PublicKey:
        """Parse the raw wire encoding; raises :class:`KeyFormatError` if it is not a key."""
        return cls(suite, raw)

    @classmethod
    def from_hex(cls, suite: SuiteName, hex_str: str) -> PublicKey:
        """Parse lowercase hex, the protocol's only text form for binary values."""
        if not isinstance(hex_str, str) or not _LOWER_HEX.fullmatch(hex_str):
            raise KeyFormatError(f"{suite} public key is not lowercase hex of whole bytes")
        return cls(suite, bytes.fromhex(hex_str))

    @property
    def suite(self) -> SuiteName:
        """The suite this key belongs to."""
        return self._suite

    @property
    def raw(self) -> bytes:
        """The wire encoding: Ed25519 32 bytes, SM2 65 bytes ``04 || X || Y``."""
        return self._raw

    def hex(self) -> str:
        """The raw encoding as lowercase hex, as it travels in protocol objects."""
        return self._raw.hex()

    @property
    def key_id(self) -> str:
        """First 16 bytes of ``digest(suite, raw)`` as 32 lowercase hex digits.

        Derived from the key, so anyone holding the key can check an id claimed
        for it; computed once at construction.
        """
        return self._key_id

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return if ``signature`` is this key's signature on ``message``, else raise.

        Raises :class:`SignatureError` naming the algorithm and key id. SM2
        signatures must be 64 bytes ``r || s`` with ``1 <= r, s < n``; the range
        check runs before the backend so malformed input never reaches it.
        """
        if self._suite == "sm":
            if len(signature) != 64:
                self._fail(f"expected 64 bytes r||s, got {len(signature)}")
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            if not (0 < r < _SM2_N and 0 < s < _SM2_N):
                self._fail("r or s is outside [1, n-1]")
            try:
                self._backend.verify(encode_dss_signature(r, s), message, _SM2_WITH_SM3)
            except (_t_exc.InvalidSignature, _t_exc.InternalError):
                self._fail()
        else:
            if len(signature) != 64:
                self._fail(f"expected 64 bytes R||S, got {len(signature)}")
            try:
                self._backend.verify(signature, message)
            except InvalidSignature:
                self._fail()

    def _fail(self, reason: str | None = None) -> NoReturn:
        name = "SM2" if self._suite == "sm" else "Ed25519"
        message = f"{name} signature does not verify under key {self._key_id}"
        raise SignatureError(f"{message}: {reason}" if reason else message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._suite == other._suite and self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self._suite, self._raw))

    def __repr__(self) -> str:
        return f"PublicKey(suite={self._suite!r}, key_id={self._key_id!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PublicKey is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PublicKey is immutable; cannot delete {name!r}")


# --- private keys ---------------------------------------------------------------


class PrivateKey:
    """A signing key of one suite. Its ``repr`` shows only suite and key id.

    Build one with :meth:`generate`, :meth:`from_pem` or :meth:`from_seed_ed25519`;
    the public half is derived and cached on construction.
    """

    __slots__ = ("_suite", "_backend", "_public")

    _suite: SuiteName
    _backend: Any
    _public: PublicKey

    def __init__(self, suite: SuiteName, backend: Any) -> None:
        """Wrap a backend key object; internal, use the classmethods."""
        raw = (
            _sm2_point(backend.public_key())
            if suite == "sm"
            else backend.public_key().public_bytes_raw()
        )
        object.__setattr__(self, "_suite", suite)
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "_public", PublicKey(suite, raw))

    @property
    def suite(self) -> SuiteName:
        """The suite this key signs for."""
        return self._suite

    @classmethod
    def generate(cls, suite: SuiteName) -> PrivateKey:
        """A fresh random key from the backend's CSPRNG."""
        suite = parse_suite(suite)
        if suite == "sm":
            return cls("sm", _t_ec.generate_private_key(_t_ec.SM2()))
        return cls("intl", Ed25519PrivateKey.generate())

    @classmethod
    def from_seed_ed25519(cls, seed: bytes) -> PrivateKey:
        """The Ed25519 key whose RFC 8032 secret key is ``seed`` (32 bytes).

        Exists for deterministic test keys and the RFC 8032 §7.1 vectors.
        """
        if len(seed) != 32:
            raise KeyFormatError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        return cls("intl", Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def from_pem(cls, data: bytes) -> PrivateKey:
        """Load an unencrypted PEM private key and tell its suite from the key itself.

        Ed25519 keys load through ``cryptography``; SM2 keys, which it refuses, load
        through tongsuopy. For SM2 the public point is re-derived from the scalar,
        so a PEM carrying a mismatched public key cannot produce signatures that
        fail to verify under :meth:`public_key`. Raises :class:`KeyFormatError`.
        """
        try:
            key = _c_ser.load_pem_private_key(data, password=None)
        except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
            # cryptography refuses the SM2 curve ("Curve 1.2.156.10197.1.301 is not
            # supported"); whatever it says, tongsuopy gets the next try.
            refusal = str(exc)
        else:
            if isinstance(key, Ed25519PrivateKey):
                return cls("intl", key)
            refusal = f"a {type(key).__name__}"
        try:
            sm2 = _t_ser.load_pem_private_key(data, password=None)
            if not isinstance(sm2.curve, _t_ec.SM2):
                raise ValueError("not on the SM2 curve")
            d = int(sm2.private_numbers().private_value)
        except (*_TONGSUO_ERRORS, AttributeError):
            raise KeyFormatError(
                f"private key PEM is neither an Ed25519 nor an SM2 key ({refusal})"
            ) from None
        if not 1 <= d <= _SM2_N - 2:  # signing needs (1 + d)^-1 mod n, so n-1 is no key
            raise KeyFormatError("SM2 private key scalar is outside [1, n-2]")
        return cls("sm", _t_ec.derive_private_key(d, _t_ec.SM2()))

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``: 64 bytes, Ed25519 ``R||S`` or SM2 ``r||s`` big-endian."""
        if self._suite == "sm":
            r, s = decode_dss_signature(bytes(self._backend.sign(message, _SM2_WITH_SM3)))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return bytes(self._backend.sign(message))

    def public_key(self) -> PublicKey:
        """The matching public key (cached: signing paths ask for it per object)."""
        return self._public

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; the caller is responsible for protecting it."""
        if self._suite == "sm":
            return bytes(
                self._backend.private_bytes(
                    _t_ser.Encoding.PEM, _t_ser.PrivateFormat.PKCS8, _t_ser.NoEncryption()
                )
            )
        return bytes(
            self._backend.private_bytes(
                _c_ser.Encoding.PEM, _c_ser.PrivateFormat.PKCS8, _c_ser.NoEncryption()
            )
        )

    def __repr__(self) -> str:
        # Never show key material: logs and tracebacks print reprs.
        return f"PrivateKey(suite={self._suite!r}, key_id={self._public.key_id!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PrivateKey is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PrivateKey is immutable; cannot delete {name!r}")

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the secret into caches and queues without anyone asking.
        raise TypeError("PrivateKey cannot be pickled; use to_pem() deliberately")
