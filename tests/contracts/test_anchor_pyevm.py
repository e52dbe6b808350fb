"""The behaviour suite against the in-process py-evm chain (``ChainClient.embedded``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from behaviours import BEHAVIOURS, Harness
from eth_account import Account

from ledger_service._internal.chain import ANCHORER_ROLE, DEFAULT_ADMIN_ROLE, ChainClient
from ledger_service.errors import InvalidInputError

#: eth-tester's genesis funds the accounts of private keys 1..10.
DEV_KEYS = [f"0x{i:064x}" for i in range(1, 11)]


@pytest.fixture(scope="module")
def harness() -> Harness:
    client = ChainClient.embedded(private_key=DEV_KEYS[0])
    w3 = client._w3  # the embedded chain is reachable only through its client

    def deploy(admin: str | None) -> str:
        return ChainClient.deploy(w3, DEV_KEYS[0], admin=admin)

    def attach(address: str, key: str) -> ChainClient:
        return ChainClient(w3, Account.from_key(key), address, client.chain_id)

    return Harness(client, DEV_KEYS[1:], deploy, attach)


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
def test_behaviour(
    harness: Harness, behaviour: Callable[[Harness], None], request: pytest.FixtureRequest
) -> None:
    behaviour(harness)
    # Gas measurements go to the test report (junit properties, --report-log).
    while harness.measurements:
        request.node.user_properties.append(harness.measurements.popitem())


def test_embedded_generates_a_funded_admin_and_anchorer() -> None:
    client = ChainClient.embedded()
    assert client.account not in {Account.from_key(k).address for k in DEV_KEYS}
    assert client.has_role(DEFAULT_ADMIN_ROLE, client.account)
    assert client.has_role(ANCHORER_ROLE, client.account)
    assert client.contract_address.startswith("0x") and len(client.contract_address) == 42
    assert client.chain_id == 131277322940537
    assert client.block_number() >= 2


def test_log_key_is_keccak_of_utf8() -> None:
    assert ChainClient.log_key("86.1000.1/log.main").hex() == (
        "3d8f2f6f38c1bf7d4d1dd649596b1a2a90a3836dea3dc3babfff712eecd687f8"
    )


@pytest.mark.parametrize(
    ("key", "size", "root"),
    [
        (b"\x01" * 31, 1, b"\x02" * 32),
        (b"\x01" * 32, -1, b"\x02" * 32),
        (b"\x01" * 32, 2**64, b"\x02" * 32),
        (b"\x01" * 32, 1, "0x02"),
    ],
    ids=["short-key", "negative-size", "size-overflow", "root-not-bytes"],
)
def test_malformed_arguments_are_refused_before_signing(
    harness: Harness, key: bytes, size: int, root: bytes
) -> None:
    with pytest.raises(InvalidInputError):
        harness.client.sign_anchor_tx(key, size, root)
