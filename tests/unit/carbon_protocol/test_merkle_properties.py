"""Property tests for :mod:`carbon_protocol.merkle` (RFC 9162 §2.1).

The reference constructions (the RFC's recursive PATH / PROOF / MTH) are the oracle:

* every inclusion and consistency proof they build verifies;
* a single flipped bit anywhere (leaf hash, any proof hash, either root) fails, and
  so does any other leaf index;
* another tree size fails exactly when the RFC proof *shape* changes (a proof does not
  bind the size; :func:`_inclusion_shape` / :func:`_consistency_shape` follow the
  RFC recursions and decide);
* proofs assembled from storage (``*_proof_ranges`` + ``perfect_subtrees`` +
  ``range_hash`` over the nodes ``Frontier.append`` emitted) equal the reference;
* ``Frontier`` has the reference root at every size and resumes from stored hashes.
"""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from carbon_protocol.errors import EncodingError, ProofError
from carbon_protocol.merkle import (
    Frontier,
    HashFn,
    consistency_proof,
    consistency_proof_ranges,
    empty_root,
    inclusion_proof,
    inclusion_proof_ranges,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    range_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

HASHES: dict[str, HashFn] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sm3": lambda data: hashlib.new("sm3", data).digest(),
}
MAX_LEAVES = 2000

PROPERTY = settings(max_examples=150, deadline=None)

Store = dict[tuple[int, int], bytes]


# ----------------------------------------------------------------------- helpers


@cache
def leaves(name: str) -> tuple[bytes, ...]:
    """Leaf hashes ``leaf_hash(h, b"leaf-<i>")`` for ``i < MAX_LEAVES``."""
    h = HASHES[name]
    return tuple(leaf_hash(h, b"leaf-%d" % i) for i in range(MAX_LEAVES))


@cache
def store(name: str) -> Store:
    """Every perfect node of the ``MAX_LEAVES`` tree, as ``Frontier.append`` emitted it."""
    frontier = Frontier(HASHES[name])
    nodes: Store = {}
    for leaf in leaves(name):
        for level, index, value in frontier.append(leaf):
            assert (level, index) not in nodes
            nodes[(level, index)] = value
    return nodes


@cache
def reference_root(name: str, size: int) -> bytes:
    return root_from_leaf_hashes(HASHES[name], leaves(name)[:size])


def stored_range_hash(name: str, start: int, end: int) -> bytes:
    nodes = store(name)
    return range_hash(HASHES[name], [nodes[node] for node in perfect_subtrees(start, end)])


def flip(value: bytes, bit: int) -> bytes:
    raw = bytearray(value)
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return bytes(raw)


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_shape(index: int, size: int) -> tuple[str, ...] | None:
    """Sides of the PATH elements, leaf first, by RFC 9162 §2.1.3.1's recursion."""
    if not 0 <= index < size:
        return None
    if size == 1:
        return ()
    k = _split(size)
    below = _inclusion_shape(index, k) if index < k else _inclusion_shape(index - k, size - k)
    assert below is not None
    return (*below, "R" if index < k else "L")


def _consistency_shape(size1: int, size2: int, complete: bool = True) -> tuple[str, ...] | None:
    """Kinds of the PROOF elements, by RFC 9162 §2.1.4.1's SUBPROOF recursion."""
    if not 0 < size1 <= size2:
        return None
    if size1 == size2:
        return () if complete else ("seed",)
    k = _split(size2)
    if size1 <= k:
        below = _consistency_shape(size1, k, complete)
    else:
        below = _consistency_shape(size1 - k, size2 - k, False)
    assert below is not None
    return (*below, "R" if size1 <= k else "L")


# -------------------------------------------------------------------- strategies

hash_names = st.sampled_from(sorted(HASHES))
tree_sizes = st.one_of(st.integers(1, 300), st.integers(1, MAX_LEAVES))


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[str, int, int]:
    size = draw(tree_sizes)
    event("size > 300" if size > 300 else "size <= 300")
    return draw(hash_names), draw(st.integers(0, size - 1)), size


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[str, int, int]:
    size2 = draw(tree_sizes)
    size1 = draw(st.one_of(st.integers(1, size2), st.just(size2)))
    return draw(hash_names), size1, size2


def other_sizes(size: int) -> st.SearchStrategy[int]:
    """A size != ``size``: nearby (where equal proof shapes hide) or anywhere."""
    near = st.integers(max(0, size - 4), size + 3)
    anywhere = st.integers(0, 2 * size + 1)
    return st.one_of(near, anywhere).map(lambda s: s + 1 if s >= size else s)


# ------------------------------------------------------------------- inclusion


@PROPERTY
@given(inclusion_cases())
def test_inclusion_proof_verifies(case: tuple[str, int, int]) -> None:
    name, index, size = case
    h = HASHES[name]
    proof = inclusion_proof(h, index, leaves(name)[:size])
    root = reference_root(name, size)
    verify_inclusion(h, index, size, leaves(name)[index], proof, root)
    assert root_from_inclusion_proof(h, index, size, leaves(name)[index], proof) == root


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_any_bit_flip_fails(case: tuple[str, int, int], data: st.DataObject) -> None:
    name, index, size = case
    h = HASHES[name]
    leaf = leaves(name)[index]
    proof = inclusion_proof(h, index, leaves(name)[:size])
    root = reference_root(name, size)
    target = data.draw(st.sampled_from(["leaf", "root", *range(len(proof))]), label="target")
    bit = data.draw(st.integers(0, 8 * len(root) - 1), label="bit")
    if target == "leaf":
        leaf = flip(leaf, bit)
    elif target == "root":
        root = flip(root, bit)
    else:
        assert isinstance(target, int)
        proof[target] = flip(proof[target], bit)
    with pytest.raises(ProofError):
        verify_inclusion(h, index, size, leaf, proof, root)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_other_index_fails(case: tuple[str, int, int], data: st.DataObject) -> None:
    name, index, size = case
    h = HASHES[name]
    proof = inclusion_proof(h, index, leaves(name)[:size])
    wrong = data.draw(other_sizes(index), label="wrong index")
    with pytest.raises(ProofError):
        verify_inclusion(h, wrong, size, leaves(name)[index], proof, reference_root(name, size))


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_other_size_fails_unless_same_shape(
    case: tuple[str, int, int], data: st.DataObject
) -> None:
    name, index, size = case
    h = HASHES[name]
    leaf = leaves(name)[index]
    proof = inclusion_proof(h, index, leaves(name)[:size])
    root = reference_root(name, size)
    wrong = data.draw(other_sizes(size), label="wrong size")
    if _inclusion_shape(index, wrong) == _inclusion_shape(index, size):
        event("another size with the same proof shape verifies")
        verify_inclusion(h, index, wrong, leaf, proof, root)
    else:
        with pytest.raises(ProofError):
            verify_inclusion(h, index, wrong, leaf, proof, root)


@PROPERTY
@given(inclusion_cases())
def test_inclusion_from_storage_equals_reference(case: tuple[str, int, int]) -> None:
    name, index, size = case
    want = inclusion_proof(HASHES[name], index, leaves(name)[:size])
    got = [stored_range_hash(name, a, b) for a, b in inclusion_proof_ranges(index, size)]
    assert got == want


# ----------------------------------------------------------------- consistency


@PROPERTY
@given(consistency_cases())
def test_consistency_proof_verifies(case: tuple[str, int, int]) -> None:
    name, size1, size2 = case
    h = HASHES[name]
    proof = consistency_proof(h, size1, leaves(name)[:size2])
    assert (proof == []) == (size1 == size2)
    verify_consistency(
        h, size1, size2, proof, reference_root(name, size1), reference_root(name, size2)
    )


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_any_bit_flip_fails(case: tuple[str, int, int], data: st.DataObject) -> None:
    name, size1, size2 = case
    h = HASHES[name]
    proof = consistency_proof(h, size1, leaves(name)[:size2])
    root1, root2 = reference_root(name, size1), reference_root(name, size2)
    target = data.draw(st.sampled_from(["root1", "root2", *range(len(proof))]), label="target")
    bit = data.draw(st.integers(0, 8 * len(root1) - 1), label="bit")
    if target == "root1":
        root1 = flip(root1, bit)
    elif target == "root2":
        root2 = flip(root2, bit)
    else:
        assert isinstance(target, int)
        proof[target] = flip(proof[target], bit)
    with pytest.raises(ProofError):
        verify_consistency(h, size1, size2, proof, root1, root2)


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_other_sizes_fail_unless_same_shape(
    case: tuple[str, int, int], data: st.DataObject
) -> None:
    name, size1, size2 = case
    h = HASHES[name]
    proof = consistency_proof(h, size1, leaves(name)[:size2])
    root1, root2 = reference_root(name, size1), reference_root(name, size2)
    which = data.draw(st.sampled_from(["size1", "size2", "both"]), label="which")
    wrong1 = data.draw(other_sizes(size1), label="size1") if which != "size2" else size1
    wrong2 = data.draw(other_sizes(size2), label="size2") if which != "size1" else size2
    # wrong1 == 0 verifies only with an empty proof and root1 == h(""), never the case here.
    same = wrong1 > 0 and _consistency_shape(wrong1, wrong2) == _consistency_shape(size1, size2)
    if same:
        event("other sizes with the same proof shape verify")
        verify_consistency(h, wrong1, wrong2, proof, root1, root2)
    else:
        with pytest.raises(ProofError):
            verify_consistency(h, wrong1, wrong2, proof, root1, root2)


@PROPERTY
@given(consistency_cases())
def test_consistency_swapped_roots_fail(case: tuple[str, int, int]) -> None:
    name, size1, size2 = case
    h = HASHES[name]
    proof = consistency_proof(h, size1, leaves(name)[:size2])
    root1, root2 = reference_root(name, size1), reference_root(name, size2)
    if size1 == size2:
        verify_consistency(h, size1, size2, proof, root2, root1)  # the same root twice
    else:
        with pytest.raises(ProofError):
            verify_consistency(h, size1, size2, proof, root2, root1)


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_truncated_or_extended_proof_fails(
    case: tuple[str, int, int], data: st.DataObject
) -> None:
    name, size1, size2 = case
    h = HASHES[name]
    proof = consistency_proof(h, size1, leaves(name)[:size2])
    root1, root2 = reference_root(name, size1), reference_root(name, size2)
    drop: bool = data.draw(st.booleans(), label="drop") if proof else False
    if drop:
        at = data.draw(st.integers(0, len(proof) - 1), label="dropped")
        bad = proof[:at] + proof[at + 1 :]
    else:
        at = data.draw(st.integers(0, len(proof)), label="inserted")
        bad = [*proof[:at], leaves(name)[0], *proof[at:]]
    with pytest.raises(ProofError, match="expected .*consistency proof"):
        verify_consistency(h, size1, size2, bad, root1, root2)


@PROPERTY
@given(consistency_cases())
def test_consistency_from_storage_equals_reference(case: tuple[str, int, int]) -> None:
    name, size1, size2 = case
    want = consistency_proof(HASHES[name], size1, leaves(name)[:size2])
    got = [stored_range_hash(name, a, b) for a, b in consistency_proof_ranges(size1, size2)]
    assert got == want


# ------------------------------------------------------------- storage layout


@PROPERTY
@given(st.integers(0, 20), st.integers(0, 1000), st.data())
def test_perfect_subtrees_tile_a_right_edge_range(
    level: int, index: int, data: st.DataObject
) -> None:
    start = index << level
    end = data.draw(st.integers(start + 1, start + (1 << level)), label="end")
    nodes = perfect_subtrees(start, end)
    position = start
    for i, (node_level, node_index) in enumerate(nodes):
        assert node_index << node_level == position, "nodes must be contiguous and aligned"
        if i:
            assert node_level < nodes[i - 1][0], "levels must strictly decrease"
        position += 1 << node_level
    assert position == end
    if end - start == 1 << level:
        assert nodes == [(level, index)]


@PROPERTY
@given(st.integers(0, 4000), st.integers(1, 4000))
def test_perfect_subtrees_rejects_ranges_that_are_no_tree_node(start: int, width: int) -> None:
    aligned = start % (1 << (width - 1).bit_length()) == 0
    if aligned:
        assert perfect_subtrees(start, start + width)
    else:
        with pytest.raises(EncodingError, match="neither a perfect aligned subtree"):
            perfect_subtrees(start, start + width)


@PROPERTY
@given(hash_names, st.integers(0, 300), st.data())
def test_range_hash_of_stored_nodes_is_the_range_mth(
    name: str, start: int, data: st.DataObject
) -> None:
    # Any right-edge range [start, end): start aligned to bit_ceil(end - start).
    low_bits = (start & -start).bit_length() - 1 if start else 11
    width = data.draw(st.integers(1, min(1 << low_bits, MAX_LEAVES - start)), label="width")
    end = start + width
    want = root_from_leaf_hashes(HASHES[name], leaves(name)[start:end])
    assert stored_range_hash(name, start, end) == want


# -------------------------------------------------------------------- frontier


@pytest.mark.parametrize("name", sorted(HASHES))
def test_frontier_root_and_new_nodes_at_every_size(name: str) -> None:
    h = HASHES[name]
    all_leaves = leaves(name)
    frontier = Frontier(h)
    assert frontier.root() == empty_root(h)
    for size in range(1, 301):
        new = frontier.append(all_leaves[size - 1])
        leaf_index = size - 1
        trailing_ones = (leaf_index ^ (leaf_index + 1)).bit_length() - 1
        assert [(lvl, idx) for lvl, idx, _ in new] == [
            (lvl, leaf_index >> lvl) for lvl in range(trailing_ones + 1)
        ]
        for lvl, idx, value in new:
            want = root_from_leaf_hashes(h, all_leaves[idx << lvl : (idx + 1) << lvl])
            assert value == want, (size, lvl, idx)
        assert frontier.size == size
        assert frontier.root() == reference_root(name, size), size
        nodes = store(name)
        assert frontier.hashes() == [nodes[n] for n in perfect_subtrees(0, size)]


@PROPERTY
@given(hash_names, tree_sizes)
def test_frontier_from_storage_has_reference_root(name: str, size: int) -> None:
    nodes = store(name)
    frontier = Frontier(HASHES[name], size, [nodes[n] for n in perfect_subtrees(0, size)])
    assert frontier.root() == reference_root(name, size)


@PROPERTY
@given(hash_names, st.integers(0, MAX_LEAVES - 64), st.integers(1, 64))
def test_frontier_resumed_continues_identically(name: str, size: int, more: int) -> None:
    h = HASHES[name]
    all_leaves = leaves(name)
    nodes = store(name)
    stored = [nodes[n] for n in perfect_subtrees(0, size)] if size else []
    original = Frontier(h, size, stored)
    resumed = Frontier(h, original.size, original.hashes())
    for leaf in all_leaves[size : size + more]:
        assert resumed.append(leaf) == original.append(leaf)
        assert resumed.hashes() == original.hashes()
    assert resumed.size == original.size == size + more
    assert resumed.root() == original.root() == reference_root(name, size + more)


# ------------------------------------------------- edge cases and error family

sha256 = HASHES["sha256"]


def test_construction_rejects_impossible_positions_with_value_errors() -> None:
    four = list(leaves("sha256")[:4])
    for call in (
        lambda: inclusion_proof(sha256, 4, four),
        lambda: inclusion_proof(sha256, -1, four),
        lambda: inclusion_proof(sha256, 0, []),
        lambda: inclusion_proof_ranges(4, 4),
        lambda: inclusion_proof_ranges(0, 0),
        lambda: consistency_proof(sha256, 0, four),
        lambda: consistency_proof(sha256, 5, four),
        lambda: consistency_proof_ranges(0, 4),
        lambda: consistency_proof_ranges(5, 4),
        lambda: perfect_subtrees(3, 3),
        lambda: perfect_subtrees(-2, 0),
        lambda: range_hash(sha256, []),
        lambda: Frontier(sha256, 3, four[:1]),
        lambda: Frontier(sha256, -1),
    ):
        with pytest.raises(EncodingError) as raised:
            call()
        assert isinstance(raised.value, ValueError)


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    root = reference_root("sha256", 5)
    assert consistency_proof(sha256, 5, leaves("sha256")[:5]) == []
    assert consistency_proof_ranges(5, 5) == []
    verify_consistency(sha256, 5, 5, [], root, root)
    with pytest.raises(ProofError, match="expected an empty consistency proof"):
        verify_consistency(sha256, 5, 5, [root], root, root)
    with pytest.raises(ProofError, match="does not match expected root"):
        verify_consistency(sha256, 5, 5, [], root, reference_root("sha256", 4))


def test_consistency_from_empty_tree() -> None:
    empty = empty_root(sha256)
    root = reference_root("sha256", 7)
    verify_consistency(sha256, 0, 7, [], empty, root)
    verify_consistency(sha256, 0, 0, [], empty, empty)
    with pytest.raises(ProofError, match="expected an empty consistency proof"):
        verify_consistency(sha256, 0, 7, [root], empty, root)
    with pytest.raises(ProofError, match="expected empty-tree root"):
        verify_consistency(sha256, 0, 7, [], root, root)
    with pytest.raises(ProofError, match="expected empty-tree root"):
        verify_consistency(sha256, 0, 0, [], empty, root)


def test_impossible_claims_are_failed_proofs() -> None:
    root = reference_root("sha256", 4)
    leaf = leaves("sha256")[0]
    with pytest.raises(ProofError, match="leaf index 4 is beyond tree size 4"):
        verify_inclusion(sha256, 4, 4, leaf, [], root)
    with pytest.raises(ProofError, match="beyond tree size 0"):
        root_from_inclusion_proof(sha256, 0, 0, leaf, [])
    with pytest.raises(ProofError, match="smaller than the earlier tree size"):
        verify_consistency(sha256, 5, 4, [], root, root)
    with pytest.raises(EncodingError, match="index must be non-negative"):
        verify_inclusion(sha256, -1, 4, leaf, [], root)
    with pytest.raises(EncodingError, match="size2 must be non-negative"):
        verify_consistency(sha256, 0, -1, [], root, root)


def test_messages_say_expected_and_got() -> None:
    name, index, size = "sha256", 3, 13
    h = HASHES[name]
    proof = inclusion_proof(h, index, leaves(name)[:size])
    leaf, root = leaves(name)[index], reference_root(name, size)
    calculated = root_from_inclusion_proof(h, index, size, leaves(name)[0], proof)
    with pytest.raises(
        ProofError,
        match=f"calculated root {calculated.hex()} does not match expected root {root.hex()}",
    ):
        verify_inclusion(h, index, size, leaves(name)[0], proof, root)
    with pytest.raises(ProofError, match="expected an inclusion proof of 4 hashes .* got 3"):
        verify_inclusion(h, index, size, leaf, proof[:-1], root)
    with pytest.raises(ProofError, match=r"proof\[1\] has 31 bytes, expected 32"):
        verify_inclusion(h, index, size, leaf, [proof[0], proof[1][:31], *proof[2:]], root)
    with pytest.raises(ProofError, match="leaf_hash.* has 33 bytes"):
        verify_inclusion(h, index, size, leaf + b"\x00", proof, root)


def test_single_leaf_tree() -> None:
    leaf = leaves("sha256")[0]
    assert root_from_leaf_hashes(sha256, [leaf]) == leaf
    assert inclusion_proof(sha256, 0, [leaf]) == []
    assert inclusion_proof_ranges(0, 1) == []
    verify_inclusion(sha256, 0, 1, leaf, [], leaf)
    with pytest.raises(ProofError):
        verify_inclusion(sha256, 0, 1, leaf, [leaf], leaf)


def test_node_hash_is_domain_separated_from_leaf_hash() -> None:
    a, b = leaves("sha256")[:2]
    assert node_hash(sha256, a, b) == sha256(b"\x01" + a + b)
    assert leaf_hash(sha256, a + b) == sha256(b"\x00" + a + b)
    assert node_hash(sha256, a, b) != leaf_hash(sha256, a + b)
