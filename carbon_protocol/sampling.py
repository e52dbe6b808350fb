"""A sample of readings nobody chose: derived from a block hash, checkable by anyone.

A verifier checks an inventory by sampling its readings. If the verifier (or the
enterprise) could pick the sample, it could avoid the bad readings; so the seed is the
hash of the first block mined *after* the verification was opened, which neither side
knows in advance, and the sample follows from the seed by a published algorithm.

This is the wire half (pure, no chain, no database), so a stranger checking an
attestation recomputes the sample with the same code the ledger and the verifier use;
``ledger_service.verification.sampling`` adds the chain look-up of the seed block.

Algorithm ``carbon-ledger/sample/v1`` (everything a stranger needs to reimplement it):

1. **Population.** The inventory's reading leaf indices, as inclusive ranges
   ``first..last``, ascending, disjoint and not adjacent (the ``leaves`` of an
   inventory line's ``ReadingSet``, merged over all lines). Position ``p`` (0-based)
   is the ``p``-th smallest leaf index; ``N`` is the number of leaves.
2. **Key.** ``K = H(b"carbon-ledger/sample/v1" || 0x00 || seed || utf8(verification_id))``
   where ``H`` is the suite's hash (``intl``: SHA-256, ``sm``: SM3), ``seed`` is the
   32 raw bytes of the block hash and ``verification_id`` the verification's
   identifier. The id comes last, so the concatenation is unambiguous.
3. **Random words.** Block ``j`` (``j = 0, 1, 2, ...``) is ``H(K || uint64_be(j))``;
   each 32-byte block gives four 64-bit big-endian words, used in order, blocks in
   order. The stream is consumed across draws, never restarted.
4. **Uniform draw below m** (rejection sampling, no modulo bias): let
   ``limit = 2^64 - (2^64 mod m)``; take the next word ``w``; if ``w >= limit``
   discard it and take the next; else the result is ``w mod m``.
5. **Without replacement** (partial Fisher-Yates): start from the array
   ``A = [0, 1, ..., N-1]``; for ``i = 0 .. k-1``: ``j = i + draw(N - i)``, swap
   ``A[i]`` and ``A[j]``. The sample is the leaf indices at positions
   ``A[0], ..., A[k-1]``, in that (draw) order.

:func:`sample_mismatch` compares leaf sets, so a sample stored sorted still checks; a
sample with another leaf, a missing leaf or a repeated leaf does not.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .errors import VerificationError
from .identifiers import IdentifierStr
from .inventory import Inventory, LeafRange
from .suites import SuiteName, hash_fn

__all__ = [
    "SAMPLE_ALGORITHM",
    "SampleError",
    "SampleSpec",
    "Sample",
    "draw_sample",
    "inventory_population",
    "merge_leaf_indices",
    "sample_mismatch",
]

SAMPLE_ALGORITHM: Final = "carbon-ledger/sample/v1"
_TAG: Final = SAMPLE_ALGORITHM.encode("ascii") + b"\x00"
_TWO_64: Final = 1 << 64

BlockHash = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]


class SampleError(VerificationError):
    """A claimed sample is not the one its seed determines (``details`` says how)."""

    code = "sample_mismatch"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class SampleSpec(_Model):
    """What a sample is drawn from: everything :func:`draw_sample` needs, nothing else."""

    algorithm: Literal["carbon-ledger/sample/v1"] = SAMPLE_ALGORITHM
    suite: Literal["sm", "intl"]
    verification_id: IdentifierStr
    seed_block_number: Annotated[int, Field(ge=0)]
    """The first block after the one in which the verification was opened."""
    seed_block_hash: BlockHash
    population: list[LeafRange] = Field(min_length=1)
    """Ascending, disjoint, non-adjacent leaf ranges (see the module docstring)."""
    size: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _consistent(self) -> SampleSpec:
        previous = -2
        total = 0
        for r in self.population:
            if r.first <= previous + 1:
                raise ValueError("population ranges must be ascending, disjoint and not adjacent")
            previous = r.last
            total += r.last - r.first + 1
        if self.size > total:
            raise ValueError(f"sample size {self.size} exceeds the population of {total} leaves")
        return self

    def population_size(self) -> int:
        """``N``: the number of leaves in the population."""
        return sum(r.last - r.first + 1 for r in self.population)


class Sample(_Model):
    """A drawn sample: its spec and the leaf indices, in draw order."""

    spec: SampleSpec
    leaves: list[int]


def merge_leaf_indices(indices: Iterable[int]) -> list[LeafRange]:
    """Leaf indices (any order, repeats allowed) as the population's canonical ranges:
    ascending, disjoint, not adjacent."""
    out: list[LeafRange] = []
    first = previous = -2
    for i in sorted(set(indices)):
        if i != previous + 1:
            if previous >= 0:
                out.append(LeafRange(first=first, last=previous))
            first = i
        previous = i
    if previous >= 0:
        out.append(LeafRange(first=first, last=previous))
    return out


def inventory_population(inventory: Inventory) -> list[LeafRange]:
    """The population of an inventory: exactly the leaves its lines claim, as ranges.

    A line's ranges may have a step (a gateway's meters interleave in the log), so the
    lines' leaf indices are united and re-cut into contiguous ranges: a leaf between
    two of a line's leaves that belongs to another gateway is never in the population.
    Lines hold different devices, so they never share a leaf; time and memory grow
    with the number of leaves.
    """
    return merge_leaf_indices(i for line in inventory.lines for i in line.readings.leaf_indices())


def _words(suite: SuiteName, seed: bytes, verification_id: str) -> Iterator[int]:
    h = hash_fn(suite)
    key = h(_TAG + seed + verification_id.encode("utf-8"))
    j = 0
    while True:
        block = h(key + j.to_bytes(8, "big"))
        for o in range(0, 32, 8):
            yield int.from_bytes(block[o:o + 8], "big")
        j += 1


def _below(words: Iterator[int], m: int) -> int:
    limit = _TWO_64 - _TWO_64 % m
    while True:
        w = next(words)
        if w < limit:
            return w % m


def draw_sample(spec: SampleSpec) -> Sample:
    """Draw the sample ``spec`` determines (algorithm in the module docstring).

    Memory and time grow with the sample size, not the population: the Fisher-Yates
    array is kept as a dictionary of the positions swapped so far, and a position is
    turned into a leaf index by bisecting the ranges' cumulative sizes.
    """
    seed = bytes.fromhex(spec.seed_block_hash[2:])
    words = _words(spec.suite, seed, spec.verification_id)
    n = spec.population_size()
    swapped: dict[int, int] = {}
    positions = []
    for i in range(spec.size):
        j = i + _below(words, n - i)
        at_i, at_j = swapped.get(i, i), swapped.get(j, j)
        swapped[j] = at_i
        positions.append(at_j)
    starts = []
    offset = 0
    for r in spec.population:
        starts.append(offset)
        offset += r.last - r.first + 1
    leaves = []
    for p in positions:
        k = bisect_right(starts, p) - 1
        leaves.append(spec.population[k].first + p - starts[k])
    return Sample(spec=spec, leaves=leaves)


def sample_mismatch(spec: SampleSpec, leaves: Sequence[int]) -> SampleError | None:
    """``None`` if ``leaves`` is the sample ``spec`` determines, else the error saying
    which leaves should not be there and which are missing (returned, not raised, so
    each caller raises it in its own error family).

    Order does not matter (a sample may be stored sorted); membership and count do.
    """
    expected = draw_sample(spec).leaves
    claimed = list(leaves)
    vid = spec.verification_id
    if len(set(claimed)) != len(claimed):
        return SampleError(f"sample for {vid} repeats a leaf: a sample is drawn without "
                           "replacement", verification_id=vid)
    extra = sorted(set(claimed) - set(expected))
    missing = sorted(set(expected) - set(claimed))
    if extra or missing:
        return SampleError(
            f"sample for {vid} does not match seed block {spec.seed_block_number} "
            f"({spec.seed_block_hash[:18]}...): expected {len(expected)} leaves, got "
            f"{len(claimed)}; not in the derived sample {extra[:10]}, missing {missing[:10]}",
            verification_id=vid, extra=extra[:100], missing=missing[:100])
    return None
