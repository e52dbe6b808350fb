"""The verification sample at the ledger: the seed block read from the chain, and the
wire algorithm (:mod:`carbon_protocol.sampling`) raising this package's errors.

The algorithm ``carbon-ledger/sample/v1`` itself (population, key, random words,
rejection sampling, partial Fisher-Yates) is documented and implemented in
:mod:`carbon_protocol.sampling`, so the ledger, the verifier's CLI and a stranger
checking an attestation all run the same code. The seed is the hash of the first block
mined *after* the verification was opened: nobody knows it when the verification opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from carbon_protocol.inventory import LeafRange
from carbon_protocol.sampling import (
    SAMPLE_ALGORITHM,
    Sample,
    SampleSpec,
    _below,
    draw_sample,
    inventory_population,
    merge_leaf_indices,
    sample_mismatch,
)

from ..errors import InvalidInputError, NotFoundError, SampleMismatchError

__all__ = [
    "SAMPLE_ALGORITHM",
    "SampleSpec",
    "Sample",
    "draw_sample",
    "check_sample",
    "leaf_ranges",
    "inventory_population",
    "seed_block",
    "BlockSource",
]

_ = _below  # re-exported for the tests of the rejection step


def leaf_ranges(indices: Sequence[int]) -> list[LeafRange]:
    """Merge leaf indices (any order, duplicates allowed) into the population's ranges."""
    if any(type(i) is not int or i < 0 for i in indices):
        raise InvalidInputError("leaf indices must be non-negative integers")
    return merge_leaf_indices(indices)


def check_sample(spec: SampleSpec, leaves: Sequence[int]) -> None:
    """Return if ``leaves`` is the sample ``spec`` determines; raise otherwise.

    Order does not matter (a sample may be stored sorted); membership and count do.
    Raises :class:`SampleMismatchError` naming the leaves that should not be there and
    those that are missing.
    """
    mismatch = sample_mismatch(spec, leaves)
    if mismatch is not None:
        raise SampleMismatchError(str(mismatch), **mismatch.details)


class BlockSource(Protocol):
    """The two chain reads :func:`seed_block` needs; ``ChainClient`` has both."""

    def block_number(self) -> int: ...

    def block(self, number: int) -> tuple[str, int]: ...


def seed_block(chain: BlockSource, opened_in_block: int) -> tuple[int, str]:
    """``(number, hash)`` of the seed block: the first block after ``opened_in_block``.

    Raises :class:`NotFoundError` while that block does not exist yet: the sample
    cannot be drawn before its seed is out of everybody's hands.
    """
    if opened_in_block < 0:
        raise InvalidInputError(f"block number {opened_in_block} is negative")
    number = opened_in_block + 1
    head = chain.block_number()
    if head < number:
        raise NotFoundError(
            f"seed block {number} is not mined yet (chain head is {head}): the sample is "
            "drawn from the first block after the verification was opened",
            block_number=number, head=head)
    block_hash, _timestamp = chain.block(number)
    return number, block_hash.lower()
