"""The leaf-set proof: any set of leaves of an RFC 9162 tree, proven by the hashes of the
maximal subtrees holding none of them, checked against the root computed directly."""

from __future__ import annotations

import random

import pytest

from carbon_protocol.errors import ProtocolError
from carbon_protocol.inventory import leaf_set_proof_nodes, root_from_leaf_set
from carbon_protocol.merkle import leaf_hash, root_from_leaf_hashes
from carbon_protocol.suites import hash_fn

H = hash_fn("sm")


def _tree(size: int) -> list[bytes]:
    return [leaf_hash(H, f"leaf {i}".encode()) for i in range(size)]


@pytest.mark.parametrize("seed", range(40))
def test_random_leaf_sets_prove_the_root(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 300)
    leaves = _tree(size)
    chosen = sorted(rng.sample(range(size), rng.randint(1, size)))
    nodes = leaf_set_proof_nodes(size, chosen)
    proof = [root_from_leaf_hashes(H, leaves[lo:hi]) for lo, hi in nodes]
    root = root_from_leaf_set(H, size, {i: leaves[i] for i in chosen}, proof)
    assert root == root_from_leaf_hashes(H, leaves)


def test_a_changed_leaf_or_a_short_proof_fails() -> None:
    leaves = _tree(37)
    chosen = [3, 4, 5, 20]
    proof = [root_from_leaf_hashes(H, leaves[lo:hi])
             for lo, hi in leaf_set_proof_nodes(37, chosen)]
    known = {i: leaves[i] for i in chosen}
    known[20] = leaf_hash(H, b"tampered")
    assert root_from_leaf_set(H, 37, known, proof) != root_from_leaf_hashes(H, leaves)
    with pytest.raises(ProtocolError, match="too few"):
        root_from_leaf_set(H, 37, {i: leaves[i] for i in chosen}, proof[:-1])
    with pytest.raises(ProtocolError, match="were needed"):
        root_from_leaf_set(H, 37, {i: leaves[i] for i in chosen}, [*proof, proof[0]])
    with pytest.raises(ProtocolError, match="must lie"):
        root_from_leaf_set(H, 37, {37: leaves[0]}, proof)


def test_a_contiguous_range_needs_few_hashes() -> None:
    # 1,000 consecutive leaves of a 100,000-leaf tree: a handful of hashes per edge.
    assert len(leaf_set_proof_nodes(100_000, list(range(40_000, 41_000)))) <= 2 * 17
