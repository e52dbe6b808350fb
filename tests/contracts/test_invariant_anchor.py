"""Stateful property test of ``CarbonAnchor`` on the embedded chain.

A port of OpenZeppelin's formal AccessControl rules (``onlyGrantCanGrant``) and of the
anchor's own rules to a Hypothesis ``RuleBasedStateMachine`` over {grant, revoke,
renounce, anchor}. A plain Python model predicts every outcome (the exact custom error,
or the exact events) and the invariants compare the model with the chain after every
step:

- an account gains a role only through ``grantRole`` (and loses it only through
  ``revokeRole`` / ``renounceRole``);
- an anchored ``(logKey, treeSize) -> root`` entry never changes or disappears, and
  ``latestTreeSize`` is the largest size anchored for the log.

CI runs a few examples; raise ``ANCHOR_INVARIANT_EXAMPLES`` for a long run.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from behaviours import hex32
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ledger_service._internal.chain import (
    ANCHORER_ROLE,
    DEFAULT_ADMIN_ROLE,
    ChainClient,
)
from ledger_service.errors import AnchorError

DEV_KEYS = [f"0x{i:064x}" for i in range(1, 11)]  # funded by eth-tester's genesis
ROLES = (ANCHORER_ROLE, DEFAULT_ADMIN_ROLE)
ROLE_NAMES = {ANCHORER_ROLE: "ANCHORER_ROLE", DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE"}
MAX_UINT64 = 2**64 - 1
ROOTS = (bytes(32),) + tuple(ChainClient.log_key(f"root-{i}") for i in range(3))

_chain: dict[str, Any] = {}


def shared_clients() -> list[ChainClient]:
    """One embedded chain for the whole module: deploying per example costs too much.

    Index 0 is the deployer: admin and anchorer; the others start with no role.
    """
    if not _chain:
        admin = ChainClient.embedded(private_key=DEV_KEYS[0])
        _chain["clients"] = [admin] + [admin.with_signer(k) for k in DEV_KEYS[1:4]]
    clients: list[ChainClient] = _chain["clients"]
    return clients


class AnchorMachine(RuleBasedStateMachine):
    """Model: which account holds which role; what is anchored per log."""

    def __init__(self) -> None:
        super().__init__()
        self.clients = shared_clients()
        self.admin = self.clients[0]
        # Fresh logs per example; roles carry over on the shared chain, so read them.
        self.keys = [ChainClient.log_key(f"invariant/{uuid.uuid4().hex}/{i}") for i in range(2)]
        self.roles: dict[tuple[bytes, str], bool] = {}
        self.anchored: dict[tuple[bytes, int], bytes] = {}
        self.latest: dict[bytes, int] = dict.fromkeys(self.keys, 0)

    @initialize()
    def reset_roles(self) -> None:
        """Every example starts from the same roles: only the deployer holds any.

        The chain is shared between examples, so roles left over by the previous one are
        revoked first; otherwise Hypothesis could not replay an example while shrinking.
        """
        for client in self.clients[1:]:
            for role in ROLES:
                if self.admin.has_role(role, client.account):
                    self.admin.revoke_role(role, client.account)
        for role in ROLES:
            for client in self.clients:
                self.roles[(role, client.account)] = client is self.admin

    # -- helpers -----------------------------------------------------------------------
    def holds(self, role: bytes, client: ChainClient) -> bool:
        return self.roles[(role, client.account)]

    def expect_unauthorized(self, call: Any, account: str, needed: bytes) -> None:
        with pytest.raises(AnchorError) as info:
            call()
        assert info.value.details["error"] == "AccessControlUnauthorizedAccount"
        assert info.value.details["args"] == {"account": account, "neededRole": hex32(needed)}

    # -- rules -------------------------------------------------------------------------
    @rule(sender=st.integers(0, 3), account=st.integers(1, 3), role=st.sampled_from(ROLES))
    def grant(self, sender: int, account: int, role: bytes) -> None:
        by, to = self.clients[sender], self.clients[account]
        if not self.holds(DEFAULT_ADMIN_ROLE, by):
            self.expect_unauthorized(
                lambda: by.grant_role(role, to.account), by.account, DEFAULT_ADMIN_ROLE
            )
            return
        rc = by.grant_role(role, to.account)
        expected = (
            []
            if self.holds(role, to)
            else [
                ("RoleGranted", {"role": hex32(role), "account": to.account, "sender": by.account})
            ]
        )
        assert [(e.name, e.args) for e in rc.events] == expected
        self.roles[(role, to.account)] = True

    @rule(sender=st.integers(0, 3), account=st.integers(1, 3), role=st.sampled_from(ROLES))
    def revoke(self, sender: int, account: int, role: bytes) -> None:
        by, to = self.clients[sender], self.clients[account]
        if not self.holds(DEFAULT_ADMIN_ROLE, by):
            self.expect_unauthorized(
                lambda: by.revoke_role(role, to.account), by.account, DEFAULT_ADMIN_ROLE
            )
            return
        rc = by.revoke_role(role, to.account)
        expected = (
            [("RoleRevoked", {"role": hex32(role), "account": to.account, "sender": by.account})]
            if self.holds(role, to)
            else []
        )
        assert [(e.name, e.args) for e in rc.events] == expected
        self.roles[(role, to.account)] = False

    @rule(who=st.integers(1, 3), role=st.sampled_from(ROLES))
    def renounce(self, who: int, role: bytes) -> None:
        client = self.clients[who]
        rc = client.renounce_role(role)
        expected = (
            [
                (
                    "RoleRevoked",
                    {"role": hex32(role), "account": client.account, "sender": client.account},
                )
            ]
            if self.holds(role, client)
            else []
        )
        assert [(e.name, e.args) for e in rc.events] == expected
        self.roles[(role, client.account)] = False

    @rule(
        who=st.integers(0, 3),
        log=st.integers(0, 1),
        step=st.one_of(st.integers(-2, 3), st.just("max")),
        root=st.sampled_from(ROOTS),
    )
    def anchor(self, who: int, log: int, step: int | str, root: bytes) -> None:
        """Anchor at a size relative to the latest one, to hit equal and smaller sizes."""
        client, key = self.clients[who], self.keys[log]
        latest = self.latest[key]
        size = MAX_UINT64 if step == "max" else min(max(latest + int(step), 0), MAX_UINT64)
        if not self.holds(ANCHORER_ROLE, client):
            expected: tuple[str, dict[str, Any]] | None = (
                "AccessControlUnauthorizedAccount",
                {"account": client.account, "neededRole": hex32(ANCHORER_ROLE)},
            )
        elif root == bytes(32):
            expected = ("CarbonAnchorEmptyRoot", {})
        elif size == 0:
            expected = ("CarbonAnchorZeroTreeSize", {})
        elif size <= latest:
            expected = (
                "CarbonAnchorTreeSizeNotIncreasing",
                {"logKey": hex32(key), "latest": latest, "got": size},
            )
        else:
            expected = None
        if expected is not None:
            with pytest.raises(AnchorError) as info:
                client.anchor(key, size, root)
            assert (info.value.details["error"], info.value.details["args"]) == expected
            return
        rc = client.anchor(key, size, root)
        assert [
            (e.name, e.args["treeSize"], e.args["root"], e.args["submitter"]) for e in rc.events
        ] == [("TreeHeadAnchored", size, hex32(root), client.account)]
        self.anchored[(key, size)] = root
        self.latest[key] = size

    @precondition(lambda self: not self.holds(ANCHORER_ROLE, self.clients[1]))
    @rule()
    def an_unprivileged_account_stays_unprivileged(self) -> None:
        """Nothing but grantRole gives a role: anchoring or renouncing does not."""
        outsider = self.clients[1]
        size = min(self.latest[self.keys[0]] + 1, MAX_UINT64)
        self.expect_unauthorized(
            lambda: outsider.anchor(self.keys[0], size, ROOTS[1]), outsider.account, ANCHORER_ROLE
        )
        outsider.renounce_role(ANCHORER_ROLE)
        assert not self.admin.has_role(ANCHORER_ROLE, outsider.account)

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def roles_change_only_through_grant_revoke_renounce(self) -> None:
        for (role, account), held in self.roles.items():
            assert self.admin.has_role(role, account) == held, (
                f"{account} {'lost' if held else 'gained'} {ROLE_NAMES[role]} "
                "without a matching grantRole/revokeRole/renounceRole"
            )

    @invariant()
    def anchors_only_grow_and_latest_is_the_max(self) -> None:
        for (key, size), root in self.anchored.items():
            record = self.admin.anchor_of(key, size)
            assert record is not None and record.root == root, (key.hex(), size)
        for key in self.keys:
            sizes = [s for (k, s) in self.anchored if k == key]
            assert self.admin.latest_tree_size(key) == max(sizes, default=0)


TestInvariantAnchor = AnchorMachine.TestCase
TestInvariantAnchor.settings = settings(
    max_examples=int(os.environ.get("ANCHOR_INVARIANT_EXAMPLES", "15")),
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
