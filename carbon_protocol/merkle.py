"""Merkle tree hashes and proofs of RFC 9162 §2.1 (the RFC 6962 tree), hash-agnostic.

The log hashes with SHA-256 or SM3; the hash is passed in as ``h`` (:data:`HashFn`),
a function from bytes to a fixed-length digest. Everything else is RFC 9162:

* §2.1.1 Merkle Tree Hash: ``MTH({}) = h("")``, a leaf is ``h(0x00 || d)``, an inner
  node is ``h(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the largest power of two
  smaller than ``n``. The 0x00/0x01 prefixes separate leaves from nodes, so no inner
  node can be passed off as a leaf (second-preimage attack on plain Merkle trees).
* §2.1.3 inclusion proofs (``PATH``) and their verification.
* §2.1.4 consistency proofs (``PROOF``/``SUBPROOF``) and their verification.

The module has three layers:

1. Reference constructions over the full list of leaf hashes, written as the RFC's
   recursive definitions (:func:`root_from_leaf_hashes`, :func:`inclusion_proof`,
   :func:`consistency_proof`). They are O(n) and serve tests, tools and small trees.
2. Verification (:func:`root_from_inclusion_proof`, :func:`verify_inclusion`,
   :func:`verify_consistency`), O(log n), equivalent to the step lists of §2.1.3.2
   and §2.1.4.2 but computing the expected proof length first, so a proof of the
   wrong length is rejected before any hashing.
3. Storage-backed proofs. The ledger stores only perfect subtrees, keyed by
   ``(level, index)``: level 0 holds the leaf hashes and node ``(level, i)`` covers
   leaves ``[i * 2**level, (i + 1) * 2**level)``. Every proof element is the MTH of a
   leaf range (:func:`inclusion_proof_ranges`, :func:`consistency_proof_ranges`);
   each range splits into stored nodes (:func:`perfect_subtrees`) whose hashes fold
   into the element (:func:`range_hash`). :class:`Frontier` appends leaves, returning
   each node as it becomes complete, and keeps the tree root in O(log n) memory.

Errors: a proof that does not verify raises :class:`~carbon_protocol.errors.ProofError`
with an "expected X, got Y" message. Verification takes its sizes and indices from
untrusted input, so an impossible claim (``index >= size``, ``size2 < size1``) is a
failed proof too (§2.1.3.2 step 1: "fail the proof verification"). Constructing a
proof for an impossible position is a caller bug and raises
:class:`~carbon_protocol.errors.EncodingError` (a :class:`ValueError`), as does a
negative size or index anywhere.

A proof authenticates a leaf against a root, not the tree size: RFC 9162 proofs for
``(index, size)`` and ``(index, size')`` can have the same shape, and then the same
proof verifies for both. The size and root must come together from a signed tree
head (or an anchored batch), never from the proof's sender alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from carbon_protocol.errors import EncodingError, ProofError

__all__ = [
    "Frontier",
    "HashFn",
    "consistency_proof",
    "consistency_proof_ranges",
    "empty_root",
    "inclusion_proof",
    "inclusion_proof_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "range_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HashFn = Callable[[bytes], bytes]
"""A hash function: bytes in, fixed-length digest out (SHA-256 or SM3 in the log)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --------------------------------------------------------------------------- hashes


def leaf_hash(h: HashFn, data: bytes) -> bytes:
    """Return the leaf hash ``h(0x00 || data)`` (RFC 9162 §2.1.1)."""
    return h(_LEAF_PREFIX + data)


def node_hash(h: HashFn, left: bytes, right: bytes) -> bytes:
    """Return the inner node hash ``h(0x01 || left || right)`` (RFC 9162 §2.1.1)."""
    return h(_NODE_PREFIX + left + right)


def empty_root(h: HashFn) -> bytes:
    """Return the root of the empty tree, ``h("")`` (RFC 9162 §2.1.1)."""
    return h(b"")


# ------------------------------------------------------------ reference constructions


def _split(n: int) -> int:
    """The largest power of two smaller than ``n``. Requires ``n >= 2``."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(h: HashFn, leaves: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) over leaf hashes. Requires ``start < end``."""
    n = end - start
    if n == 1:
        return leaves[start]
    k = _split(n)
    return node_hash(h, _mth(h, leaves, start, start + k), _mth(h, leaves, start + k, end))


def root_from_leaf_hashes(h: HashFn, leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash of already-hashed leaves (RFC 9162 §2.1.1).

    This is the reference definition, O(n) hashes and O(log n) recursion depth. The
    empty list gives :func:`empty_root`.
    """
    if not leaf_hashes:
        return empty_root(h)
    return _mth(h, leaf_hashes, 0, len(leaf_hashes))


def _path(h: HashFn, m: int, leaves: Sequence[bytes], start: int, end: int) -> list[bytes]:
    """PATH(m, D[start:end]) of RFC 9162 §2.1.3.1. Requires ``0 <= m < end - start``."""
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        proof = _path(h, m, leaves, start, start + k)
        proof.append(_mth(h, leaves, start + k, end))
    else:
        proof = _path(h, m - k, leaves, start + k, end)
        proof.append(_mth(h, leaves, start, start + k))
    return proof


def inclusion_proof(h: HashFn, index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the inclusion proof of leaf ``index`` from the full list of leaf hashes.

    Reference implementation of ``PATH(m, D[n])``, RFC 9162 §2.1.3.1: the sibling
    hashes from the leaf up to the root. O(n) hashes.

    Requires ``0 <= index < len(leaf_hashes)``; raises :class:`EncodingError` otherwise.
    """
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise EncodingError(f"requires 0 <= index < size, got index {index}, size {size}")
    return _path(h, index, leaf_hashes, 0, size)


def _subproof(
    h: HashFn, m: int, leaves: Sequence[bytes], start: int, end: int, complete: bool
) -> list[bytes]:
    """SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1. Requires ``0 < m <= n``."""
    n = end - start
    if m == n:
        return [] if complete else [_mth(h, leaves, start, end)]
    k = _split(n)
    if m <= k:
        proof = _subproof(h, m, leaves, start, start + k, complete)
        proof.append(_mth(h, leaves, start + k, end))
    else:
        proof = _subproof(h, m - k, leaves, start + k, end, False)
        proof.append(_mth(h, leaves, start, start + k))
    return proof


def consistency_proof(h: HashFn, size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the consistency proof from the first ``size1`` leaves to all of them.

    Reference implementation of ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)``, RFC 9162
    §2.1.4.1, with ``size2 = len(leaf_hashes)``. ``size1 == size2`` gives ``[]``.
    O(n) hashes.

    Requires ``0 < size1 <= size2``; raises :class:`EncodingError` otherwise (the RFC
    defines no proof from the empty tree).
    """
    size2 = len(leaf_hashes)
    if not 0 < size1 <= size2:
        raise EncodingError(f"requires 0 < size1 <= size2, got size1 {size1}, size2 {size2}")
    return _subproof(h, size1, leaf_hashes, 0, size2, True)


# ----------------------------------------------------------------------- verification


def _require_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise EncodingError(f"{name} must be non-negative, got {value}")


def _require_digest_lengths(digest_size: int, what: str, values: Sequence[bytes]) -> None:
    """Every hash in a proof has the root's length; a short or long one cannot fit."""
    for i, value in enumerate(values):
        if len(value) != digest_size:
            raise ProofError(
                f"{what}[{i}] has {len(value)} bytes, expected {digest_size} like the root"
            )


def root_from_inclusion_proof(
    h: HashFn, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root that ``proof`` computes for ``leaf_hash`` at ``index`` of ``size``.

    RFC 9162 §2.1.3.2. The path from leaf ``index`` to the root of a tree of ``size``
    leaves has two parts: ``inner`` levels below the point where it meets the right
    edge of the tree (``inner`` is the bit length of ``index ^ (size - 1)``), where bit
    ``level`` of ``index`` says whether the sibling is on the left or the right; and
    above them the right edge, where there is a (left) sibling only at the set bits
    of ``index >> inner``. This computes the same result as the RFC's ``fn``/``sn``
    loop, and knows the proof length before hashing.

    Requires ``index >= 0`` and ``size >= 0`` (else :class:`EncodingError`).
    Raises :class:`ProofError` if ``index >= size`` or the proof has the wrong number of
    hashes for ``(index, size)``. Comparing the result with a trusted root is the
    caller's job; :func:`verify_inclusion` does both.
    """
    _require_non_negative(index=index, size=size)
    if index >= size:
        raise ProofError(f"leaf index {index} is beyond tree size {size}")
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    if len(proof) != inner + border:
        raise ProofError(
            f"expected an inclusion proof of {inner + border} hashes for index {index} "
            f"in a tree of size {size}, got {len(proof)}"
        )
    node = leaf_hash
    for level in range(inner):
        if (index >> level) & 1:
            node = h(_NODE_PREFIX + proof[level] + node)
        else:
            node = h(_NODE_PREFIX + node + proof[level])
    for level in range(inner, inner + border):
        node = h(_NODE_PREFIX + proof[level] + node)
    return node


def verify_inclusion(
    h: HashFn,
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Verify that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2. Returns ``None``; raises :class:`ProofError` if the proof does
    not verify (including ``index >= size``, a wrong proof length, or a hash whose
    length differs from the root's). ``root`` and ``size`` must come from a trusted
    (signed or anchored) tree head: the proof does not authenticate the size.

    Requires ``index >= 0`` and ``size >= 0`` (else :class:`EncodingError`).
    """
    _require_digest_lengths(len(root), "leaf_hash", (leaf_hash,))
    _require_digest_lengths(len(root), "proof", proof)
    calculated = root_from_inclusion_proof(h, index, size, leaf_hash, proof)
    if calculated != root:
        raise ProofError(
            f"calculated root {calculated.hex()} does not match expected root {root.hex()}"
        )


def verify_consistency(
    h: HashFn,
    size1: int,
    size2: int,
    proof: Sequence[bytes],
    root1: bytes,
    root2: bytes,
) -> None:
    """Verify that the tree of ``size1`` with ``root1`` is a prefix of ``size2``/``root2``.

    RFC 9162 §2.1.4.2, for ``0 < size1 < size2``. The proof starts with the hash of
    the largest perfect subtree ending at leaf ``size1`` (omitted when ``size1`` is a
    power of two: it is then ``root1`` itself), followed by the inclusion path of
    that subtree in the tree of ``size2``. Left siblings contribute to both roots,
    right siblings (leaves beyond ``size1``) only to the second.

    Edge cases, outside the RFC's step list:

    * ``size1 == size2``: the proof must be empty and ``root1 == root2``.
    * ``size1 == 0``: the empty tree is a prefix of every tree, so the proof must be
      empty and ``root1`` must be the empty-tree hash ``h("")``; nothing is proven
      about ``root2`` (unless ``size2 == 0`` too, when it must equal ``root1``).
      We accept this rather than refuse it so a verifier can start from an empty log.
    * ``size2 < size1``: a tree never shrinks; this is a failed proof.

    Returns ``None``; raises :class:`ProofError` if the proof does not verify.
    Requires ``size1 >= 0`` and ``size2 >= 0`` (else :class:`EncodingError`).
    """
    _require_non_negative(size1=size1, size2=size2)
    if size2 < size1:
        raise ProofError(f"tree size {size2} is smaller than the earlier tree size {size1}")
    if size1 == 0:
        if proof:
            raise ProofError(
                f"expected an empty consistency proof from the empty tree, got {len(proof)} hashes"
            )
        empty = empty_root(h)
        if root1 != empty:
            raise ProofError(
                f"root1 {root1.hex()} of the empty tree does not match "
                f"expected empty-tree root {empty.hex()}"
            )
        if size2 == 0 and root2 != empty:
            raise ProofError(
                f"root2 {root2.hex()} of the empty tree does not match "
                f"expected empty-tree root {empty.hex()}"
            )
        return
    if size1 == size2:
        if proof:
            raise ProofError(
                f"expected an empty consistency proof for equal tree sizes {size1}, "
                f"got {len(proof)} hashes"
            )
        if root1 != root2:
            raise ProofError(
                f"root2 {root2.hex()} does not match expected root {root1.hex()} "
                f"of the same tree size {size1}"
            )
        return

    last1 = size1 - 1
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1 = trailing ones of last1
    inner = (last1 ^ (size2 - 1)).bit_length()  # > shift because size2 > size1
    border = (last1 >> inner).bit_count()
    seeded = size1 == 1 << shift  # size1 is a power of two: the subtree is root1 itself
    expected = (0 if seeded else 1) + (inner - shift) + border
    if len(proof) != expected:
        raise ProofError(
            f"expected a consistency proof of {expected} hashes from tree size {size1} "
            f"to {size2}, got {len(proof)}"
        )
    _require_digest_lengths(len(root2), "root1", (root1,))
    _require_digest_lengths(len(root2), "proof", proof)

    if seeded:
        first = second = root1
        pos = 0
    else:
        first = second = proof[0]
        pos = 1
    for level in range(shift, inner):
        sibling = proof[pos]
        pos += 1
        if (last1 >> level) & 1:
            first = h(_NODE_PREFIX + sibling + first)
            second = h(_NODE_PREFIX + sibling + second)
        else:
            second = h(_NODE_PREFIX + second + sibling)
    for sibling in proof[pos:]:
        first = h(_NODE_PREFIX + sibling + first)
        second = h(_NODE_PREFIX + sibling + second)

    if first != root1:
        raise ProofError(
            f"calculated root1 {first.hex()} does not match expected root1 {root1.hex()}"
        )
    if second != root2:
        raise ProofError(
            f"calculated root2 {second.hex()} does not match expected root2 {root2.hex()}"
        )


# ------------------------------------------------------------- storage-backed proofs


def _append_path_ranges(
    out: list[tuple[int, int]], index: int, size: int, from_level: int, inner: int
) -> None:
    """Append the ranges of the siblings of the ancestors of leaf ``index`` in a tree of
    ``size``, from ``from_level`` up: ``inner`` levels of left or right siblings (a right
    sibling may be cut off by the right edge), then left siblings along the right edge.
    """
    for level in range(from_level, inner):
        start = ((index >> level) ^ 1) << level
        end = start + (1 << level)
        out.append((start, end if end < size else size))
    node = index >> inner
    level = inner
    while node:
        if node & 1:
            start = (node - 1) << level
            out.append((start, start + (1 << level)))
        node >>= 1
        level += 1


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` leaf ranges whose MTHs form the inclusion proof.

    In proof order (leaf to root), so ``[range MTH for each range]`` equals
    :func:`inclusion_proof` (RFC 9162 §2.1.3.1). Each range is a perfect aligned
    subtree or a right-edge range, ready for :func:`perfect_subtrees`. O(log size).

    Requires ``0 <= index < size``; raises :class:`EncodingError` otherwise.
    """
    if not 0 <= index < size:
        raise EncodingError(f"requires 0 <= index < size, got index {index}, size {size}")
    out: list[tuple[int, int]] = []
    _append_path_ranges(out, index, size, 0, (index ^ (size - 1)).bit_length())
    return out


def consistency_proof_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` leaf ranges whose MTHs form the consistency proof.

    In proof order, so the range MTHs equal :func:`consistency_proof` (RFC 9162
    §2.1.4.1): the largest perfect subtree ending at ``size1`` unless that is the
    whole first tree, then its inclusion path in the tree of ``size2``.
    ``size1 == size2`` gives ``[]``. O(log size2).

    Requires ``0 < size1 <= size2``; raises :class:`EncodingError` otherwise.
    """
    if not 0 < size1 <= size2:
        raise EncodingError(f"requires 0 < size1 <= size2, got size1 {size1}, size2 {size2}")
    out: list[tuple[int, int]] = []
    if size1 == size2:
        return out
    last1 = size1 - 1
    shift = (size1 & -size1).bit_length() - 1
    if size1 != 1 << shift:
        out.append((size1 - (1 << shift), size1))
    _append_path_ranges(out, last1, size2, shift, (last1 ^ (size2 - 1)).bit_length())
    return out


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split a leaf range into the stored perfect subtrees ``(level, index)`` covering it.

    The range must be a node of some RFC 9162 tree: a perfect aligned subtree (one
    node) or a right-edge range ``[start, end)`` of the tree of ``end`` leaves, i.e.
    ``start`` is a multiple of the smallest power of two ``>= end - start``. The nodes
    come left to right, one per set bit of ``end - start``, largest first; fold them
    with :func:`range_hash`. O(log(end - start)).

    Requires ``0 <= start < end`` and the alignment above; raises
    :class:`EncodingError` otherwise.
    """
    if not 0 <= start < end:
        raise EncodingError(f"requires 0 <= start < end, got start {start}, end {end}")
    width = end - start
    if start & ((1 << (width - 1).bit_length()) - 1):
        raise EncodingError(
            f"leaf range [{start}, {end}) is neither a perfect aligned subtree "
            f"nor a right-edge range"
        )
    nodes: list[tuple[int, int]] = []
    while width:
        level = width.bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
        width ^= 1 << level
    return nodes


def range_hash(h: HashFn, nodes: Sequence[bytes]) -> bytes:
    """Return the MTH of a leaf range from the hashes of its :func:`perfect_subtrees`.

    Folds right to left with :func:`node_hash`: the perfect subtrees of a right-edge
    range shrink from left to right, so this is RFC 9162 §2.1.1's split at the largest
    power of two, applied repeatedly.

    Requires at least one hash; raises :class:`EncodingError` otherwise.
    """
    if not nodes:
        raise EncodingError("requires at least one subtree hash, got none")
    acc = nodes[-1]
    for i in range(len(nodes) - 2, -1, -1):
        acc = h(_NODE_PREFIX + nodes[i] + acc)
    return acc


class Frontier:
    """The right edge of a growing tree: the hashes of ``perfect_subtrees(0, size)``.

    A compact range over ``[0, size)``: one perfect subtree hash per set bit of
    ``size``, largest (leftmost) first. Appending a leaf completes the perfect nodes
    that end at the new leaf, which :meth:`append` returns for storage; :meth:`root`
    folds the edge into the RFC 9162 §2.1.1 root. To resume after a restart, pass the
    stored ``size`` and the hashes of ``perfect_subtrees(0, size)``.
    """

    __slots__ = ("_h", "_hashes", "_size")

    def __init__(self, h: HashFn, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Start a frontier of ``size`` leaves from its subtree hashes, left to right.

        Requires ``size >= 0`` and exactly one hash per set bit of ``size`` (the nodes
        of ``perfect_subtrees(0, size)``); raises :class:`EncodingError` otherwise.
        """
        _require_non_negative(size=size)
        if len(hashes) != size.bit_count():
            raise EncodingError(
                f"a frontier of size {size} holds {size.bit_count()} subtree hashes, "
                f"got {len(hashes)}"
            )
        self._h = h
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash; return every perfect node it completes, bottom up.

        The first is ``(0, leaf_index, leaf_hash)``; each further one merges the
        previous with the frontier's smallest subtree, one per trailing one bit of the
        leaf index. Amortised O(1), worst case O(log size).
        """
        index = self._size
        hashes = self._hashes
        completed = [(0, index, leaf_hash)]
        acc = leaf_hash
        level = 0
        node = index
        while node & 1:
            acc = self._h(_NODE_PREFIX + hashes.pop() + acc)
            node >>= 1
            level += 1
            completed.append((level, node, acc))
        hashes.append(acc)
        self._size = index + 1
        return completed

    def root(self) -> bytes:
        """Return the tree root at the current size (``h("")`` when empty)."""
        if not self._hashes:
            return empty_root(self._h)
        return range_hash(self._h, self._hashes)

    def hashes(self) -> list[bytes]:
        """Return a copy of the subtree hashes, left to right, for persistence."""
        return list(self._hashes)

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, hashes={len(self._hashes)})"
