"""Merkle proofs against data: known answers and the generated vector corpus.

Known answers pin the RFC 6962 / RFC 9162 construction itself (the empty root, the
empty leaf and the Certificate Transparency test tree of 8 leaves). The corpus under
``tests/vectors/merkle/`` is produced by ``scripts/gen_proof_vectors.py``; one test
checks it has not drifted from the generator, another runs every file and reports
all failures at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from carbon_protocol.errors import ProofError
from carbon_protocol.merkle import (
    Frontier,
    HashFn,
    consistency_proof,
    empty_root,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "merkle"
GENERATOR = REPO / "scripts" / "gen_proof_vectors.py"

HASHES: dict[str, HashFn] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sm3": lambda data: hashlib.new("sm3", data).digest(),
}
sha256 = HASHES["sha256"]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proof_vectors", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ known answers

# Certificate Transparency's reference test tree (RFC 6962 test data, also used by
# transparency-dev/merkle): leaf inputs and the root after each of the 8 appends.
CT_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, size) -> inclusion proof, and (size1, size2) -> consistency proof, from the
# same CT test data.
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (1, 8): CT_INCLUSION[(0, 8)],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def test_known_answer_empty_tree_and_empty_leaf() -> None:
    assert empty_root(sha256).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert root_from_leaf_hashes(sha256, []) == empty_root(sha256)
    assert Frontier(sha256).root() == empty_root(sha256)
    assert leaf_hash(sha256, b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


def test_known_answer_sm3_suite() -> None:
    # GB/T 32905-2016 example 1 and the empty message: the injected SM3 is the real one.
    sm3 = HASHES["sm3"]
    assert sm3(b"abc").hex() == ("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    assert empty_root(sm3).hex() == (
        "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
    )


def test_known_answer_ct_tree_roots() -> None:
    leaves = [leaf_hash(sha256, data) for data in CT_LEAVES]
    frontier = Frontier(sha256)
    for size, want in enumerate(CT_ROOTS, start=1):
        frontier.append(leaves[size - 1])
        assert root_from_leaf_hashes(sha256, leaves[:size]).hex() == want, size
        assert frontier.root().hex() == want, size


@pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION))
def test_known_answer_ct_inclusion(index: int, size: int) -> None:
    leaves = [leaf_hash(sha256, data) for data in CT_LEAVES[:size]]
    proof = inclusion_proof(sha256, index, leaves)
    assert [p.hex() for p in proof] == CT_INCLUSION[(index, size)]
    root = bytes.fromhex(CT_ROOTS[size - 1])
    verify_inclusion(sha256, index, size, leaves[index], proof, root)


@pytest.mark.parametrize(("size1", "size2"), sorted(CT_CONSISTENCY))
def test_known_answer_ct_consistency(size1: int, size2: int) -> None:
    leaves = [leaf_hash(sha256, data) for data in CT_LEAVES[:size2]]
    proof = consistency_proof(sha256, size1, leaves)
    assert [p.hex() for p in proof] == CT_CONSISTENCY[(size1, size2)]
    root1 = bytes.fromhex(CT_ROOTS[size1 - 1])
    root2 = bytes.fromhex(CT_ROOTS[size2 - 1])
    verify_consistency(sha256, size1, size2, proof, root1, root2)


# ------------------------------------------------------------------- vector corpus

INCLUSION_KEYS = {"desc", "hash", "index", "size", "leaf_hash", "proof", "root", "want_err"}
CONSISTENCY_KEYS = {"desc", "hash", "size1", "size2", "proof", "root1", "root2", "want_err"}


def _run_inclusion(v: dict[str, Any]) -> None:
    h = HASHES[v["hash"]]
    proof = [bytes.fromhex(p) for p in v["proof"]]
    leaf = bytes.fromhex(v["leaf_hash"])
    root = bytes.fromhex(v["root"])
    verify_inclusion(h, v["index"], v["size"], leaf, proof, root)
    # A proof that verifies also computes the root directly.
    assert root_from_inclusion_proof(h, v["index"], v["size"], leaf, proof) == root


def _run_consistency(v: dict[str, Any]) -> None:
    h = HASHES[v["hash"]]
    proof = [bytes.fromhex(p) for p in v["proof"]]
    verify_consistency(
        h, v["size1"], v["size2"], proof, bytes.fromhex(v["root1"]), bytes.fromhex(v["root2"])
    )


RUNNERS: dict[str, tuple[set[str], Callable[[dict[str, Any]], None]]] = {
    "inclusion": (INCLUSION_KEYS, _run_inclusion),
    "consistency": (CONSISTENCY_KEYS, _run_consistency),
}


def _check_vector(path: Path) -> str | None:
    """Run one vector file; return a failure description, or None if it behaved."""
    kind = path.relative_to(VECTORS).parts[0]
    keys, run = RUNNERS[kind]
    vector = json.loads(path.read_text(encoding="utf-8"))
    if set(vector) != keys:
        return f"keys {sorted(vector)}, expected {sorted(keys)}"
    if vector["hash"] != path.relative_to(VECTORS).parts[1]:
        return f"hash {vector['hash']!r} does not match its directory"
    try:
        run(vector)
    except ProofError as exc:
        if not vector["want_err"]:
            return f"valid vector ({vector['desc']}) raised ProofError: {exc}"
        return None
    except Exception as exc:  # any other exception is a failure to report, not a crash
        return f"raised {type(exc).__name__} instead of ProofError: {exc}"
    if vector["want_err"]:
        return f"invalid vector ({vector['desc']}) verified"
    return None


def _vector_files() -> list[Path]:
    return sorted(VECTORS.rglob("*.json"))


def test_vector_corpus_is_present() -> None:
    files = _vector_files()
    assert len(files) > 300
    kinds = {(p.relative_to(VECTORS).parts[0], p.relative_to(VECTORS).parts[1]) for p in files}
    assert kinds == {(k, h) for k in RUNNERS for h in HASHES}
    assert sum(p.name == "good.json" for p in files) >= 40


def test_every_vector() -> None:
    failures = []
    for path in _vector_files():
        problem = _check_vector(path)
        if problem is not None:
            failures.append(f"{path.relative_to(VECTORS)}: {problem}")
    assert not failures, f"{len(failures)} vector(s) failed:\n" + "\n".join(failures)


def test_vectors_match_generator() -> None:
    generated: dict[str, str] = _load_generator().build_vectors()
    on_disk = {
        p.relative_to(VECTORS).as_posix(): p.read_text(encoding="utf-8") for p in _vector_files()
    }
    missing = sorted(set(generated) - set(on_disk))
    extra = sorted(set(on_disk) - set(generated))
    changed = sorted(k for k in set(generated) & set(on_disk) if generated[k] != on_disk[k])
    assert not (missing or extra or changed), (
        "tests/vectors/merkle drifted from scripts/gen_proof_vectors.py; rerun it.\n"
        f"missing: {missing}\nextra: {extra}\nchanged: {changed}"
    )
