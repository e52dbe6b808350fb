"""The behaviour suite against a real anvil process, over JSON-RPC.

anvil comes from the pinned npm package ``@foundry-rs/anvil`` (``npm ci``). It runs with
``--prune-history`` and a cache path inside pytest's tmp dir, so it writes nothing under
``~/.foundry`` and keeps only the latest state, like a pruned production node.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from behaviours import BEHAVIOURS, Harness

from ledger_service._internal.chain import ChainClient
from ledger_service.errors import ChainMismatchError, ChainUnavailableError

pytestmark = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[2]
ANVIL_CHAIN_ID = 31337
#: anvil's well-known dev keys (mnemonic "test test ... junk"), funded with 10,000 ether.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
]


def anvil_binary() -> Path:
    found = sorted((ROOT / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    if not found:
        pytest.fail(
            "anvil is not installed: run `npm ci` in the repository root "
            "(package.json pins @foundry-rs/anvil)"
        )
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc_ready(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=0.5) as response:
            return "result" in json.loads(response.read())
    except OSError:
        return False


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("anvil")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(anvil_binary()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--silent",
            "--prune-history",
            "--cache-path",
            str(workdir / "cache"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while not rpc_ready(url):
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"anvil exited with {proc.returncode}: {stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"anvil did not answer on {url} within 15 s")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


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
