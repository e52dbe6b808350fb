"""Behaviour suite of ``CarbonAnchor`` through :class:`ChainClient`, for every backend.

Each behaviour is a plain function taking a :class:`Harness`; ``test_anchor_pyevm``
and ``test_anchor_anvil`` run all of :data:`BEHAVIOURS` against their own chain, the
way OpenZeppelin's ``*.behavior.js`` files and web3.py's ``module_testing`` suites are
shared between implementations. Behaviours assert the exact custom error with its
arguments and the exact events decoded from the receipt, and the absence of events on
no-op calls. They share one chain, so each uses fresh log keys and leaves roles as it
found them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger_service._internal.chain import (
    ANCHORER_ROLE,
    DEFAULT_ADMIN_ROLE,
    AnchorRecord,
    ChainClient,
    TxReceipt,
)
from ledger_service.errors import AnchorError

ZERO32 = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20
MAX_UINT64 = 2**64 - 1

#: Gas limits the suite holds the contract to.
MAX_ANCHOR_GAS = 120_000
#: Two anchors that differ only in tree size differ only in calldata (<= 8 bytes).
FLAT_GAS_TOLERANCE = 200


@dataclass
class Harness:
    """A deployed contract and what the behaviours need around it."""

    client: ChainClient  # holds DEFAULT_ADMIN_ROLE and ANCHORER_ROLE
    other_keys: Sequence[str]  # funded keys that hold no role
    deploy: Callable[[str | None], str]  # deploys another CarbonAnchor with this admin
    attach: Callable[[str, str], ChainClient]  # (contract address, private key) -> client
    measurements: dict[str, int] = field(default_factory=dict)

    def other(self, index: int = 0) -> ChainClient:
        """A client signing as ``other_keys[index]`` on the same contract."""
        return self.client.with_signer(self.other_keys[index])


def hex32(value: bytes) -> str:
    """0x-hex of a 32-byte value, as decoded errors and events show it."""
    return "0x" + value.hex()


def fresh_log_key(client: ChainClient, label: str) -> bytes:
    """A log key no other behaviour or run uses."""
    return client.log_key(f"86.1000.1/test.{label}.{uuid.uuid4().hex}")


def root_of(label: str) -> bytes:
    """A distinct, non-zero 32-byte root."""
    return ChainClient.log_key(f"root:{label}")


def expect_revert(call: Callable[[], Any], error: str, args: dict[str, Any]) -> AnchorError:
    """Run ``call``; it must raise :class:`AnchorError` for exactly ``error(args)``."""
    with pytest.raises(AnchorError) as info:
        call()
    exc = info.value
    assert exc.details.get("error") == error, f"expected {error}, got {exc!r}"
    assert exc.details.get("args") == args, f"expected {error}{args}, got {exc!r}"
    shown = ", ".join(
        f"{k}={v}" if isinstance(v, str) and v.startswith("0x") else f"{k}={v!r}"
        for k, v in args.items()
    )
    assert str(exc) == f"{error}({shown})"
    return exc


def events_of(receipt: TxReceipt) -> list[tuple[str, dict[str, Any]]]:
    """``[(event name, args)]`` of a receipt, in log order."""
    return [(e.name, e.args) for e in receipt.events]


def anchored_event(
    client: ChainClient, key: bytes, size: int, root: bytes, receipt: TxReceipt, submitter: str
) -> tuple[str, dict[str, Any]]:
    """The exact ``TreeHeadAnchored`` event an anchor in ``receipt`` must emit."""
    _, timestamp = client.block(receipt.block_number)
    return (
        "TreeHeadAnchored",
        {
            "logKey": hex32(key),
            "treeSize": size,
            "root": hex32(root),
            "timestamp": timestamp,
            "submitter": submitter,
        },
    )


# -- behaviours -----------------------------------------------------------------------


def anchors_are_recorded_and_readable(h: Harness) -> None:
    c = h.client
    key = fresh_log_key(c, "recorded")
    assert c.latest_tree_size(key) == 0
    assert c.anchor_of(key, 1) is None

    rc = c.anchor(key, 1, root_of("a"))
    assert rc.status == 1
    assert events_of(rc) == [anchored_event(c, key, 1, root_of("a"), rc, c.account)]
    _, timestamp = c.block(rc.block_number)
    assert c.anchor_of(key, 1) == AnchorRecord(root_of("a"), timestamp, c.account, rc.block_number)
    assert c.latest_tree_size(key) == 1

    rc2 = c.anchor(key, 1000, root_of("b"))
    assert events_of(rc2) == [anchored_event(c, key, 1000, root_of("b"), rc2, c.account)]
    assert c.latest_tree_size(key) == 1000
    assert c.anchor_of(key, 1) == AnchorRecord(root_of("a"), timestamp, c.account, rc.block_number)
    assert c.anchor_of(key, 1000) is not None
    assert c.anchor_of(key, 999) is None
    assert c.latest_tree_size(fresh_log_key(c, "untouched")) == 0
    assert c.receipt(rc2.tx_hash) == rc2


def tree_size_must_increase(h: Harness) -> None:
    c = h.client
    key = fresh_log_key(c, "increase")
    c.anchor(key, 5, root_of("5"))
    for got in (5, 3, 1):
        expect_revert(
            lambda got=got: c.anchor(key, got, root_of("late")),  # type: ignore[misc]
            "CarbonAnchorTreeSizeNotIncreasing",
            {"logKey": hex32(key), "latest": 5, "got": got},
        )
    assert c.latest_tree_size(key) == 5
    assert c.anchor_of(key, 3) is None
    assert c.anchor_of(key, 5) is not None and c.anchor_of(key, 5).root == root_of("5")  # type: ignore[union-attr]

    other_key = fresh_log_key(c, "increase-other")  # logs are independent
    assert c.anchor(other_key, 1, root_of("1")).status == 1
    c.anchor(key, MAX_UINT64, root_of("max"))
    expect_revert(
        lambda: c.anchor(key, MAX_UINT64, root_of("max-again")),
        "CarbonAnchorTreeSizeNotIncreasing",
        {"logKey": hex32(key), "latest": MAX_UINT64, "got": MAX_UINT64},
    )


def empty_root_and_zero_size_are_rejected(h: Harness) -> None:
    c = h.client
    key = fresh_log_key(c, "empty")
    expect_revert(lambda: c.anchor(key, 1, ZERO32), "CarbonAnchorEmptyRoot", {})
    expect_revert(lambda: c.anchor(key, 0, root_of("x")), "CarbonAnchorZeroTreeSize", {})
    # The root is checked first.
    expect_revert(lambda: c.anchor(key, 0, ZERO32), "CarbonAnchorEmptyRoot", {})
    assert c.latest_tree_size(key) == 0
    assert c.anchor_of(key, 0) is None


def anchoring_requires_anchorer_role(h: Harness) -> None:
    c, other = h.client, h.other(0)
    key = fresh_log_key(c, "role")
    assert not c.has_role(ANCHORER_ROLE, other.account)
    expect_revert(
        lambda: other.anchor(key, 1, root_of("x")),
        "AccessControlUnauthorizedAccount",
        {"account": other.account, "neededRole": hex32(ANCHORER_ROLE)},
    )
    expect_revert(
        lambda: other.grant_role(ANCHORER_ROLE, other.account),
        "AccessControlUnauthorizedAccount",
        {"account": other.account, "neededRole": hex32(DEFAULT_ADMIN_ROLE)},
    )
    assert c.latest_tree_size(key) == 0

    c.grant_role(ANCHORER_ROLE, other.account)
    try:
        rc = other.anchor(key, 1, root_of("x"))
        assert events_of(rc) == [anchored_event(c, key, 1, root_of("x"), rc, other.account)]
        assert c.anchor_of(key, 1).submitter == other.account  # type: ignore[union-attr]
    finally:
        revoked = c.revoke_role(ANCHORER_ROLE, other.account)
    assert events_of(revoked) == [
        (
            "RoleRevoked",
            {"role": hex32(ANCHORER_ROLE), "account": other.account, "sender": c.account},
        )
    ]
    expect_revert(
        lambda: other.anchor(key, 2, root_of("y")),
        "AccessControlUnauthorizedAccount",
        {"account": other.account, "neededRole": hex32(ANCHORER_ROLE)},
    )


def granting_a_role_twice_emits_one_event(h: Harness) -> None:
    c, other = h.client, h.other(1)
    role_args = {"role": hex32(ANCHORER_ROLE), "account": other.account, "sender": c.account}
    first = c.grant_role(ANCHORER_ROLE, other.account)
    try:
        assert events_of(first) == [("RoleGranted", role_args)]
        second = c.grant_role(ANCHORER_ROLE, other.account)
        assert second.status == 1
        assert events_of(second) == []
        assert c.has_role(ANCHORER_ROLE, other.account)
    finally:
        revoked = c.revoke_role(ANCHORER_ROLE, other.account)
    assert events_of(revoked) == [("RoleRevoked", role_args)]
    assert events_of(c.revoke_role(ANCHORER_ROLE, other.account)) == []
    # Renouncing a role one does not hold is a no-op too.
    assert events_of(other.renounce_role(ANCHORER_ROLE)) == []

    c.grant_role(ANCHORER_ROLE, other.account)
    renounced = other.renounce_role(ANCHORER_ROLE)
    assert events_of(renounced) == [
        (
            "RoleRevoked",
            {"role": hex32(ANCHORER_ROLE), "account": other.account, "sender": other.account},
        )
    ]
    assert not c.has_role(ANCHORER_ROLE, other.account)


def anchor_gas_is_bounded_and_flat(h: Harness) -> None:
    c = h.client
    key = fresh_log_key(c, "gas")
    first = c.anchor(key, 1, root_of("g1")).gas_used
    small = c.anchor(key, 2, root_of("g2")).gas_used
    big = c.anchor(key, MAX_UINT64 - 1, root_of("g3")).gas_used
    h.measurements.update(
        anchor_gas_first_of_log=first, anchor_gas_small_size=small, anchor_gas_huge_size=big
    )
    assert first < MAX_ANCHOR_GAS, f"first anchor of a log costs {first} gas"
    assert small < MAX_ANCHOR_GAS and big < MAX_ANCHOR_GAS
    assert abs(big - small) <= FLAT_GAS_TOLERANCE, f"size 2: {small} gas, 2**64-2: {big} gas"


def raw_transactions_are_idempotent_and_decoded(h: Harness) -> None:
    c = h.client
    key = fresh_log_key(c, "raw")
    tx = c.sign_anchor_tx(key, 3, root_of("raw"))
    assert c.send_raw(tx) == tx.tx_hash
    rc = c.wait_for_receipt(tx.tx_hash)
    assert rc.status == 1 and rc.tx_hash == tx.tx_hash
    assert c.send_raw(tx) == tx.tx_hash  # already mined: resending is not an error
    assert c.receipt(tx.tx_hash) == rc

    # Another transaction with the same nonce is not the same transaction.
    clash = c.sign_anchor_tx(key, 4, root_of("clash"), nonce=tx.nonce)
    with pytest.raises(AnchorError, match="already used by another transaction") as info:
        c.send_raw(clash)
    assert info.value.details["reason"] == "nonce_used"

    # A reverting raw transaction is mined with status 0.
    bad = c.sign_anchor_tx(key, 2, root_of("bad"))
    c.send_raw(bad)
    failed = c.wait_for_receipt(bad.tx_hash)
    assert failed.status == 0 and failed.events == ()
    assert c.latest_tree_size(key) == 3
    # The local nonce manager recovers after the clash.
    assert c.anchor(key, 5, root_of("after")).status == 1


def deploy_refuses_zero_admin_and_honours_admin(h: Harness) -> None:
    expect_revert(
        lambda: h.deploy(ZERO_ADDRESS), "CarbonAnchorInvalidAdmin", {"admin": ZERO_ADDRESS}
    )
    other = h.other(2)
    address = h.deploy(other.account)
    assert address != h.client.contract_address
    mine = h.attach(address, h.other_keys[2])
    for role in (DEFAULT_ADMIN_ROLE, ANCHORER_ROLE):
        assert mine.has_role(role, other.account)
        assert not mine.has_role(role, h.client.account)
    key = fresh_log_key(mine, "deployed")
    assert mine.anchor(key, 1, root_of("d")).status == 1
    assert mine.latest_tree_size(key) == 1 and h.client.latest_tree_size(key) == 0


BEHAVIOURS: tuple[Callable[[Harness], None], ...] = (
    anchors_are_recorded_and_readable,
    tree_size_must_increase,
    empty_root_and_zero_size_are_rejected,
    anchoring_requires_anchorer_role,
    granting_a_role_twice_emits_one_event,
    anchor_gas_is_bounded_and_flat,
    raw_transactions_are_idempotent_and_decoded,
    deploy_refuses_zero_admin_and_honours_admin,
)
