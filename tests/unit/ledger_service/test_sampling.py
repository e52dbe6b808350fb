"""The verification sample: deterministic, recomputable from the seed, checked strictly.

Vectors come from ``_reference_sample`` below, a deliberately naive reimplementation
written from the module docstring alone (whole population list, full Fisher-Yates
array, hashlib/gmssl directly), so the library and the text that documents it are
tested against each other. The pinned literals catch silent algorithm drift.
"""

from __future__ import annotations

import hashlib

import pytest
from gmssl import sm3  # type: ignore[import-untyped]

from carbon_protocol.inventory import LeafRange, Period
from ledger_service.errors import InvalidInputError, NotFoundError, SampleMismatchError
from ledger_service.verification.sampling import (
    SampleSpec,
    _below,
    check_sample,
    draw_sample,
    inventory_population,
    leaf_ranges,
    seed_block,
)

BLOCK = "0x" + "ab" * 32
VID = "86.1000.1/verif.0001"


def _sm3(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(list(data)))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _reference_sample(suite: str, block_hash: str, vid: str, leaves: list[int],
                      k: int) -> list[int]:
    h = _sm3 if suite == "sm" else _sha256
    population = sorted(leaves)
    key = h(b"carbon-ledger/sample/v1\x00" + bytes.fromhex(block_hash[2:]) + vid.encode())
    stream: list[int] = []
    counter = 0

    def word() -> int:
        nonlocal counter
        if not stream:
            block = h(key + counter.to_bytes(8, "big"))
            counter += 1
            stream.extend(int.from_bytes(block[i:i + 8], "big") for i in (0, 8, 16, 24))
        return stream.pop(0)

    def below(m: int) -> int:
        limit = 2**64 - (2**64 % m)
        while True:
            w = word()
            if w < limit:
                return w % m

    order = list(range(len(population)))
    for i in range(k):
        j = i + below(len(population) - i)
        order[i], order[j] = order[j], order[i]
    return [population[p] for p in order[:k]]


def _spec(leaves: list[int], k: int, suite: str = "intl", block: str = BLOCK,
          vid: str = VID) -> SampleSpec:
    return SampleSpec(suite=suite, verification_id=vid, seed_block_number=101,  # type: ignore[arg-type]
                      seed_block_hash=block, population=leaf_ranges(leaves), size=k)


LEAVES = [*range(3, 40), *range(100, 180), 500, *range(1000, 1050)]


@pytest.mark.parametrize("suite", ["intl", "sm"])
@pytest.mark.parametrize("k", [1, 7, 50, len(LEAVES)])
def test_sample_matches_the_reference_implementation(suite: str, k: int) -> None:
    got = draw_sample(_spec(LEAVES, k, suite)).leaves
    assert got == _reference_sample(suite, BLOCK, VID, LEAVES, k)
    assert len(set(got)) == k and set(got) <= set(LEAVES)


def test_pinned_vectors() -> None:
    # Computed once with _reference_sample; a change here means the algorithm changed.
    assert draw_sample(_spec(list(range(10)), 10, "intl")).leaves == PINNED_INTL_10
    assert draw_sample(_spec(LEAVES, 6, "sm")).leaves == PINNED_SM_6


PINNED_INTL_10 = [0, 8, 2, 6, 9, 5, 1, 3, 7, 4]
PINNED_SM_6 = [1005, 1024, 113, 135, 3, 127]


def test_draws_reject_words_that_would_bias_the_modulo() -> None:
    m = 2**63 + 1  # limit = 2^64 - (2^64 mod m) = 2^63 + 1: words from it up are refused
    assert _below(iter([2**64 - 1, 2**63 + 2, 5]), m) == 5
    assert _below(iter([2**63 + 1, 2**63]), m) == 2**63  # limit itself is refused


def test_whole_population_is_a_permutation() -> None:
    got = draw_sample(_spec(LEAVES, len(LEAVES))).leaves
    assert sorted(got) == LEAVES


def test_seed_and_verification_id_change_the_sample() -> None:
    base = draw_sample(_spec(LEAVES, 10)).leaves
    assert draw_sample(_spec(LEAVES, 10)).leaves == base  # deterministic
    assert draw_sample(_spec(LEAVES, 10, block="0x" + "ac" * 32)).leaves != base
    assert draw_sample(_spec(LEAVES, 10, vid="86.1000.1/verif.0002")).leaves != base
    assert draw_sample(_spec(LEAVES, 10, suite="sm")).leaves != base


def test_large_population_is_not_materialised() -> None:
    spec = SampleSpec(suite="intl", verification_id=VID, seed_block_number=1,
                      seed_block_hash=BLOCK, size=20,
                      population=[LeafRange(first=0, last=10**12),
                                  LeafRange(first=2 * 10**12, last=3 * 10**12)])
    leaves = draw_sample(spec).leaves
    assert len(set(leaves)) == 20
    assert all(0 <= x <= 10**12 or 2 * 10**12 <= x <= 3 * 10**12 for x in leaves)


def test_check_sample_accepts_the_sample_in_any_order() -> None:
    spec = _spec(LEAVES, 12)
    leaves = draw_sample(spec).leaves
    check_sample(spec, leaves)
    check_sample(spec, sorted(leaves))


@pytest.mark.parametrize("defect", ["swapped_leaf", "missing_leaf", "extra_leaf",
                                    "repeated_leaf", "other_seed"])
def test_check_sample_rejects(defect: str) -> None:
    spec = _spec(LEAVES, 12)
    leaves = draw_sample(spec).leaves
    outside = next(x for x in LEAVES if x not in leaves)
    claimed = {
        "swapped_leaf": [*leaves[:-1], outside],
        "missing_leaf": leaves[:-1],
        "extra_leaf": [*leaves, outside],
        "repeated_leaf": [*leaves[:-1], leaves[0]],
        "other_seed": draw_sample(_spec(LEAVES, 12, block="0x" + "cd" * 32)).leaves,
    }[defect]
    with pytest.raises(SampleMismatchError) as info:
        check_sample(spec, claimed)
    assert info.value.code == "sample_mismatch"


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds the population"):
        _spec([1, 2, 3], 4)
    with pytest.raises(ValueError, match="ascending"):
        SampleSpec(suite="intl", verification_id=VID, seed_block_number=1,
                   seed_block_hash=BLOCK, size=1,
                   population=[LeafRange(first=5, last=6), LeafRange(first=7, last=9)])
    with pytest.raises(ValueError):
        _spec([1, 2], 1, block="0x" + "AB" * 32)  # block hashes are lowercase
    with pytest.raises(InvalidInputError):
        leaf_ranges([1, -2])


def test_leaf_ranges_merges_and_deduplicates() -> None:
    assert [(r.first, r.last) for r in leaf_ranges([5, 1, 2, 3, 3, 9, 8])] == [
        (1, 3), (5, 5), (8, 9)]


def test_seed_block_is_the_next_block_and_waits_for_it() -> None:
    from ledger_service._internal.chain import ChainClient

    chain = ChainClient.embedded()
    opened = chain.block_number()
    with pytest.raises(NotFoundError, match="not mined yet"):
        seed_block(chain, opened)
    chain.w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]
    number, block_hash = seed_block(chain, opened)
    assert number == opened + 1
    assert block_hash == chain.block(opened + 1)[0] != chain.block(opened)[0]
    spec = SampleSpec(suite="sm", verification_id=VID, seed_block_number=number,
                      seed_block_hash=block_hash, population=leaf_ranges(LEAVES), size=3)
    assert draw_sample(spec).leaves == _reference_sample("sm", block_hash, VID, LEAVES, 3)


def test_inventory_population_merges_every_lines_ranges() -> None:
    from carbon_protocol.models import Domain, Reading
    from carbon_protocol.suites import PrivateKey
    from carbon_rules.factors import default_factors
    from carbon_rules.inventory import LoggedReading, compute_inventory
    from carbon_rules.models import Methodology, MethodologyVersion, VersionDraft

    draft = VersionDraft("IPCC-AR5-GWP100", "doc v1", tuple(default_factors()))
    rules = Methodology("cn.enterprise-ghg", (MethodologyVersion(
        "cn.enterprise-ghg", 1, 1_672_531_200, 1_672_531_200, "0x" + "11" * 20,
        draft.parameters_hash, draft.gwp_set, draft.document, draft.factors),))
    domain = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id="86.1000.1/log.main")
    # Device a at leaves 10, 11, 14; device b at 12, 13, 20: merged 10..14 and 20.
    layout = {"86.1000.1/dev.a": [10, 11, 14], "86.1000.1/dev.b": [12, 13, 20]}
    logged = {
        device: [LoggedReading(leaf, Reading(
            suite="intl", key_id="00" * 16, device=device, seq=n + 1,
            measured_at=f"2026-10-05T0{n + 1}:00:00Z", quantity="active_energy", unit="kWh",
            value="5", quality="measured", salt="00" * 16, domain=domain))
            for n, leaf in enumerate(leaves)]
        for device, leaves in layout.items()
    }
    key = PrivateKey.generate("intl").public_key()
    inventory = compute_inventory(
        rules, Period(label="2026-10", start="2026-10-01T00:00:00Z", end="2026-11-01T00:00:00Z"),
        logged, chain_id=1337, registry="0x" + "cd" * 20, gateway="86.1000.1/gw.a",
        domain=domain, suite=key.suite, key_id=key.key_id)
    population = inventory_population(inventory)
    assert [(r.first, r.last) for r in population] == [(10, 14), (20, 20)]
    spec = SampleSpec(suite="intl", verification_id=VID, seed_block_number=1,
                      seed_block_hash=BLOCK, population=population, size=3)
    assert draw_sample(spec).leaves == _reference_sample(
        "intl", BLOCK, VID, [10, 11, 12, 13, 14, 20], 3)
