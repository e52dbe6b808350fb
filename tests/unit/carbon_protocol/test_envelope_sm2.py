"""SM2 public-key encryption (GB/T 32918.4) against the standard's example and gmssl.

* The encryption example on the recommended curve (GM/T 0003.5-2012: key
  ``3945208f...``, ephemeral ``k = 59276e27...``, message "encryption standard")
  pins every step: point arithmetic, KDF, ``C3`` and the ``C1 C3 C2`` order.
* gmssl, an independent pure-Python implementation, in both directions: it
  decrypts what we encrypt, and we decrypt (with ``C3`` checked) what it encrypts.
  gmssl writes ``C1`` as ``x || y`` without the ``04`` byte and its decrypt does not
  check ``C3``, so ``C3`` is pinned by the example and by our decryption of gmssl's
  ciphertexts.
"""

from __future__ import annotations

import os

import pytest
from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]
from tongsuopy.crypto import serialization as t_ser  # type: ignore[import-untyped]
from tongsuopy.crypto.asymciphers import ec as t_ec  # type: ignore[import-untyped]

from carbon_protocol.errors import DecryptionError, EncodingError, KeyFormatError
from carbon_protocol.sm2_encrypt import (
    SM2_CIPHERTEXT_OVERHEAD,
    _encrypt_with,
    sm2_decrypt,
    sm2_encrypt,
    sm2_generate_scalar,
    sm2_public_key,
)

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

# GM/T 0003.5-2012, encryption example on sm2p256v1.
EXAMPLE_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
EXAMPLE_PUBLIC = bytes.fromhex(
    "04"
    "09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
    "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13"
)
EXAMPLE_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
EXAMPLE_MESSAGE = b"encryption standard"
EXAMPLE_CIPHERTEXT = bytes.fromhex(
    "04"
    "04ebfc718e8d1798620432268e77feb6415e2ede0e073c0f4f640ecd2e149a73"  # C1.x
    "e858f9d81e5430a57b36daab8f950a3c64e6ee6a63094d99283aff767e124df0"  # C1.y
    "59983c18f809e262923c53aec295d30383b54e39d609d160afcb1908d0bd8766"  # C3
    "21886ca989ca9c7d58087307ca93092d651efa"  # C2
)


def _gmssl(d: int, public: bytes) -> gm_sm2.CryptSM2:
    crypt = gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key=public[1:].hex(), mode=1)
    # gmssl's constructor lstrip("04")s the key text, which eats leading 0/4 digits of x.
    crypt.public_key = public[1:].hex()
    return crypt


def test_public_key_of_the_example_scalar() -> None:
    assert sm2_public_key(EXAMPLE_D) == EXAMPLE_PUBLIC


def test_public_key_matches_tongsuo() -> None:
    for _ in range(5):
        d = sm2_generate_scalar()
        tongsuo = t_ec.derive_private_key(d, t_ec.SM2()).public_key()
        expected = tongsuo.public_bytes(t_ser.Encoding.X962, t_ser.PublicFormat.UncompressedPoint)
        assert sm2_public_key(d) == expected


def test_standard_example_encrypts_exactly() -> None:
    assert _encrypt_with(EXAMPLE_PUBLIC, EXAMPLE_MESSAGE, lambda: EXAMPLE_K) == EXAMPLE_CIPHERTEXT


def test_standard_example_decrypts() -> None:
    assert sm2_decrypt(EXAMPLE_D, EXAMPLE_CIPHERTEXT) == EXAMPLE_MESSAGE


@pytest.mark.parametrize("length", [1, 16, 31, 32, 33, 100])
def test_gmssl_decrypts_ours(length: int) -> None:
    d = sm2_generate_scalar()
    public = sm2_public_key(d)
    message = os.urandom(length)
    ciphertext = sm2_encrypt(public, message)
    assert len(ciphertext) == SM2_CIPHERTEXT_OVERHEAD + length
    assert ciphertext[0] == 0x04
    assert _gmssl(d, public).decrypt(ciphertext[1:]) == message


@pytest.mark.parametrize("length", [1, 16, 31, 32, 33, 100])
def test_we_decrypt_gmssl(length: int) -> None:
    d = sm2_generate_scalar()
    public = sm2_public_key(d)
    message = os.urandom(length)
    theirs = _gmssl(d, public).encrypt(message)
    assert sm2_decrypt(d, b"\x04" + theirs) == message


def test_gmssl_c1c2c3_order_is_refused() -> None:
    # The 2010 draft order; the current standard (and this format) is C1 C3 C2.
    d = sm2_generate_scalar()
    public = sm2_public_key(d)
    crypt = _gmssl(d, public)
    crypt.mode = 0
    old_order = crypt.encrypt(os.urandom(16))
    with pytest.raises(DecryptionError):
        sm2_decrypt(d, b"\x04" + old_order)


def test_encryption_is_randomised() -> None:
    message = b"same content key"
    assert sm2_encrypt(EXAMPLE_PUBLIC, message) != sm2_encrypt(EXAMPLE_PUBLIC, message)


def test_every_flipped_byte_is_refused() -> None:
    for i in range(len(EXAMPLE_CIPHERTEXT)):
        tampered = bytearray(EXAMPLE_CIPHERTEXT)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            sm2_decrypt(EXAMPLE_D, bytes(tampered))


@pytest.mark.parametrize(
    "ciphertext",
    [
        b"",
        EXAMPLE_CIPHERTEXT[:SM2_CIPHERTEXT_OVERHEAD],  # no C2
        EXAMPLE_CIPHERTEXT[:-1],
        EXAMPLE_CIPHERTEXT + b"\x00",
        b"\x02" + EXAMPLE_CIPHERTEXT[1:],  # compressed-point tag with 64 coordinate bytes
        EXAMPLE_CIPHERTEXT[1:],  # gmssl's form without 04
    ],
    ids=["empty", "no-c2", "short", "long", "bad-tag", "no-04"],
)
def test_malformed_ciphertexts_are_refused(ciphertext: bytes) -> None:
    with pytest.raises(DecryptionError):
        sm2_decrypt(EXAMPLE_D, ciphertext)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(DecryptionError):
        sm2_decrypt(sm2_generate_scalar(), EXAMPLE_CIPHERTEXT)


def test_off_curve_c1_is_refused_before_multiplying() -> None:
    # An invalid-curve point would leak d modulo small orders; it must never be used.
    off = bytearray(EXAMPLE_CIPHERTEXT)
    off[64] ^= 0x01  # y no longer matches x
    with pytest.raises(DecryptionError):
        sm2_decrypt(EXAMPLE_D, bytes(off))


def test_empty_message_is_refused() -> None:
    with pytest.raises(EncodingError):
        sm2_encrypt(EXAMPLE_PUBLIC, b"")


@pytest.mark.parametrize(
    "public",
    [
        EXAMPLE_PUBLIC[:-1],
        b"\x03" + EXAMPLE_PUBLIC[1:],
        EXAMPLE_PUBLIC[:-1] + bytes([EXAMPLE_PUBLIC[-1] ^ 1]),
        b"\x04" + bytes(64),
    ],
    ids=["short", "bad-tag", "off-curve", "zero"],
)
def test_bad_public_keys_are_refused(public: bytes) -> None:
    with pytest.raises(KeyFormatError):
        sm2_encrypt(public, b"key")


@pytest.mark.parametrize("d", [0, N - 1, N, 2**256])
def test_scalars_outside_the_key_range_are_refused(d: int) -> None:
    with pytest.raises(KeyFormatError):
        sm2_public_key(d)
    with pytest.raises(KeyFormatError):
        sm2_decrypt(d, EXAMPLE_CIPHERTEXT)
