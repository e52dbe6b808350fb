"""Generate ``tests/vectors/crypto/sm2_gmssl.json``: SM2 signatures made by pure gmssl.

Why: the product signs and verifies SM2 through tongsuopy, whose SM2 signature is
supposed to be GB/T 32918.2 with the user-identity digest Z for the default ID
``1234567812345678``. gmssl 3.2.2 is an independent, readable pure-Python
implementation that always applies that Z (``CryptSM2._sm3_z``). A signature it
makes that our code accepts, plus controls our code must *reject* (no Z, another
ID), pin the exact construction. The file also carries mutated signatures, one
per defect, like the Merkle vectors.

Everything is deterministic: the private key and every nonce K are SHA-256 of a
fixed label, reduced into ``[1, n-1]`` (the derivation is written into the file),
so ``tests/unit/carbon_protocol/test_suites.py`` checks that the committed file
equals :func:`build_vectors` and regenerating changes nothing::

    .venv/bin/python scripts/gen_crypto_vectors.py

gmssl quirks handled here: ``CryptSM2(public_key=...)`` strips a leading ``04``
with ``str.lstrip("04")``, which also eats leading ``0``/``4`` digits of X, so the
public key (X||Y hex, no prefix) is assigned after construction; signatures are
``r||s`` as 128 hex digits; ``gmssl.sm3.sm3_hash`` pads the list it is given in
place, so it always gets a fresh list. Test-only: nothing in the product imports
gmssl.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from gmssl import sm2, sm3  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "vectors" / "crypto" / "sm2_gmssl.json"

CURVE = sm2.default_ecc_table
N = int(CURVE["n"], 16)
DEFAULT_ID = b"1234567812345678"
OTHER_ID = b"carbon-ledger"
MESSAGE = b"carbon-ledger sm2 vector: signed by gmssl 3.2.2, verified by tongsuopy"


def scalar(label: str) -> int:
    """A fixed scalar in ``[1, n-1]``: ``SHA-256(label) mod (n - 1) + 1``."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (N - 1) + 1


def sm3_hex(data: bytes) -> str:
    """gmssl's SM3, on a fresh list because ``sm3_hash`` mutates its argument."""
    return str(sm3.sm3_hash(list(data)))


def z_digest(user_id: bytes, public_xy_hex: str) -> str:
    """GB/T 32918.2 §5.5: Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)."""
    entl = (len(user_id) * 8).to_bytes(2, "big")
    fields = CURVE["a"] + CURVE["b"] + CURVE["g"] + public_xy_hex
    return sm3_hex(entl + user_id + bytes.fromhex(fields))


def signer(private_key: int) -> tuple[Any, str]:
    """A gmssl CryptSM2 for ``private_key`` and its public key as X||Y hex."""
    c = sm2.CryptSM2(private_key=f"{private_key:064x}", public_key="")
    public_xy = str(c._kg(private_key, CURVE["g"]))
    c.public_key = public_xy  # see the module docstring: avoid lstrip("04")
    return c, public_xy


def flip_bit(hex_str: str, bit: int) -> str:
    """Flip bit ``bit`` (0 = most significant bit of the first byte)."""
    data = bytearray(bytes.fromhex(hex_str))
    data[bit // 8] ^= 0x80 >> (bit % 8)
    return data.hex()


def build_vectors() -> dict[str, Any]:
    """The vector file's content as a JSON-ready dict."""
    d = scalar("carbon-ledger/gen_crypto_vectors/sm2/private-key")
    c, public_xy = signer(d)
    k_main = f"{scalar('carbon-ledger/gen_crypto_vectors/sm2/k/main'):064x}"
    k_ctrl = f"{scalar('carbon-ledger/gen_crypto_vectors/sm2/k/controls'):064x}"

    z = z_digest(DEFAULT_ID, public_xy)
    e = sm3_hex(bytes.fromhex(z) + MESSAGE)
    assert e == c._sm3_z(MESSAGE), "gmssl's own Z differs from GB/T 32918.2 §5.5"
    signature = str(c.sign_with_sm3(MESSAGE, k_main))
    assert c.verify_with_sm3(signature, MESSAGE)

    r_hex, s_hex = signature[:64], signature[64:]
    mutated = [
        ("message-last-byte-xor-01", MESSAGE[:-1] + bytes([MESSAGE[-1] ^ 1]), signature),
        ("message-empty", b"", signature),
        ("signature-r-bit-@0", MESSAGE, flip_bit(signature, 0)),
        ("signature-s-bit-@511", MESSAGE, flip_bit(signature, 511)),
        ("signature-swapped-r-s", MESSAGE, s_hex + r_hex),
        ("signature-s-equals-n", MESSAGE, r_hex + f"{N:064x}"),
        ("signature-r-zero", MESSAGE, "00" * 32 + s_hex),
        ("signature-truncated", MESSAGE, signature[:-2]),
        ("signature-trailing-garbage", MESSAGE, signature + "00"),
        # Controls: well-formed SM2 signatures of MESSAGE by the same key that differ
        # only in what is signed, so accepting one means Z or its ID is wrong.
        ("control-no-z-digest", MESSAGE, c.sign(bytes.fromhex(sm3_hex(MESSAGE)), k_ctrl)),
        (
            "control-other-user-id",
            MESSAGE,
            c.sign(
                bytes.fromhex(sm3_hex(bytes.fromhex(z_digest(OTHER_ID, public_xy)) + MESSAGE)),
                k_ctrl,
            ),
        ),
    ]
    return {
        "desc": "SM2 signature per GB/T 32918.2 (Z with the default user ID, SM3) "
        "made by pure-Python gmssl, and mutations of it that must fail",
        "produced_by": {
            "script": "scripts/gen_crypto_vectors.py",
            "library": "gmssl 3.2.2",
            "call": "CryptSM2.sign_with_sm3(message, k)",
            "private_key": "SHA-256('carbon-ledger/gen_crypto_vectors/sm2/private-key') "
            "mod (n-1) + 1",
            "k": "SHA-256('carbon-ledger/gen_crypto_vectors/sm2/k/main') mod (n-1) + 1",
        },
        "curve": "sm2p256v1",
        "user_id": DEFAULT_ID.decode(),
        "private_key": f"{d:064x}",
        "public_key": "04" + public_xy,
        "message": MESSAGE.hex(),
        "k": k_main,
        "z": z,
        "e": e,
        "signature": signature,
        "mutated": [
            {"case": case, "message": msg.hex(), "signature": sig, "want_err": True}
            for case, msg, sig in mutated
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``gen_crypto_vectors.py [--out FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vector file")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(build_vectors(), indent=2) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
