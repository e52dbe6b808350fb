"""SM2 public-key encryption (GB/T 32918.4-2016) on sm2p256v1, ciphertext ``C1 || C3 || C2``.

Used to wrap the 16-byte SM4 content key of an ``sm`` delivery envelope to a
buyer's SM2 encryption key. Neither ``cryptography`` (refuses the curve) nor
tongsuopy (its public API signs and verifies only; SM2 keys refuse ECDH, and
encryption sits in private cffi bindings) exposes SM2 encryption, so the scheme is
implemented here from the standard:

* encrypt (§6.1): random ``k`` in ``[1, n-1]``; ``C1 = [k]G``;
  ``(x2, y2) = [k]P_B``; ``t = KDF(x2 || y2, 8*len(M))``, retried while ``t`` is all
  zero; ``C2 = M xor t``; ``C3 = SM3(x2 || M || y2)``;
* decrypt (§7.1): ``C1`` must be a point on the curve (the cofactor is 1, so that
  is the whole check); ``(x2, y2) = [d_B]C1``; ``t`` as above, refused if all zero;
  ``M = C2 xor t``; ``SM3(x2 || M || y2)`` must equal ``C3``;
* KDF (§5.4.3): ``SM3(Z || ct)`` for a 32-bit big-endian counter from 1, concatenated
  and truncated;
* encodings: ``C1`` is the 65-byte uncompressed point ``04 || x || y`` (GB/T
  32918.1 §4.2.9), coordinates 32 bytes big-endian; ``C1 C3 C2`` is the order of the
  2016 standard (the 2010 draft had ``C1 C2 C3``). gmssl writes ``C1`` without the
  ``04`` byte; the interop tests add and strip it.

Pinned by the encryption example of GM/T 0003.5-2012 on the recommended curve and
by gmssl in both directions (tests/unit/carbon_protocol/test_envelope_sm2.py).

Side channels: Python integers are not constant-time. The scalar multiplication
is a Montgomery ladder (the same point operations whatever the bit) over a blinded
scalar ``d + r*n`` with a fresh 64-bit ``r`` per call, which removes the
key-dependent branch pattern and decorrelates timings between calls. That is a
mitigation, not a guarantee: decrypt with a long-term key on the buyer's own
machine, never behind an oracle that answers strangers' ciphertexts.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Final

from .errors import DecryptionError, EncodingError, KeyFormatError
from .suites import digest

__all__ = [
    "SM2_CIPHERTEXT_OVERHEAD",
    "sm2_encrypt",
    "sm2_decrypt",
    "sm2_public_key",
    "sm2_generate_scalar",
]

# sm2p256v1, GB/T 32918.5-2017.
_P: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A: Final = _P - 3
_B: Final = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_GX: Final = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY: Final = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

SM2_CIPHERTEXT_OVERHEAD: Final = 65 + 32
"""Bytes an SM2 ciphertext adds to its message: ``C1`` (65) and ``C3`` (32)."""

_BLIND_BITS: Final = 64
_LADDER_BITS: Final = 256 + _BLIND_BITS + 1

_Jacobian = tuple[int, int, int]
"""A point ``(X, Y, Z)`` meaning affine ``(X/Z^2, Y/Z^3)``; ``Z == 0`` is infinity."""

_INFINITY: Final[_Jacobian] = (1, 1, 0)


def _double(pt: _Jacobian) -> _Jacobian:
    # dbl-2001-b for a = -3 (Bernstein-Lange explicit-formulas database).
    x1, y1, z1 = pt
    if z1 == 0 or y1 == 0:
        return _INFINITY
    delta = z1 * z1 % _P
    gamma = y1 * y1 % _P
    beta = x1 * gamma % _P
    alpha = 3 * (x1 - delta) * (x1 + delta) % _P
    x3 = (alpha * alpha - 8 * beta) % _P
    z3 = ((y1 + z1) ** 2 - gamma - delta) % _P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % _P
    return (x3, y3, z3)


def _add(p1: _Jacobian, p2: _Jacobian) -> _Jacobian:
    # add-2007-bl, with the exceptional cases (infinity, equal or opposite points).
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % _P
    z2z2 = z2 * z2 % _P
    u1 = x1 * z2z2 % _P
    u2 = x2 * z1z1 % _P
    s1 = y1 * z2 * z2z2 % _P
    s2 = y2 * z1 * z1z1 % _P
    if u1 == u2:
        return _double(p1) if s1 == s2 else _INFINITY
    h = (u2 - u1) % _P
    i = 4 * h * h % _P
    j = h * i % _P
    r = 2 * (s2 - s1) % _P
    v = u1 * i % _P
    x3 = (r * r - j - 2 * v) % _P
    y3 = (r * (v - x3) - 2 * s1 * j) % _P
    z3 = ((z1 + z2) ** 2 - z1z1 - z2z2) * h % _P
    return (x3, y3, z3)


def _multiply(scalar: int, x: int, y: int) -> tuple[int, int] | None:
    """``[scalar](x, y)`` in affine coordinates, ``None`` for the point at infinity."""
    k = scalar + secrets.randbits(_BLIND_BITS) * _N  # [n]P = O for every point (h = 1)
    r0: _Jacobian = _INFINITY
    r1: _Jacobian = (x, y, 1)
    for i in range(_LADDER_BITS - 1, -1, -1):
        if (k >> i) & 1:
            r0, r1 = _add(r0, r1), _double(r1)
        else:
            r0, r1 = _double(r0), _add(r0, r1)
    xj, yj, zj = r0
    if zj == 0:
        return None
    z_inv = pow(zj, -1, _P)
    z_inv2 = z_inv * z_inv % _P
    return (xj * z_inv2 % _P, yj * z_inv2 * z_inv % _P)


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < _P and 0 <= y < _P and (y * y - x * x * x - _A * x - _B) % _P == 0


def _decode_point(data: bytes) -> tuple[int, int] | None:
    """The affine point ``04 || x || y``, or ``None`` if it is not one on the curve."""
    if len(data) != 65 or data[0] != 0x04:
        return None
    x = int.from_bytes(data[1:33], "big")
    y = int.from_bytes(data[33:], "big")
    return (x, y) if _on_curve(x, y) else None


def _encode_point(point: tuple[int, int]) -> bytes:
    return b"\x04" + point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def _kdf(z: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 1
    while len(out) < length:
        out += digest("sm", z + counter.to_bytes(4, "big"))
        counter += 1
    return bytes(out[:length])


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _shared(point: tuple[int, int]) -> tuple[bytes, bytes]:
    return point[0].to_bytes(32, "big"), point[1].to_bytes(32, "big")


def sm2_generate_scalar() -> int:
    """A fresh private scalar in ``[1, n-2]`` (GB/T 32918.1 §6.1) from the OS CSPRNG."""
    return secrets.randbelow(_N - 2) + 1


def _check_scalar(d: int) -> None:
    if not 1 <= d <= _N - 2:
        raise KeyFormatError("SM2 private key scalar is outside [1, n-2]")


def sm2_public_key(d: int) -> bytes:
    """The public key ``[d]G`` of private scalar ``d`` as ``04 || x || y``."""
    _check_scalar(d)
    point = _multiply(d, _GX, _GY)
    assert point is not None  # d < n, so [d]G is never the point at infinity
    return _encode_point(point)


def sm2_encrypt(public_key: bytes, message: bytes) -> bytes:
    """Encrypt ``message`` to the SM2 key ``04 || x || y``: ``C1 || C3 || C2``.

    Raises :class:`KeyFormatError` if the key is not a point on sm2p256v1 and
    :class:`EncodingError` for an empty message (its all-zero-``t`` rule would never
    terminate, and there is nothing to hide).
    """
    return _encrypt_with(public_key, message, lambda: secrets.randbelow(_N - 1) + 1)


def _encrypt_with(public_key: bytes, message: bytes, draw_k: Callable[[], int]) -> bytes:
    """:func:`sm2_encrypt` with the ephemeral scalar drawn by ``draw_k``.

    Separate so the standard's example, which fixes ``k``, can be checked exactly.
    """
    if not message:
        raise EncodingError("SM2 encryption needs a non-empty message")
    recipient = _decode_point(bytes(public_key))
    if recipient is None:
        raise KeyFormatError("SM2 public key is not a point 04||x||y on sm2p256v1")
    while True:
        k = draw_k()
        c1 = _multiply(k, _GX, _GY)
        shared = _multiply(k, *recipient)
        if c1 is None or shared is None:  # only if k = 0 mod n
            continue
        x2, y2 = _shared(shared)
        t = _kdf(x2 + y2, len(message))
        if any(t):
            break
    c3 = digest("sm", x2 + message + y2)
    return _encode_point(c1) + c3 + _xor(message, t)


def sm2_decrypt(d: int, ciphertext: bytes) -> bytes:
    """Decrypt ``C1 || C3 || C2`` with private scalar ``d``.

    Every failure (short input, ``C1`` off the curve, all-zero ``t``, ``C3``
    mismatch) raises the same :class:`DecryptionError`, so callers cannot be
    turned into an oracle telling which check failed.
    """
    _check_scalar(d)
    data = bytes(ciphertext)
    if len(data) <= SM2_CIPHERTEXT_OVERHEAD:
        raise DecryptionError("SM2 ciphertext does not decrypt under this key")
    c1 = _decode_point(data[:65])
    shared = _multiply(d, *c1) if c1 is not None else None
    if shared is not None:
        c3, c2 = data[65:97], data[97:]
        x2, y2 = _shared(shared)
        t = _kdf(x2 + y2, len(c2))
        if any(t):
            message = _xor(c2, t)
            if hmac.compare_digest(digest("sm", x2 + message + y2), c3):
                return message
    raise DecryptionError("SM2 ciphertext does not decrypt under this key")
