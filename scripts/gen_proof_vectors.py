"""Generate the Merkle proof test vectors under ``tests/vectors/merkle/``.

Writes ``{inclusion,consistency}/<hash>/<size>/<case>.json``: for each tree size, one
good proof built by the RFC 9162 reference constructions in
:mod:`carbon_protocol.merkle`, and one file per mutation, named by its defect
(``modified-proof[0]-bit-@3``, ``leaf-index-plus-1``, ``swapped-roots``...).

The output is deterministic (leaf ``i`` is ``leaf_hash(h, b"leaf-<i>")``), and
``tests/unit/carbon_protocol/test_merkle_vectors.py`` checks that the committed files
equal what :func:`build_vectors` returns, so regenerate after any change here::

    .venv/bin/python scripts/gen_proof_vectors.py

``want_err`` is decided here, not by the verifier under test. Every mutation of a
hash or of the leaf index breaks the proof. A mutated tree size breaks it only if the
RFC 9162 proof shape changes (see :func:`inclusion_shape`): proofs do not bind the
tree size, so a size with the same shape verifies, and the vector pins that with
``want_err: false`` and says so in ``desc``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carbon_protocol.merkle import (
    HashFn,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
)

HASHES: dict[str, HashFn] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sm3": lambda data: hashlib.new("sm3", data).digest(),
}
"""The log's two hash suites, by the name used in the vector files."""

SIZES: dict[str, tuple[int, ...]] = {
    "sha256": (1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 100),
    # SM3 shares all the tree logic; a few sizes (power of two, odd, deep) pin the suite.
    "sm3": (1, 5, 8, 13, 33),
}

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "merkle"

Vector = dict[str, Any]


def leaf_hashes(h: HashFn, count: int) -> list[bytes]:
    """The fixed leaves of every vector tree: ``leaf_hash(h, b"leaf-<i>")``."""
    return [leaf_hash(h, b"leaf-%d" % i) for i in range(count)]


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_shape(index: int, size: int) -> tuple[str, ...] | None:
    """Side of each PATH element ("L" or "R" of the running hash), leaf first.

    Follows the recursion of RFC 9162 §2.1.3.1 literally. Two claims with the same
    shape compute the same root from the same proof. ``None`` if no proof exists.
    """
    if not 0 <= index < size:
        return None
    if size == 1:
        return ()
    k = _split(size)
    if index < k:
        below = inclusion_shape(index, k)
        side = "R"
    else:
        below = inclusion_shape(index - k, size - k)
        side = "L"
    assert below is not None
    return (*below, side)


def consistency_shape(size1: int, size2: int, complete: bool = True) -> tuple[str, ...] | None:
    """Kind of each PROOF element, following RFC 9162 §2.1.4.1's SUBPROOF recursion.

    "seed" is the first subtree, "L" a left sibling (in both trees), "R" a right
    sibling (in the second tree only). ``None`` if no proof exists (``size1 == 0`` is
    handled by the caller; ``size1 > size2`` never verifies).
    """
    if not 0 < size1 <= size2:
        return None
    if size1 == size2:
        return () if complete else ("seed",)
    k = _split(size2)
    if size1 <= k:
        below = consistency_shape(size1, k, complete)
        side = "R"
    else:
        below = consistency_shape(size1 - k, size2 - k, False)
        side = "L"
    assert below is not None
    return (*below, side)


def _flip_bit3(value: str) -> str:
    raw = bytearray(bytes.fromhex(value))
    raw[0] ^= 0x08
    return raw.hex()


Mutant = Callable[..., None]


def _with_proof_mutants(good: Vector, h: HashFn) -> tuple[dict[str, Vector], Mutant]:
    """The good case, the mutations of its proof list common to both proof kinds, and a
    ``mutant(case, desc, want_err=True, **changes)`` adder for the kind-specific ones."""
    cases: dict[str, Vector] = {"good": good}

    def mutant(case: str, desc: str, want_err: bool = True, **changes: Any) -> None:
        cases[case] = {**good, **changes, "desc": desc, "want_err": want_err}

    proof: list[str] = good["proof"]
    if proof:
        mutant(
            "modified-proof[0]-bit-@3",
            "bit 3 (0x08) of byte 0 of proof[0] flipped",
            proof=[_flip_bit3(proof[0]), *proof[1:]],
        )
        mutant("missing-last", "last proof hash removed", proof=proof[:-1])
    mutant(
        "trailing-garbage",
        "an extra hash appended to the proof",
        proof=[*proof, h(b"trailing-garbage").hex()],
    )
    return cases, mutant


def _inclusion_vectors(name: str, h: HashFn, size: int) -> dict[str, Vector]:
    leaves = leaf_hashes(h, size)
    index = size * 2 // 3
    good: Vector = {
        "desc": f"valid inclusion proof of leaf {index} in a tree of {size} leaves",
        "hash": name,
        "index": index,
        "size": size,
        "leaf_hash": leaves[index].hex(),
        "proof": [p.hex() for p in inclusion_proof(h, index, leaves)],
        "root": root_from_leaf_hashes(h, leaves).hex(),
        "want_err": False,
    }
    cases, mutant = _with_proof_mutants(good, h)
    mutant("leaf-index-plus-1", f"leaf index {index + 1} instead of {index}", index=index + 1)
    if index > 0:
        mutant("leaf-index-minus-1", f"leaf index {index - 1} instead of {index}", index=index - 1)
    for case, wrong in (
        ("tree-size-plus-1", size + 1),
        ("tree-size-minus-1", size - 1),
        ("tree-size-mul-2", size * 2),
    ):
        same = inclusion_shape(index, wrong) == inclusion_shape(index, size)
        desc = f"tree size {wrong} instead of {size}"
        if same:
            desc += (
                "; the RFC 9162 proof shape is the same, so it verifies: proofs do not "
                "bind the tree size, the signed tree head does"
            )
        mutant(case, desc, want_err=not same, size=wrong)
    mutant("modified-root", "bit 3 of byte 0 of the root flipped", root=_flip_bit3(good["root"]))
    mutant(
        "modified-leaf",
        "bit 3 of byte 0 of the leaf hash flipped",
        leaf_hash=_flip_bit3(good["leaf_hash"]),
    )
    return cases


def _consistency_vectors(name: str, h: HashFn, size2: int) -> dict[str, Vector]:
    leaves = leaf_hashes(h, size2)
    size1 = max(1, size2 * 3 // 5)
    good: Vector = {
        "desc": f"valid consistency proof from tree size {size1} to {size2}",
        "hash": name,
        "size1": size1,
        "size2": size2,
        "proof": [p.hex() for p in consistency_proof(h, size1, leaves)],
        "root1": root_from_leaf_hashes(h, leaves[:size1]).hex(),
        "root2": root_from_leaf_hashes(h, leaves).hex(),
        "want_err": False,
    }
    cases, mutant = _with_proof_mutants(good, h)
    for case, wrong1, wrong2 in (
        ("size1-plus-1", size1 + 1, size2),
        ("size1-minus-1", size1 - 1, size2),
        ("tree-size-plus-1", size1, size2 + 1),
        ("tree-size-mul-2", size1, size2 * 2),
    ):
        # size1 == 0 verifies only with an empty proof and the empty-tree root1,
        # which root1 of a non-empty tree never is.
        same = wrong1 > 0 and consistency_shape(wrong1, wrong2) == consistency_shape(size1, size2)
        desc = f"sizes ({wrong1}, {wrong2}) instead of ({size1}, {size2})"
        if same:
            desc += (
                "; the RFC 9162 proof shape is the same, so it verifies: proofs do not "
                "bind the tree sizes, the signed tree heads do"
            )
        mutant(case, desc, want_err=not same, size1=wrong1, size2=wrong2)
    mutant("modified-root1", "bit 3 of byte 0 of root1 flipped", root1=_flip_bit3(good["root1"]))
    mutant("modified-root2", "bit 3 of byte 0 of root2 flipped", root2=_flip_bit3(good["root2"]))
    if good["root1"] != good["root2"]:
        mutant("swapped-roots", "root1 and root2 swapped", root1=good["root2"], root2=good["root1"])
    return cases


def build_vectors() -> dict[str, str]:
    """Return every vector file as ``{relative posix path: JSON text}``."""
    builders: dict[str, Callable[[str, HashFn, int], dict[str, Vector]]] = {
        "inclusion": _inclusion_vectors,
        "consistency": _consistency_vectors,
    }
    files: dict[str, str] = {}
    for kind, build in builders.items():
        for name, h in HASHES.items():
            for size in SIZES[name]:
                for case, vector in build(name, h, size).items():
                    path = f"{kind}/{name}/{size}/{case}.json"
                    files[path] = json.dumps(vector, indent=2) + "\n"
    return files


def write_vectors(out: Path) -> tuple[int, int]:
    """Write the vectors under ``out``, deleting stale ``*.json`` files there.

    Returns ``(files written, files deleted)``.
    """
    files = build_vectors()
    stale = (
        [path for path in out.rglob("*.json") if path.relative_to(out).as_posix() not in files]
        if out.exists()
        else []
    )
    for path in stale:
        path.unlink()
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return len(files), len(stale)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``gen_proof_vectors.py [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vector directory")
    args = parser.parse_args(argv)
    written, deleted = write_vectors(args.out)
    sys.stderr.write(f"wrote {written} vector files to {args.out}, deleted {deleted} stale\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
