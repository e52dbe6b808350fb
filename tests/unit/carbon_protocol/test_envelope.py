"""Encrypted delivery envelopes (:mod:`carbon_protocol.envelope`).

Primitive vectors first (GB/T 32907 SM4, RFC 8998 SM4-GCM, the GCM spec's
AES-256 case, RFC 7748 X25519, RFC 5869 HKDF), then an independent decryptor
written from ``docs/envelope.md`` with other libraries (gmssl for SM2, the
reference ``rfc8785`` package for the AAD), then round trips, every tamper case,
wrong keys and wrong suites. SM2 encryption itself is in ``test_envelope_sm2.py``.
"""

from __future__ import annotations

import base64
import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from carbon_protocol.envelope import (
    Envelope,
    EnvelopeHeader,
    RecipientPrivateKey,
    RecipientPublicKey,
    _sm4_gcm_open,
    _sm4_gcm_seal,
    envelope_digest,
    header_bytes,
    open_,
    parse_envelope,
    seal,
)
from carbon_protocol.errors import (
    DecryptionError,
    EnvelopeError,
    KeyFormatError,
    UnsupportedSuiteError,
    VerificationError,
)
from carbon_protocol.sm2_encrypt import _encrypt_with, sm2_encrypt
from carbon_protocol.suites import SUITES, SuiteName, digest

GRANT = "86.1000.1/grant.2026-0042"
PLAINTEXT = b'{"readings":[{"device":"86.1000.1/dev.meter-0001","seq":7}]}'


def _header(key: RecipientPublicKey, **changes: Any) -> EnvelopeHeader:
    fields: dict[str, Any] = {
        "suite": key.suite,
        "grant": GRANT,
        "recipient_key_id": key.key_id,
        "content_type": "application/json",
        "created_at": "2026-11-24T19:00:00Z",
    }
    fields.update(changes)
    return EnvelopeHeader(**fields)


@pytest.fixture(scope="module")
def keys() -> dict[str, RecipientPrivateKey]:
    return {suite: RecipientPrivateKey.generate(suite) for suite in SUITES}


@pytest.fixture(scope="module")
def sealed(keys: dict[str, RecipientPrivateKey]) -> dict[str, Envelope]:
    return {
        suite: seal(PLAINTEXT, key.public_key(), _header(key.public_key()))
        for suite, key in keys.items()
    }


def _mutated(envelope: Envelope, path: tuple[str, ...], value: Any) -> Envelope:
    """The envelope with one JSON field replaced, parsed as a receiver would parse it."""
    data = envelope.model_dump(mode="json")
    target = data
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return Envelope.model_validate(data)


# --- primitive vectors ----------------------------------------------------------------


def test_sm4_gbt32907_example() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    block = encryptor.update(key) + encryptor.finalize()
    assert block.hex() == "681edf34d206965e86b3e94f536e4246"


# RFC 8998 Appendix A.1 (SM4-GCM).
SM4_GCM_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
SM4_GCM_IV = bytes.fromhex("00001234567800000000ABCD")
SM4_GCM_PLAINTEXT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
SM4_GCM_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
SM4_GCM_SEALED = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    "83DE3541E4C2B58177E065A9BF7B62EC"  # tag
)


def test_sm4_gcm_rfc8998_vector() -> None:
    sealed = _sm4_gcm_seal(SM4_GCM_KEY, SM4_GCM_IV, SM4_GCM_PLAINTEXT, SM4_GCM_AAD)
    assert sealed == SM4_GCM_SEALED
    assert _sm4_gcm_open(SM4_GCM_KEY, SM4_GCM_IV, SM4_GCM_SEALED, SM4_GCM_AAD) == SM4_GCM_PLAINTEXT


def test_aes256_gcm_vector() -> None:
    # McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16.
    key = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    iv = bytes.fromhex("cafebabefacedbaddecaf888")
    plaintext = bytes.fromhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    expected = bytes.fromhex(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b"  # tag
    )
    assert AESGCM(key).encrypt(iv, plaintext, aad) == expected


def test_x25519_rfc7748_vectors() -> None:
    # §5.2, first scalar-multiplication vector.
    scalar = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    )
    u = X25519PublicKey.from_public_bytes(
        bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    )
    assert scalar.exchange(u).hex() == (
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    )
    # §6.1, Diffie-Hellman: both sides agree, through the envelope key classes.
    alice = RecipientPrivateKey.from_private_bytes(
        "intl", bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    bob = RecipientPrivateKey.from_private_bytes(
        "intl", bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    )
    assert alice.public_key().hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert bob.public_key().hex() == (
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    )
    shared = X25519PrivateKey.from_private_bytes(alice.private_bytes()).exchange(
        X25519PublicKey.from_public_bytes(bob.public_key().raw)
    )
    assert shared.hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def test_hkdf_sha256_rfc5869_case_1() -> None:
    hkdf = HKDF(
        hashes.SHA256(),
        length=42,
        salt=bytes(range(0x0D)),
        info=bytes(range(0xF0, 0xFA)),
    )
    assert hkdf.derive(b"\x0b" * 22).hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# --- an independent decryptor, written from docs/envelope.md -----------------------------


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _stranger_open(envelope_json: str, private_raw: bytes) -> bytes:
    envelope = json.loads(envelope_json)
    header = envelope["header"]
    aad = rfc8785.dumps(header)
    key_wrap = bytes.fromhex(envelope["key_wrap"])
    nonce = bytes.fromhex(envelope["nonce"])
    sealed = _b64url(envelope["ciphertext"])
    if header["suite"] == "sm":
        crypt = gm_sm2.CryptSM2(private_key=private_raw.hex(), public_key="", mode=1)
        content_key = crypt.decrypt(key_wrap[1:])  # gmssl wants C1 without the 04 byte
        body, tag = sealed[:-16], sealed[-16:]
        decryptor = Cipher(algorithms.SM4(content_key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(body) + decryptor.finalize()
    private = X25519PrivateKey.from_private_bytes(private_raw)
    recipient = private.public_key().public_bytes_raw()
    shared = private.exchange(X25519PublicKey.from_public_bytes(key_wrap))
    info = rfc8785.dumps(
        {
            "context": "carbon-ledger/envelope/v1",
            "grant": header["grant"],
            "recipient_key_id": header["recipient_key_id"],
            "suite": "intl",
        }
    )
    key = HKDF(hashes.SHA256(), length=32, salt=key_wrap + recipient, info=info).derive(shared)
    return AESGCM(key).decrypt(nonce, sealed, aad)


@pytest.mark.parametrize("suite", SUITES)
def test_a_stranger_decrypts_from_the_documented_format(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    text = sealed[suite].model_dump_json()
    assert _stranger_open(text, keys[suite].private_bytes()) == PLAINTEXT


def test_aad_is_the_rfc8785_form_of_the_header(sealed: dict[str, Envelope]) -> None:
    for envelope in sealed.values():
        assert header_bytes(envelope.header) == rfc8785.dumps(
            envelope.header.model_dump(mode="json")
        )


def test_recipient_key_id_is_the_suite_hash_of_the_raw_key(
    keys: dict[str, RecipientPrivateKey],
) -> None:
    for suite, key in keys.items():
        public = key.public_key()
        assert public.key_id == digest(suite, public.raw)[:16].hex()  # type: ignore[arg-type]


DOCS = Path(__file__).resolve().parents[3] / "docs" / "envelope.md"
VECTOR_PLAINTEXT = b'{"dataset":"86.1000.1/ds.heat-2026-10","readings":[]}'
VECTOR_KEYS = {
    "sm": "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8",
    "intl": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
}
VECTOR_DIGESTS = {
    "sm": "99977bf907bd00846c9b6f1a424bc202af94ad50d037273909c0cea5ded59e92",
    "intl": "bb574e75780eb75ea0de95664087da8cfb75342f9729d95d6aa10e03af25045a",
}


def _docs_vector(suite: str) -> str:
    found = re.search(rf"<!-- vector:{suite} -->\n```json\n(.*?)```", DOCS.read_text(), re.S)
    assert found is not None, f"docs/envelope.md has no {suite} vector"
    return found.group(1)


@pytest.mark.parametrize("suite", SUITES)
def test_documented_vectors_open(suite: SuiteName) -> None:
    text = _docs_vector(suite)
    raw = bytes.fromhex(VECTOR_KEYS[suite])
    envelope = parse_envelope(text)
    assert open_(envelope, RecipientPrivateKey.from_private_bytes(suite, raw)) == VECTOR_PLAINTEXT
    assert _stranger_open(text, raw) == VECTOR_PLAINTEXT
    assert envelope_digest(envelope) == VECTOR_DIGESTS[suite]


def test_documented_sm_key_wrap_is_the_sm2_encryption_of_the_content_key() -> None:
    envelope = parse_envelope(_docs_vector("sm"))
    public = RecipientPrivateKey.from_private_bytes("sm", bytes.fromhex(VECTOR_KEYS["sm"]))
    k = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
    wrap = _encrypt_with(public.public_key().raw, bytes(range(16)), lambda: k)
    assert envelope.key_wrap == wrap.hex()


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4096, 1 << 20])
def test_round_trip(suite: SuiteName, size: int, keys: dict[str, RecipientPrivateKey]) -> None:
    key = keys[suite]
    plaintext = bytes(i % 251 for i in range(size))
    envelope = seal(plaintext, key.public_key(), _header(key.public_key()))
    assert len(_b64url(envelope.ciphertext)) == size + 16
    reparsed = parse_envelope(envelope.model_dump_json())
    assert reparsed == envelope
    assert open_(reparsed, key) == plaintext


@settings(max_examples=30, deadline=None)
@given(
    suite=st.sampled_from(SUITES),
    plaintext=st.binary(max_size=300),
    grant_suffix=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,40}", fullmatch=True),
    content_type=st.sampled_from(["application/json", "text/csv", "application/octet-stream"]),
)
def test_round_trip_property(
    suite: SuiteName,
    plaintext: bytes,
    grant_suffix: str,
    content_type: str,
    keys: dict[str, RecipientPrivateKey],
) -> None:
    public = keys[suite].public_key()
    header = _header(public, grant=f"86.1000.1/{grant_suffix}", content_type=content_type)
    envelope = parse_envelope(seal(plaintext, public, header).model_dump_json())
    assert envelope.header == header
    assert open_(envelope, keys[suite]) == plaintext


@pytest.mark.parametrize("suite", SUITES)
def test_sealing_twice_gives_unrelated_envelopes(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey]
) -> None:
    public = keys[suite].public_key()
    first = seal(PLAINTEXT, public, _header(public))
    second = seal(PLAINTEXT, public, _header(public))
    assert first.key_wrap != second.key_wrap
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert envelope_digest(first) != envelope_digest(second)


def test_header_carries_no_plaintext_hash(sealed: dict[str, Envelope]) -> None:
    for suite, envelope in sealed.items():
        text = envelope.model_dump_json()
        for hashed in (digest("sm", PLAINTEXT), digest("intl", PLAINTEXT)):
            assert hashed.hex() not in text, suite
        assert set(envelope.header.model_dump()) == {
            "v", "suite", "grant", "recipient_key_id", "content_type", "created_at",
        }


def test_envelope_digest_follows_every_byte(sealed: dict[str, Envelope]) -> None:
    for suite, envelope in sealed.items():
        digest_hex = envelope_digest(envelope)
        assert envelope_digest(parse_envelope(envelope.model_dump_json())) == digest_hex
        nonce = bytearray.fromhex(envelope.nonce)
        nonce[0] ^= 1
        assert envelope_digest(_mutated(envelope, ("nonce",), nonce.hex())) != digest_hex
        assert len(digest_hex) == 64, suite


# --- tampering ---------------------------------------------------------------------------

HEADER_CHANGES: list[tuple[str, Any]] = [
    ("grant", "86.1000.1/grant.2026-0043"),
    ("content_type", "application/octet-stream"),
    ("created_at", "2026-11-24T19:00:01Z"),
]


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize(("field", "value"), HEADER_CHANGES, ids=[c[0] for c in HEADER_CHANGES])
def test_changed_header_field_does_not_decrypt(
    suite: SuiteName,
    field: str,
    value: Any,
    keys: dict[str, RecipientPrivateKey],
    sealed: dict[str, Envelope],
) -> None:
    tampered = _mutated(sealed[suite], ("header", field), value)
    with pytest.raises(DecryptionError) as info:
        open_(tampered, keys[suite])
    assert isinstance(info.value, VerificationError)
    assert info.value.code == "decryption_failed"


@pytest.mark.parametrize("suite", SUITES)
def test_changed_recipient_key_id_is_refused(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    other = RecipientPrivateKey.generate(suite)
    relabelled = _mutated(sealed[suite], ("header", "recipient_key_id"), other.public_key().key_id)
    with pytest.raises(EnvelopeError, match="is for recipient key"):
        open_(relabelled, keys[suite])
    # Relabelled to the other key, the other key still cannot read it.
    with pytest.raises(DecryptionError):
        open_(relabelled, other)


@pytest.mark.parametrize("suite", SUITES)
def test_changed_suite_is_refused(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    flipped = "intl" if suite == "sm" else "sm"
    data = sealed[suite].model_dump(mode="json")
    data["header"]["suite"] = flipped
    with pytest.raises(EnvelopeError, match="key_wrap for suite"):
        parse_envelope(json.dumps(data))


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("field", ["key_wrap", "nonce"])
def test_every_flipped_byte_of_key_wrap_and_nonce_is_refused(
    suite: SuiteName, field: str, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    original = bytes.fromhex(getattr(sealed[suite], field))
    for i in range(len(original)):
        for bit in (0x01, 0x80):
            changed = bytearray(original)
            changed[i] ^= bit
            with pytest.raises(DecryptionError):
                open_(_mutated(sealed[suite], (field,), changed.hex()), keys[suite])


@pytest.mark.parametrize("suite", SUITES)
def test_every_flipped_byte_of_the_ciphertext_is_refused(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    original = _b64url(sealed[suite].ciphertext)
    for i in range(len(original)):
        changed = bytearray(original)
        changed[i] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        with pytest.raises(DecryptionError):
            open_(_mutated(sealed[suite], ("ciphertext",), text), keys[suite])


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("cut", ["drop-last", "append", "tag-only"])
def test_truncated_or_extended_ciphertext_is_refused(
    suite: SuiteName, cut: str, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    original = _b64url(sealed[suite].ciphertext)
    changed = {
        "drop-last": original[:-1],
        "append": original + b"\x00",
        "tag-only": original[-16:],
    }[cut]
    text = base64.urlsafe_b64encode(changed).rstrip(b"=").decode()
    with pytest.raises(DecryptionError):
        open_(_mutated(sealed[suite], ("ciphertext",), text), keys[suite])


@pytest.mark.parametrize("suite", SUITES)
def test_parts_swapped_between_envelopes_are_refused(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    key = keys[suite]
    other = seal(PLAINTEXT, key.public_key(), _header(key.public_key()))
    for field in ("key_wrap", "nonce", "ciphertext"):
        with pytest.raises(DecryptionError):
            open_(_mutated(sealed[suite], (field,), getattr(other, field)), key)


@pytest.mark.parametrize(
    "ephemeral_hex",
    [
        "00" * 32,
        "01" + "00" * 31,
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    ],
)
def test_small_order_ephemeral_key_is_refused(
    ephemeral_hex: str, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    with pytest.raises(DecryptionError):
        open_(_mutated(sealed["intl"], ("key_wrap",), ephemeral_hex), keys["intl"])


def test_sm_content_key_rewrapped_by_a_stranger_does_not_open(
    keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    # Anyone can SM2-encrypt a key of their choosing to the buyer; it cannot open
    # ciphertext sealed under the owner's content key.
    rewrapped = sm2_encrypt(keys["sm"].public_key().raw, bytes(16))
    with pytest.raises(DecryptionError):
        open_(_mutated(sealed["sm"], ("key_wrap",), rewrapped.hex()), keys["sm"])


# --- wrong keys, wrong suites ----------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_wrong_recipient_key_is_refused(suite: SuiteName, sealed: dict[str, Envelope]) -> None:
    stranger = RecipientPrivateKey.generate(suite)
    with pytest.raises(EnvelopeError, match="is for recipient key") as info:
        open_(sealed[suite], stranger)
    assert not isinstance(info.value, DecryptionError)


@pytest.mark.parametrize("suite", SUITES)
def test_key_of_the_other_suite_is_refused(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey], sealed: dict[str, Envelope]
) -> None:
    other = "intl" if suite == "sm" else "sm"
    with pytest.raises(EnvelopeError, match="is for suite"):
        open_(sealed[suite], keys[other])


@pytest.mark.parametrize("suite", SUITES)
def test_seal_refuses_a_header_naming_another_key_or_suite(
    suite: SuiteName, keys: dict[str, RecipientPrivateKey]
) -> None:
    public = keys[suite].public_key()
    stranger = RecipientPrivateKey.generate(suite).public_key()
    with pytest.raises(EnvelopeError, match="is for recipient key"):
        seal(PLAINTEXT, public, _header(stranger))
    other = "intl" if suite == "sm" else "sm"
    with pytest.raises(EnvelopeError, match="is for suite"):
        seal(PLAINTEXT, public, _header(public, suite=other))


def test_unknown_suite_is_refused() -> None:
    with pytest.raises(UnsupportedSuiteError):
        RecipientPrivateKey.generate("rsa")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EnvelopeHeader(
            suite="rsa",  # type: ignore[arg-type]
            grant=GRANT,
            recipient_key_id="00" * 16,
            content_type="application/json",
            created_at="2026-11-24T19:00:00Z",
        )


# --- the wire model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("header", "content_type"), "Application/JSON"),
        (("header", "content_type"), "application/json; charset=utf-8"),
        (("header", "grant"), "grant-without-prefix"),
        (("header", "created_at"), "2026-02-30T00:00:00Z"),
        (("header", "recipient_key_id"), "AB" * 16),
        (("header", "v"), 2),
        (("nonce",), "00" * 16),
        (("key_wrap",), "00" * 31),
        (("ciphertext",), "AAAA"),  # shorter than a tag
        (("ciphertext",), "A" * 21 + "B"),  # stray low bits: not canonical base64url
        (("ciphertext",), "+" * 24),  # standard alphabet, not the URL-safe one
    ],
)
def test_malformed_envelopes_are_refused(
    path: tuple[str, ...], value: Any, sealed: dict[str, Envelope]
) -> None:
    data = sealed["intl"].model_dump(mode="json")
    target = data
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    with pytest.raises(EnvelopeError, match="not a valid envelope"):
        parse_envelope(json.dumps(data))


def test_unknown_fields_and_garbage_are_refused(sealed: dict[str, Envelope]) -> None:
    data = sealed["sm"].model_dump(mode="json")
    data["plaintext_sha256"] = "00" * 32
    with pytest.raises(EnvelopeError):
        parse_envelope(json.dumps(data))
    with pytest.raises(EnvelopeError):
        parse_envelope(b"\xff not json")


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("length", [22, 23, 24, 25])
def test_ciphertext_text_is_accepted_exactly_when_canonical(
    length: int, sealed: dict[str, Envelope]
) -> None:
    # Against the standard library: a text is canonical when decoding and
    # re-encoding gives it back, so one ciphertext has one text (and one digest).
    data = sealed["intl"].model_dump(mode="json")
    for last in _B64URL:
        text = "A" * (length - 1) + last
        canonical = length % 4 != 1 and text == base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(text + "=" * (-length % 4))
        ).rstrip(b"=").decode()
        data["ciphertext"] = text
        if canonical:
            assert parse_envelope(json.dumps(data)).ciphertext == text
        else:
            with pytest.raises(EnvelopeError):
                parse_envelope(json.dumps(data))


# --- recipient keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_hex",
    [
        "00" * 32,  # u = 0
        "01" + "00" * 31,  # u = 1
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # u = p - 1
    ],
)
def test_small_order_x25519_keys_are_refused(raw_hex: str) -> None:
    with pytest.raises(KeyFormatError, match="small order"):
        RecipientPublicKey.from_hex("intl", raw_hex)


@pytest.mark.parametrize(
    "raw_hex",
    [
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # u = p
        "0900000000000000000000000000000000000000000000000000000000000080",  # bit 255 set
    ],
)
def test_non_canonical_x25519_keys_are_refused(raw_hex: str) -> None:
    with pytest.raises(KeyFormatError, match="canonical"):
        RecipientPublicKey.from_hex("intl", raw_hex)


def test_malformed_public_keys_are_refused(keys: dict[str, RecipientPrivateKey]) -> None:
    sm_raw = keys["sm"].public_key().raw
    for suite, raw in [
        ("intl", bytes(31)),
        ("sm", sm_raw[:-1]),
        ("sm", sm_raw[:-1] + bytes([sm_raw[-1] ^ 1])),
        ("sm", keys["intl"].public_key().raw),
    ]:
        with pytest.raises(KeyFormatError):
            RecipientPublicKey.from_raw(suite, raw)  # type: ignore[arg-type]
    with pytest.raises(KeyFormatError):
        RecipientPublicKey.from_hex("sm", sm_raw.hex().upper())


def test_private_key_round_trip_and_hygiene(keys: dict[str, RecipientPrivateKey]) -> None:
    for suite, key in keys.items():
        raw = key.private_bytes()
        assert len(raw) == 32
        again = RecipientPrivateKey.from_private_bytes(suite, raw)  # type: ignore[arg-type]
        assert again.public_key() == key.public_key()
        assert raw.hex() not in repr(key)
        assert key.public_key().key_id in repr(key)
        with pytest.raises(TypeError):
            pickle.dumps(key)
        with pytest.raises(AttributeError):
            key._suite = "sm"


@pytest.mark.parametrize(
    "raw",
    [
        bytes(32),  # d = 0
        bytes.fromhex("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54122"),  # n - 1
        bytes(31),
    ],
    ids=["zero", "n-1", "short"],
)
def test_invalid_sm2_private_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(KeyFormatError):
        RecipientPrivateKey.from_private_bytes("sm", raw)
