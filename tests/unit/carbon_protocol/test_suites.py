"""Tests for :mod:`carbon_protocol.suites`: vectors as data, cross-checks, properties.

* ``tests/vectors/crypto/hash_kat.json``: SM3 (GB/T 32905) and SHA-256 known answers;
* ``tests/vectors/crypto/ed25519_rfc8032.json``: RFC 8032 §7.1 TEST 1-3;
* ``tests/vectors/crypto/sm2_gmssl.json``: an SM2 signature made by pure-Python
  gmssl and mutations of it, from ``scripts/gen_crypto_vectors.py``.

The SM2 construction (Z digest with the default ID ``1234567812345678``, then SM3)
is pinned in both directions against gmssl, an independent implementation: its
signature verifies here, ours verifies there, and signatures made without Z or
with another ID are rejected here. The GB/T 32918.2 appendix examples are not
used: they run on a test curve, not on sm2p256v1.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as c_ser
from cryptography.hazmat.primitives.asymmetric import ec as c_ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]
from gmssl import sm3 as gm_sm3
from hypothesis import given, settings
from hypothesis import strategies as st
from tongsuopy.crypto import serialization as t_ser  # type: ignore[import-untyped]
from tongsuopy.crypto.asymciphers import ec as t_ec  # type: ignore[import-untyped]

from carbon_protocol import suites
from carbon_protocol.errors import KeyFormatError, SignatureError, UnsupportedSuiteError
from carbon_protocol.suites import (
    SUITES,
    PrivateKey,
    PublicKey,
    SuiteName,
    digest,
    hash_fn,
    parse_suite,
)

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "crypto"
GENERATOR = REPO / "scripts" / "gen_crypto_vectors.py"

SM2_N = int(gm_sm2.default_ecc_table["n"], 16)
SM2_P = int(gm_sm2.default_ecc_table["p"], 16)
ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ALG = {"sm": "SM2", "intl": "Ed25519"}

KEYS: dict[SuiteName, PrivateKey] = {s: PrivateKey.generate(s) for s in SUITES}


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def no_verify(key: PublicKey) -> str:
    return f"{ALG[key.suite]} signature does not verify under key {key.key_id}"


def gmssl_verifier(key: PublicKey) -> Any:
    """A gmssl CryptSM2 for ``key``: X||Y hex set after construction.

    ``CryptSM2.__init__`` strips a ``04`` prefix with ``lstrip("04")``, which would
    also eat leading ``0``/``4`` digits of X.
    """
    c = gm_sm2.CryptSM2(private_key="", public_key="")
    c.public_key = key.raw[1:].hex()
    return c


# --- suite names and hashing ------------------------------------------------------


def test_suites_are_the_two_names() -> None:
    assert SUITES == ("sm", "intl")
    assert [parse_suite(s) for s in SUITES] == ["sm", "intl"]


@pytest.mark.parametrize("name", ["SM", "sm2", "", "intl ", "ed25519", "sha256"])
def test_parse_suite_rejects_unknown_names(name: str) -> None:
    with pytest.raises(UnsupportedSuiteError, match="unsupported crypto suite"):
        parse_suite(name)


@pytest.mark.parametrize(
    "call",
    [
        lambda: hash_fn("sm3"),  # type: ignore[arg-type]
        lambda: digest("x", b""),  # type: ignore[arg-type]
        lambda: PrivateKey.generate("ed25519"),  # type: ignore[arg-type]
        lambda: PublicKey.from_raw("SM", b"\x04" * 65),  # type: ignore[arg-type]
    ],
    ids=["hash_fn", "digest", "generate", "from_raw"],
)
def test_unknown_suite_is_refused_everywhere(call: Any) -> None:
    with pytest.raises(UnsupportedSuiteError):
        call()


HASH_KAT = load("hash_kat.json")["vectors"]


@pytest.mark.parametrize("vec", HASH_KAT, ids=lambda v: f"{v['hash']}-{len(v['message']) // 2}B")
def test_hash_known_answers(vec: dict[str, str]) -> None:
    message = bytes.fromhex(vec["message"])
    assert digest(vec["suite"], message).hex() == vec["digest"]  # type: ignore[arg-type]
    assert hash_fn(vec["suite"])(message).hex() == vec["digest"]  # type: ignore[arg-type]


@pytest.mark.parametrize("vec", [v for v in HASH_KAT if v["hash"] == "SM3"])
def test_sm3_fallback_known_answers(vec: dict[str, str]) -> None:
    assert suites._sm3_cryptography(bytes.fromhex(vec["message"])).hex() == vec["digest"]


def test_sm3_falls_back_to_cryptography_without_hashlib_sm3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_sm3(name: str, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"unsupported hash type {name}")

    monkeypatch.setattr(hashlib, "new", no_sm3)
    assert suites._pick_sm3() is suites._sm3_cryptography


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=200))
def test_sm3_agrees_with_cryptography_and_gmssl(data: bytes) -> None:
    ours = hash_fn("sm")(data).hex()
    assert suites._sm3_cryptography(data).hex() == ours
    assert gm_sm3.sm3_hash(list(data)) == ours  # fresh list: sm3_hash pads it in place


def test_hash_fn_is_stable_and_sized() -> None:
    for suite in SUITES:
        assert hash_fn(suite) is hash_fn(suite)
        assert len(digest(suite, b"x")) == 32


# --- Ed25519: RFC 8032 §7.1 ---------------------------------------------------------

RFC8032 = load("ed25519_rfc8032.json")["vectors"]


@pytest.mark.parametrize("vec", RFC8032, ids=lambda v: v["name"])
def test_ed25519_rfc8032_vectors(vec: dict[str, str]) -> None:
    key = PrivateKey.from_seed_ed25519(bytes.fromhex(vec["secret_key"]))
    message = bytes.fromhex(vec["message"])
    signature = bytes.fromhex(vec["signature"])

    assert key.public_key().hex() == vec["public_key"]
    assert key.sign(message) == signature  # Ed25519 is deterministic

    public = PublicKey.from_hex("intl", vec["public_key"])
    public.verify(signature, message)
    for bit in (0, 255, 256, 511):  # first and last bit of R and of S
        with pytest.raises(SignatureError, match=no_verify(public)):
            public.verify(flip(signature, bit), message)
    with pytest.raises(SignatureError, match=no_verify(public)):
        public.verify(signature, message + b"\x00")


def test_ed25519_rejects_malleated_s_plus_l() -> None:
    vec = RFC8032[0]
    public = PublicKey.from_hex("intl", vec["public_key"])
    sig = bytes.fromhex(vec["signature"])
    s = int.from_bytes(sig[32:], "little") + ED_L
    assert s < 2**256
    with pytest.raises(SignatureError):
        public.verify(sig[:32] + s.to_bytes(32, "little"), b"")


def test_ed25519_seed_must_be_32_bytes() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes, got 31"):
        PrivateKey.from_seed_ed25519(b"\x01" * 31)


# --- SM2 against gmssl ----------------------------------------------------------------

SM2_VEC = load("sm2_gmssl.json")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_crypto_vectors", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sm2_vector_file_is_what_the_generator_makes() -> None:
    assert _generator().build_vectors() == SM2_VEC


def test_sm2_gmssl_signature_verifies_here() -> None:
    public = PublicKey.from_hex("sm", SM2_VEC["public_key"])
    public.verify(bytes.fromhex(SM2_VEC["signature"]), bytes.fromhex(SM2_VEC["message"]))


def test_sm2_gmssl_public_key_matches_tongsuo_derivation() -> None:
    d = int(SM2_VEC["private_key"], 16)
    derived = t_ec.derive_private_key(d, t_ec.SM2()).public_key()
    raw = derived.public_bytes(t_ser.Encoding.X962, t_ser.PublicFormat.UncompressedPoint)
    assert raw.hex() == SM2_VEC["public_key"]


def test_sm2_curve_order_matches_gmssl() -> None:
    assert suites._SM2_N == SM2_N


def test_sm2_mutated_vectors_all_fail() -> None:
    public = PublicKey.from_hex("sm", SM2_VEC["public_key"])
    accepted = []
    for case in SM2_VEC["mutated"]:
        assert case["want_err"] is True
        try:
            public.verify(bytes.fromhex(case["signature"]), bytes.fromhex(case["message"]))
        except SignatureError as exc:
            assert str(exc).startswith(no_verify(public)), case["case"]
        else:
            accepted.append(case["case"])
    assert accepted == [], f"mutated SM2 vectors accepted: {accepted}"


def test_sm2_signature_binds_z_with_default_user_id() -> None:
    """Controls: the same key signs the same message but without Z, or with Z for ID
    ``carbon-ledger``. gmssl's own verifier shows both are well-formed SM2 signatures
    of the digest they were made for; ours must refuse both, so it computes e =
    SM3(Z_default_id || M) and nothing else."""
    public = PublicKey.from_hex("sm", SM2_VEC["public_key"])
    message = bytes.fromhex(SM2_VEC["message"])
    controls = {c["case"]: bytes.fromhex(c["signature"]) for c in SM2_VEC["mutated"]}
    gm = gmssl_verifier(public)
    plain_e = bytes.fromhex(gm_sm3.sm3_hash(list(message)))
    assert gm.verify(controls["control-no-z-digest"].hex(), plain_e)
    gen = _generator()
    other_z = bytes.fromhex(gen.z_digest(gen.OTHER_ID, public.raw[1:].hex()))
    other_e = bytes.fromhex(gm_sm3.sm3_hash(list(other_z + message)))
    assert gm.verify(controls["control-other-user-id"].hex(), other_e)
    for name in ("control-no-z-digest", "control-other-user-id"):
        with pytest.raises(SignatureError, match=no_verify(public)):
            public.verify(controls[name], message)


def test_sm2_our_signatures_verify_in_gmssl() -> None:
    for n in range(3):
        key = PrivateKey.generate("sm")
        message = f"reading {n}: 12.5 kWh".encode()
        sig = key.sign(message)
        gm = gmssl_verifier(key.public_key())
        assert gm.verify_with_sm3(sig.hex(), message)
        assert not gm.verify_with_sm3(sig.hex(), message + b"!")
        assert not gm.verify_with_sm3(flip(sig, 300).hex(), message)


def test_sm2_live_gmssl_signature_verifies_here() -> None:
    key = PrivateKey.generate("sm")
    d = key._backend.private_numbers().private_value
    gm = gmssl_verifier(key.public_key())
    gm.private_key = f"{d:064x}"
    message = b"gmssl signs live"
    sig = bytes.fromhex(gm.sign_with_sm3(message))
    key.public_key().verify(sig, message)
    with pytest.raises(SignatureError):
        key.public_key().verify(sig, message[:-1])


def test_sm2_signature_with_leading_zero_bytes_round_trips() -> None:
    """r or s below 2**248 must still be 32 bytes on the wire and verify everywhere."""
    key = KEYS["sm"]
    for n in range(20_000):
        message = n.to_bytes(4, "big")
        sig = key.sign(message)
        if sig[0] == 0 or sig[32] == 0:
            break
    else:
        pytest.fail("no signature with a short r or s in 20000 tries")
    assert len(sig) == 64
    key.public_key().verify(sig, message)
    assert gmssl_verifier(key.public_key()).verify_with_sm3(sig.hex(), message)


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("r-zero", lambda r, s: (0, s)),
        ("s-zero", lambda r, s: (r, 0)),
        ("r-equals-n", lambda r, s: (SM2_N, s)),
        ("s-equals-n", lambda r, s: (r, SM2_N)),
        ("r-all-ones", lambda r, s: (2**256 - 1, s)),
    ],
)
def test_sm2_r_s_out_of_range(case: str, make: Any) -> None:
    key = KEYS["sm"]
    sig = key.sign(b"m")
    r, s = make(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    bad = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    with pytest.raises(SignatureError, match=r"r or s is outside \[1, n-1\]"):
        key.public_key().verify(bad, b"m")


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("length", [0, 63, 65, 72])
def test_signature_length_is_exactly_64(suite: SuiteName, length: int) -> None:
    key = KEYS[suite].public_key()
    with pytest.raises(SignatureError, match=f"expected 64 bytes .*, got {length}"):
        key.verify(b"\x01" * length, b"m")


def test_sm2_der_signature_is_refused() -> None:
    """The wire form is r||s; the DER form the backends use internally is refused."""
    key = KEYS["sm"]
    sig = key.sign(b"m")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    with pytest.raises(SignatureError):
        key.public_key().verify(der, b"m")


# --- properties of both suites ------------------------------------------------------

suite_st = st.sampled_from(SUITES)


@given(suite_st, st.binary(max_size=300))
def test_sign_verify_round_trip(suite: SuiteName, message: bytes) -> None:
    key = KEYS[suite]
    sig = key.sign(message)
    assert len(sig) == 64
    key.public_key().verify(sig, message)


@given(suite_st, st.binary(max_size=100), st.integers(0, 511))
def test_signature_bit_flip_fails(suite: SuiteName, message: bytes, bit: int) -> None:
    key = KEYS[suite]
    public = key.public_key()
    with pytest.raises(SignatureError, match=no_verify(public)):
        public.verify(flip(key.sign(message), bit), message)


@given(suite_st, st.binary(min_size=1, max_size=100), st.data())
def test_message_bit_flip_fails(suite: SuiteName, message: bytes, data: st.DataObject) -> None:
    key = KEYS[suite]
    bit = data.draw(st.integers(0, len(message) * 8 - 1))
    with pytest.raises(SignatureError, match=no_verify(key.public_key())):
        key.public_key().verify(key.sign(message), flip(message, bit))


@given(suite_st)
def test_signature_from_other_key_fails(suite: SuiteName) -> None:
    other = PrivateKey.generate(suite)
    with pytest.raises(SignatureError):
        KEYS[suite].public_key().verify(other.sign(b"m"), b"m")


@settings(max_examples=30)
@given(suite_st, st.binary(max_size=50))
def test_pem_round_trip(suite: SuiteName, message: bytes) -> None:
    key = PrivateKey.generate(suite)
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    loaded = PrivateKey.from_pem(pem)
    assert loaded.suite == suite
    assert loaded.public_key() == key.public_key()
    assert loaded.to_pem() == pem
    key.public_key().verify(loaded.sign(message), message)


@settings(max_examples=30)
@given(suite_st)
def test_generated_public_keys_parse_back(suite: SuiteName) -> None:
    public = PrivateKey.generate(suite).public_key()
    again = PublicKey.from_raw(suite, public.raw)
    assert again == public and hash(again) == hash(public)
    assert PublicKey.from_hex(suite, public.hex()) == public


@given(suite_st, st.binary(max_size=100))
def test_from_raw_rejects_wrong_lengths(suite: SuiteName, raw: bytes) -> None:
    if len(raw) == (65 if suite == "sm" else 32):
        raw += b"\x00"
    with pytest.raises(KeyFormatError, match="must be"):
        PublicKey.from_raw(suite, raw)


@given(st.binary(min_size=64, max_size=64))
def test_sm2_from_raw_rejects_random_points(xy: bytes) -> None:
    x, y = int.from_bytes(xy[:32], "big"), int.from_bytes(xy[32:], "big")
    on_curve = (y * y - (x**3 - 3 * x + int(gm_sm2.default_ecc_table["b"], 16))) % SM2_P == 0
    if on_curve and x < SM2_P and y < SM2_P:  # probability ~2**-256
        return
    with pytest.raises(KeyFormatError):
        PublicKey.from_raw("sm", b"\x04" + xy)


def test_sm2_from_raw_rejects_off_curve_and_other_encodings() -> None:
    raw = KEYS["sm"].public_key().raw
    off = raw[:64] + bytes([raw[64] ^ 1])
    with pytest.raises(KeyFormatError, match="not a point on sm2p256v1"):
        PublicKey.from_raw("sm", off)
    compressed = bytes([2 + (raw[64] & 1)]) + raw[1:33]
    with pytest.raises(KeyFormatError, match="04"):
        PublicKey.from_raw("sm", compressed)
    with pytest.raises(KeyFormatError, match="04"):
        PublicKey.from_raw("sm", b"\x06" + raw[1:])  # hybrid form
    with pytest.raises(KeyFormatError):
        PublicKey.from_raw("sm", b"\x04" + SM2_P.to_bytes(32, "big") + raw[33:])


def _ed_y(y: int, x_odd: bool = False) -> bytes:
    return (y | (int(x_odd) << 255)).to_bytes(32, "little")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_ed_y(1), "small order"),  # identity: would verify (R=[S]B, S) on any message
        (_ed_y(ED_P - 1), "small order"),  # (0, -1), order 2
        (_ed_y(0), "small order"),  # (sqrt(-1), 0), order 4
        (_ed_y(0, x_odd=True), "small order"),
        (_ed_y(ED_P), "not canonical"),  # y = p, i.e. 0 non-canonically
        (_ed_y(ED_P + 1), "not canonical"),
        (b"\xff" * 32, "not canonical"),
    ],
    ids=["identity", "order-2", "order-4", "order-4-neg", "y=p", "y=p+1", "all-ff"],
)
def test_ed25519_from_raw_rejects_weak_or_non_canonical(raw: bytes, reason: str) -> None:
    with pytest.raises(KeyFormatError, match=reason):
        PublicKey.from_raw("intl", raw)


ED_D = -121665 * pow(121666, -1, ED_P) % ED_P


def _ed_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Twisted Edwards addition (RFC 8032 §5.1.4, affine form); test-only, slow."""
    (x1, y1), (x2, y2) = a, b
    t = ED_D * x1 * x2 * y1 * y2 % ED_P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, -1, ED_P) % ED_P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, ED_P) % ED_P
    return x3, y3


def _ed_mul(k: int, point: tuple[int, int]) -> tuple[int, int]:
    acc = (0, 1)
    while k:
        if k & 1:
            acc = _ed_add(acc, point)
        point, k = _ed_add(point, point), k >> 1
    return acc


def _ed_point_with_y(y: int) -> tuple[int, int] | None:
    """The curve point with this y and even x, if there is one (RFC 8032 §5.1.3)."""
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, -1, ED_P) % ED_P
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * pow(2, (ED_P - 1) // 4, ED_P) % ED_P
    if (x * x - x2) % ED_P:
        return None
    return (ED_P - x if x & 1 else x), y


def test_ed25519_from_raw_rejects_every_torsion_point() -> None:
    """[L]P for a point P with a torsion component generates all 8 small-order
    points, including the two of order 8 that only the X25519 probe catches."""
    generator = next(
        t
        for y in range(2, 100)
        if (p := _ed_point_with_y(y)) is not None
        and (t := _ed_mul(ED_L, p)) != (0, 1)
        and _ed_mul(4, t) != (0, 1)
    )
    torsion, point = set(), (0, 1)
    for _ in range(8):
        torsion.add(point)
        point = _ed_add(point, generator)
    assert len(torsion) == 8
    for x, y in torsion:
        with pytest.raises(KeyFormatError, match="small order"):
            PublicKey.from_raw("intl", _ed_y(y, x_odd=bool(x & 1)))


def test_ed25519_from_raw_rejects_off_curve_point() -> None:
    y = next(y for y in range(2, 100) if _ed_point_with_y(y) is None)
    with pytest.raises(KeyFormatError, match="not a point on the curve"):
        PublicKey.from_raw("intl", _ed_y(y))


@pytest.mark.parametrize("text", ["04AB", "0", "zz", " 04ab", "04ab\n", "0x04ab"])
def test_from_hex_requires_lowercase_hex_bytes(text: str) -> None:
    with pytest.raises(KeyFormatError, match="lowercase hex"):
        PublicKey.from_hex("sm", text)


def test_from_hex_rejects_uppercase_of_a_valid_key() -> None:
    public = KEYS["intl"].public_key()
    with pytest.raises(KeyFormatError):
        PublicKey.from_hex("intl", public.hex().upper())


@pytest.mark.parametrize("suite", SUITES)
def test_key_id_is_the_truncated_suite_hash(suite: SuiteName) -> None:
    public = KEYS[suite].public_key()
    assert public.key_id == digest(suite, public.raw)[:16].hex()
    assert len(public.key_id) == 32 and public.key_id == public.key_id.lower()
    expected = hashlib.new("sm3") if suite == "sm" else hashlib.sha256()
    expected.update(public.raw)
    assert public.key_id == expected.hexdigest()[:32]


def test_public_key_is_immutable_and_compares_by_suite_and_raw() -> None:
    public = KEYS["sm"].public_key()
    with pytest.raises(AttributeError):
        public.raw = b""  # type: ignore[misc]
    with pytest.raises(AttributeError):
        public.suite = "intl"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del public.raw
    assert public != KEYS["intl"].public_key()
    assert len({public, PublicKey.from_raw("sm", public.raw)}) == 1
    assert public != public.raw


def test_public_key_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        PublicKey.from_raw("intl", 32)  # type: ignore[arg-type]


# --- private key handling -------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_repr_does_not_leak_the_private_key(suite: SuiteName) -> None:
    key = PrivateKey.generate(suite)
    pem = key.to_pem()
    body = b"".join(pem.splitlines()[1:-1]).decode()
    if suite == "sm":
        secret = f"{key._backend.private_numbers().private_value:064x}"
    else:
        secret = key._backend.private_bytes_raw().hex()
    for text in (repr(key), str(key), f"{key!r:>10}"):
        assert secret not in text.lower()
        assert body[:16] not in text
        assert key.public_key().key_id in text
    assert repr(key) == f"PrivateKey(suite={suite!r}, key_id={key.public_key().key_id!r})"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_private_key_is_immutable() -> None:
    with pytest.raises(AttributeError):
        KEYS["sm"].suite = "intl"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data",
    [b"", b"not a pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_from_pem_rejects_garbage(data: bytes) -> None:
    with pytest.raises(KeyFormatError):
        PrivateKey.from_pem(data)


def test_from_pem_rejects_other_curves() -> None:
    p256 = c_ec.generate_private_key(c_ec.SECP256R1()).private_bytes(
        c_ser.Encoding.PEM, c_ser.PrivateFormat.PKCS8, c_ser.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="neither an Ed25519 nor an SM2 key"):
        PrivateKey.from_pem(p256)


@pytest.mark.parametrize("suite", SUITES)
def test_from_pem_rejects_encrypted_keys(suite: SuiteName) -> None:
    backend = KEYS[suite]._backend
    ser = t_ser if suite == "sm" else c_ser
    pem = backend.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(KeyFormatError):
        PrivateKey.from_pem(pem)


def test_from_pem_rejects_sm2_scalar_n_minus_1() -> None:
    """GB/T 32918.2 signing needs (1 + d)^-1 mod n, which d = n - 1 lacks."""
    pem = t_ec.derive_private_key(SM2_N - 1, t_ec.SM2()).private_bytes(
        t_ser.Encoding.PEM, t_ser.PrivateFormat.PKCS8, t_ser.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match=r"outside \[1, n-2\]"):
        PrivateKey.from_pem(pem)


def test_from_pem_accepts_sec1_sm2_key() -> None:
    """Keys written by ``openssl ecparam -genkey`` style tools (SEC1 ``EC PRIVATE KEY``)."""
    key = KEYS["sm"]
    sec1 = key._backend.private_bytes(
        t_ser.Encoding.PEM, t_ser.PrivateFormat.TraditionalOpenSSL, t_ser.NoEncryption()
    )
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert PrivateKey.from_pem(sec1).public_key() == key.public_key()
