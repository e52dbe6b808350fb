"""The behaviour suite against a real anvil process, over JSON-RPC.

anvil comes from the pinned npm package ``@foundry-rs/anvil`` (``npm ci``). It runs with
``--prune-history`` and a cache path inside pytest's tmp dir, so it writes nothing under
``~/.foundry`` and keeps only the latest state, like a pruned production node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from behaviours import BEHAVIOURS, Harness

from ledger_service._internal.chain import ChainClient
from ledger_service.devchain import CHAIN_IDS, DEV_KEYS, free_port, start_node
from ledger_service.errors import ChainMismatchError, ChainUnavailableError

pytestmark = pytest.mark.chain

ANVIL_CHAIN_ID = CHAIN_IDS["anvil"]
ANVIL_KEYS = list(DEV_KEYS)


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_node("anvil", tmp_path_factory.mktemp("anvil")) as node:
        yield node.url


@pytest.fixture(scope="module")
def harness(anvil_url: str) -> Harness:
    address = ChainClient.deploy(anvil_url, ANVIL_KEYS[0])
    client = ChainClient.connect(
        anvil_url, ANVIL_KEYS[0], address, expected_chain_id=ANVIL_CHAIN_ID
    )

    def deploy(admin: str | None) -> str:
        return ChainClient.deploy(anvil_url, ANVIL_KEYS[0], admin=admin)

    def attach(contract: str, key: str) -> ChainClient:
        return ChainClient.connect(anvil_url, key, contract, expected_chain_id=ANVIL_CHAIN_ID)

    return Harness(client, ANVIL_KEYS[1:], deploy, attach)


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
def test_behaviour(
    harness: Harness, behaviour: Callable[[Harness], None], request: pytest.FixtureRequest
) -> None:
    behaviour(harness)
    # Gas measurements go to the test report (junit properties, --report-log).
    while harness.measurements:
        request.node.user_properties.append(harness.measurements.popitem())


def test_connect_refuses_wrong_chain_id(harness: Harness, anvil_url: str) -> None:
    with pytest.raises(ChainMismatchError, match="expected 1, got 31337") as info:
        ChainClient.connect(
            anvil_url, ANVIL_KEYS[0], harness.client.contract_address, expected_chain_id=1
        )
    assert info.value.details == {"expected": 1, "got": ANVIL_CHAIN_ID}


def test_connect_refuses_an_address_without_the_contract(harness: Harness, anvil_url: str) -> None:
    eoa = harness.client.account
    with pytest.raises(ChainMismatchError, match=f"code at {eoa} is not CarbonAnchor") as info:
        ChainClient.connect(anvil_url, ANVIL_KEYS[0], eoa, expected_chain_id=ANVIL_CHAIN_ID)
    assert "got 0 bytes" in str(info.value)


def test_connect_refuses_a_malformed_address(anvil_url: str) -> None:
    with pytest.raises(ChainMismatchError, match="not a 20-byte hex address"):
        ChainClient.connect(anvil_url, ANVIL_KEYS[0], "0x1234")


def test_unreachable_endpoint_is_chain_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainUnavailableError, match="unavailable") as info:
        ChainClient.connect(url, ANVIL_KEYS[0], "0x" + "11" * 20, timeout=1)
    assert isinstance(info.value, ConnectionError)
