"""``carbon-ledger devchain`` and deployment files, against real anvil and ganache processes.

The command runs as a subprocess, as a developer would run it; the tests wait for its
deployment file, point a ledger at it through ``deployment_file`` (``LEDGER_DEPLOYMENT_FILE``)
with a key of its own that ``--anchorer`` granted ``ANCHORER_ROLE``, anchor, verify a
proof bundle against the node, and stop the command with SIGINT (Ctrl-C).

Transaction envelopes: anvil and ganache (Shanghai) both have a base fee, so the client
signs EIP-1559 (type 2) transactions there. Legacy (type 0) transactions are what it signs
on a chain without a base fee; a pre-London ganache (``--chain.hardfork berlin``) is
used for that, but ``CarbonAnchor`` is compiled for EVM Shanghai (its bytecode uses
``PUSH0``), so it cannot be deployed there: that test checks the clear refusal and a
legacy transaction mined on the Berlin chain, and the full anchoring path with legacy
transactions runs on anvil and ganache with ``tx_type="legacy"``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from carbon_protocol.chain_view import JsonRpcChainView
from carbon_protocol.verify import verify_bundle
from ledger_service import registry
from ledger_service._internal.chain import ChainClient, _http_web3
from ledger_service._internal.contract_artifacts import load_artifact
from ledger_service.deployment import Deployment
from ledger_service.devchain import CHAIN_IDS, DEV_KEYS, DevNode, free_port, start_node
from ledger_service.errors import AnchorError, ChainMismatchError
from ledger_service.ledger import Ledger
from ledger_service.models import EnterpriseCreate, SiteCreate
from ledger_service.settings import Settings

pytestmark = pytest.mark.timeout(120)
chain = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[2]
SERVICE_KEY = DEV_KEYS[1]
SERVICE = Account.from_key(SERVICE_KEY).address
DEPLOYER = Account.from_key(DEV_KEYS[0]).address
CODE_KECCAK = "0x" + keccak(load_artifact("CarbonAnchor").deployed_bytecode).hex()


def rpc(url: str, method: str, *params: Any) -> Any:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                   "params": list(params)}, timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


class Devchain:
    """``carbon-ledger devchain`` running as a subprocess."""

    def __init__(self, workdir: Path, node: str, *extra: str) -> None:
        self.port = free_port()
        self.out = workdir / "deployment.json"
        self.log = workdir / f"devchain-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ledger_service._cli", "devchain", "--node", node,
                 "--port", str(self.port), "--out", str(self.out), "--anchorer", SERVICE,
                 *extra], cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def wait_for_file(self, previous_mtime: float = 0.0) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while not (self.out.exists() and self.out.stat().st_mtime > previous_mtime):
            if self.proc.poll() is not None:
                pytest.fail(f"devchain exited with {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no deployment file after 60 s: {self.output()}")
            time.sleep(0.1)
        return dict(json.loads(self.out.read_text()))

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def devchain(tmp_path: Path) -> Iterator[Callable[..., Devchain]]:
    started: list[Devchain] = []

    def start(node: str, *extra: str) -> Devchain:
        dc = Devchain(tmp_path, node, *extra)
        started.append(dc)
        return dc

    yield start
    for dc in started:
        dc.kill()


def eip155_v(tx: dict[str, Any], chain_id: int) -> bool:
    """A legacy transaction signed for ``chain_id`` (EIP-155: v = 2 * chainId + 35/36),
    so it cannot be replayed on another chain."""
    return int(tx["v"], 16) in (2 * chain_id + 35, 2 * chain_id + 36)


def port_open(port: int) -> bool:
    try:
        httpx.post(f"http://127.0.0.1:{port}", json={}, timeout=0.5)
    except httpx.TransportError:
        return False
    return True


def seed(ledger: Ledger) -> None:
    """Register the enterprise and site the shared ``device_factory`` puts devices under."""
    ledger.call(registry.create_enterprise,
                EnterpriseCreate(id="86.1000.1/ent.test", name="Test Steel"))
    ledger.call(registry.create_site, SiteCreate(
        id="86.1000.1/site.test", enterprise_id="86.1000.1/ent.test", name="Plant",
        region="Liaoning"))


def anchor_one(ledger: Ledger, device_factory: Callable[..., Any]) -> tuple[Any, Any]:
    """Ingest three readings and anchor them; return (receipt of the first, the anchor)."""
    dev = device_factory(ledger)
    result = ledger.ingest([dev.signed() for _ in range(3)])
    assert result.accepted == 3
    events = ledger.anchor_tick(force=True)
    assert [e.status for e in events] == ["final"], events
    return result.items[0].receipt, ledger.anchors()[-1]


# -- the command --------------------------------------------------------------------------


@chain
@pytest.mark.parametrize("node", ["anvil", "ganache"])
def test_devchain_writes_a_deployment_file_the_service_anchors_with(
        node: str, devchain: Callable[..., Devchain], seeded_ledger: Any,
        device_factory: Any, tmp_path: Path) -> None:
    dc = devchain(node)
    dep = dc.wait_for_file()

    url = f"http://127.0.0.1:{dc.port}"
    assert dep == {
        "chain_id": CHAIN_IDS[node], "rpc_url": url,
        "contract_address": dep["contract_address"], "contract_code_keccak": CODE_KECCAK,
        "compiler": load_artifact("CarbonAnchor").compiler, "deployer": DEPLOYER,
        "deployed_at_block": dep["deployed_at_block"], "contract_name": "CarbonAnchor",
        "node": node,
    }
    code = bytes.fromhex(rpc(url, "eth_getCode", dep["contract_address"], "latest")[2:])
    assert "0x" + keccak(code).hex() == dep["contract_code_keccak"]
    receipt = rpc(url, "eth_getTransactionReceipt",
                  rpc(url, "eth_getBlockByNumber", hex(dep["deployed_at_block"]),
                      False)["transactions"][0])
    assert receipt["contractAddress"].lower() == dep["contract_address"].lower()

    ledger = seeded_ledger(deployment_file=dc.out, anchor_private_key=SERVICE_KEY)
    assert (ledger.chain.chain_id, ledger.chain.contract_address) == (
        CHAIN_IDS[node], dep["contract_address"])
    first, anchor = anchor_one(ledger, device_factory)
    # Signed by the service's own key (granted by --anchorer), as an EIP-1559 envelope:
    # both nodes have a base fee.
    tx = rpc(url, "eth_getTransactionByHash", anchor.tx_hash)
    assert tx["from"].lower() == SERVICE.lower() and int(tx["type"], 16) == 2
    bundle = ledger.export_proof(first.reading_id)
    report = verify_bundle(bundle, chain=JsonRpcChainView(url))
    assert report.chain_checked and bundle.anchor.submitter == SERVICE.lower()

    assert dc.interrupt() == 0, dc.output()
    deadline = time.monotonic() + 10
    while port_open(dc.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open(dc.port), "the node outlived devchain"


@chain
def test_devchain_with_state_keeps_the_chain_and_the_contract(
        devchain: Callable[..., Devchain], seeded_ledger: Any, device_factory: Any,
        tmp_path: Path) -> None:
    state = tmp_path / "chain-state.json"
    dc = devchain("anvil", "--state", str(state))
    dep = dc.wait_for_file()
    ledger = seeded_ledger(deployment_file=dc.out, anchor_private_key=SERVICE_KEY)
    _, anchor = anchor_one(ledger, device_factory)
    assert dc.interrupt() == 0, dc.output()
    assert state.exists()  # anvil dumped its chain on SIGTERM

    mtime = dc.out.stat().st_mtime
    again = devchain("anvil", "--state", str(state))
    assert again.port != dc.port
    dep2 = again.wait_for_file(previous_mtime=mtime)
    # Same contract, not a new deployment; only the endpoint moved.
    assert dep2 == dep | {"rpc_url": f"http://127.0.0.1:{again.port}"}
    client = ChainClient.connect(dep2["rpc_url"], SERVICE_KEY, dep2["contract_address"],
                                 expected_chain_id=dep2["chain_id"])
    on_chain = client.anchor_of(ledger.anchorer.log_key, anchor.tree_size)
    assert on_chain is not None and on_chain.root.hex() == anchor.root_hash
    assert again.interrupt() == 0


# -- settings from a deployment file ------------------------------------------------------


def write_deployment(path: Path, **overrides: Any) -> Path:
    values: dict[str, Any] = {
        "chain_id": 31337, "rpc_url": "http://127.0.0.1:8545",
        "contract_address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "contract_code_keccak": CODE_KECCAK, "compiler": load_artifact("CarbonAnchor").compiler,
        "deployer": DEPLOYER, "deployed_at_block": 1}
    values.update(overrides)
    path.write_text(json.dumps(values))
    return path


def test_settings_take_the_chain_from_the_deployment_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_deployment(tmp_path / "d.json")
    monkeypatch.setenv("LEDGER_DEPLOYMENT_FILE", str(path))
    monkeypatch.setenv("LEDGER_ANCHOR_PRIVATE_KEY", SERVICE_KEY)
    # Agreeing explicit values are fine (case and trailing slash aside).
    monkeypatch.setenv("LEDGER_CHAIN_ID", "31337")
    monkeypatch.setenv("LEDGER_CONTRACT_ADDRESS", "0x5fbdb2315678afecb367f032d93f642f64180aa3")
    s = Settings(data_dir=tmp_path)
    assert (s.chain, s.rpc_url, s.chain_id) == ("rpc", "http://127.0.0.1:8545", 31337)
    assert s.contract_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize(("var", "value", "message"), [
    ("LEDGER_CHAIN_ID", "1", "LEDGER_CHAIN_ID is 1, the file says 31337"),
    ("LEDGER_RPC_URL", "http://127.0.0.1:9999",
     "LEDGER_RPC_URL is http://127.0.0.1:9999, the file says http://127.0.0.1:8545"),
    ("LEDGER_CONTRACT_ADDRESS", "0x" + "11" * 20,
     "LEDGER_CONTRACT_ADDRESS is 0x1111111111111111111111111111111111111111, the file says "
     "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    ("LEDGER_CHAIN", "embedded", "needs LEDGER_CHAIN=rpc, got LEDGER_CHAIN=embedded"),
])
def test_settings_refuse_env_that_disagrees_with_the_deployment_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str,
        message: str) -> None:
    monkeypatch.setenv("LEDGER_DEPLOYMENT_FILE", str(write_deployment(tmp_path / "d.json")))
    monkeypatch.setenv("LEDGER_ANCHOR_PRIVATE_KEY", SERVICE_KEY)
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        Settings(data_dir=tmp_path)


def test_a_deployment_file_of_another_build_is_refused(tmp_path: Path) -> None:
    other = "0x" + "ab" * 32
    path = write_deployment(tmp_path / "d.json", contract_code_keccak=other,
                            compiler="0.8.20+commit.a1b79de6")
    with pytest.raises(ValueError, match=f"another build of CarbonAnchor: code keccak "
                                         f"expected {CODE_KECCAK} .*, got {other}"):
        Settings(data_dir=tmp_path, deployment_file=path, anchor_private_key=SERVICE_KEY)
    with pytest.raises(ChainMismatchError, match="another build"):
        Deployment.load(path)


def test_a_malformed_deployment_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"chain_id": 31337}')
    with pytest.raises(ValueError, match="deployment file .* is malformed: rpc_url"):
        Settings(data_dir=tmp_path, deployment_file=path, anchor_private_key=SERVICE_KEY)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[DevNode]:
    with start_node("anvil", tmp_path / "anvil") as node:
        yield node


@chain
def test_service_start_checks_chain_id_and_code_against_the_file(
        anvil: DevNode, tmp_path: Path) -> None:
    good = Deployment.model_validate(
        {"chain_id": anvil.chain_id, "rpc_url": anvil.url,
         "contract_address": ChainClient.deploy(anvil.url, DEV_KEYS[0]),
         "contract_code_keccak": CODE_KECCAK, "compiler": load_artifact("CarbonAnchor").compiler,
         "deployer": DEPLOYER, "deployed_at_block": 1})

    def open_with(**changes: Any) -> Ledger:
        path = tmp_path / "d.json"
        good.model_copy(update=changes).write(path)
        return Ledger.open(Settings(data_dir=tmp_path / "ledger", deployment_file=path,
                                    anchor_private_key=DEV_KEYS[0]))

    open_with().engine.dispose()
    with pytest.raises(ChainMismatchError,
                       match=r"chain id mismatch at http://127.0.0.1:\d+: expected 999, "
                             "got 31337"):
        open_with(chain_id=999)
    with pytest.raises(ChainMismatchError,
                       match=f"code at {DEPLOYER} is not CarbonAnchor .*: expected \\d+ bytes "
                             f"with keccak {CODE_KECCAK}, got 0 bytes"):
        open_with(contract_address=DEPLOYER)


# -- transaction envelopes ----------------------------------------------------------------


@chain
@pytest.mark.parametrize("node", ["anvil", "ganache"])
def test_legacy_transactions_anchor_too(node: str, tmp_path: Path, seeded_ledger: Any,
                                        device_factory: Any) -> None:
    with start_node(node, tmp_path / node) as dev:  # type: ignore[arg-type]
        address = ChainClient.deploy(dev.url, DEV_KEYS[0])
        chain = ChainClient.connect(dev.url, DEV_KEYS[0], address,
                                    expected_chain_id=dev.chain_id, tx_type="legacy")
        ledger = Ledger.open(Settings(
            data_dir=tmp_path / "ledger", chain="rpc", rpc_url=dev.url, chain_id=dev.chain_id,
            contract_address=address, anchor_private_key=DEV_KEYS[0]), chain=chain)
        seed(ledger)
        first, anchor = anchor_one(ledger, device_factory)
        tx = rpc(dev.url, "eth_getTransactionByHash", anchor.tx_hash)
        assert int(tx["type"], 16) == 0 and "maxFeePerGas" not in tx
        assert eip155_v(tx, dev.chain_id)
        verify_bundle(ledger.export_proof(first.reading_id), chain=JsonRpcChainView(dev.url))
        ledger.engine.dispose()


@chain
def test_a_pre_london_chain_gets_legacy_transactions_and_a_clear_deploy_refusal(
        tmp_path: Path) -> None:
    with start_node("ganache", tmp_path / "berlin", hardfork="berlin") as dev:
        assert rpc(dev.url, "eth_getBlockByNumber", "latest", False).get("baseFeePerGas") is None
        with pytest.raises(AnchorError, match="pre-London .* compiled for EVM shanghai "
                                              r"\(PUSH0 needs Shanghai\)"):
            ChainClient.deploy(dev.url, DEV_KEYS[0])
        # The envelope itself works there: "auto" signs type 0 with gasPrice, EIP-155.
        target = "0x" + "22" * 20
        client = ChainClient(_http_web3(dev.url, 10), Account.from_key(DEV_KEYS[0]), target,
                             dev.chain_id, dev.url)
        tx = client.sign_anchor_tx(b"\x01" * 32, 1, b"\x02" * 32)
        assert tx.raw[0] >= 0xC0  # an RLP list: a legacy transaction, no type byte
        client.send_raw(tx)
        receipt = client.wait_for_receipt(tx.tx_hash, timeout=10)
        assert receipt.status == 1
        mined = rpc(dev.url, "eth_getTransactionByHash", tx.tx_hash)
        assert int(mined["type"], 16) == 0 and eip155_v(mined, dev.chain_id)
        with pytest.raises(AnchorError, match="no base fee .* use tx_type legacy"):
            ChainClient(client._w3, Account.from_key(DEV_KEYS[0]), target, dev.chain_id,
                        dev.url, "eip1559").sign_anchor_tx(b"\x01" * 32, 2, b"\x02" * 32)
