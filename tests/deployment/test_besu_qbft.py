"""scripts/besu_qbft.py: the QBFT genesis extraData matches Besu's documented encoding byte
for byte, and the generated network is self-consistent (keys, addresses, enodes, configs)."""

from __future__ import annotations

import importlib.util
import json
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import rlp  # type: ignore[import-untyped]
from eth_keys import keys

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "besu_qbft.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("besu_qbft", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["besu_qbft"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


besu_qbft = _load()

# Test vectors: Besu's documentation, "Configure QBFT consensus" (besu-docs,
# docs/private-networks/how-to/configure/consensus/qbft.md). Each is the extraData Besu
# produced for the listed validators, in that order.
DOCUMENTED = [
    pytest.param(  # "Generate extra data": `besu rlp encode --type=QBFT_EXTRA_DATA`
        ["4592c8e45706cc08b8f44b11e43cba0cfc5892cb", "06e23768a0f59cf365e18c2e0c89e151bcdedc70",
         "c5327f96ee02d7bcbc1bf1236b8c15148971e1de", "ab5e7f4061c605820d3744227eed91ff8e2c8908"],
        "f87aa00000000000000000000000000000000000000000000000000000000000000000f854944592c8e4"
        "5706cc08b8f44b11e43cba0cfc5892cb9406e23768a0f59cf365e18c2e0c89e151bcdedc7094c5327f96"
        "ee02d7bcbc1bf1236b8c15148971e1de94ab5e7f4061c605820d3744227eed91ff8e2c8908c080c0",
        id="rlp-encode-example"),
    pytest.param(  # the genesis file example, block header validator selection
        ["64a702e6263b7297a96638cac6ae65e6541f4169", "3923390ad55e90c237593b3b0e401f3b08a03185",
         "aefdb9a738c9f433e5b6b212a6d62f6370c2f692", "c7eeb9a4e00ce683cf93039b212648e01c6c6b78"],
        "f87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6"
        "263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a7"
        "38c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0",
        id="genesis-example"),
    pytest.param(  # the genesis file example, contract validator selection: no validators
        [], "e5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0",
        id="contract-selection-example"),
]


@pytest.mark.parametrize(("validators", "expected"), DOCUMENTED)
def test_extra_data_matches_besu_documentation(validators: list[str], expected: str) -> None:
    assert besu_qbft.qbft_extra_data([bytes.fromhex(v) for v in validators]).hex() == expected


def test_extra_data_layout_is_qbft_not_ibft2() -> None:
    one = bytes.fromhex("9811ebc35d7b06b3fa8dc5809a1f9c52751e1deb")
    extra = besu_qbft.qbft_extra_data([one])
    vanity, validators, vote, round_, seals = rlp.decode(extra)
    assert vanity == bytes(32) and validators == [one]
    assert vote == [] and round_ == b"" and seals == []
    # QBFT: no vote is an empty list (c0), round 0 an empty string (80). IBFT 2.0 would
    # end ...80 84 00000000 c0 (vote 0x80, a four-byte round); a QBFT node refuses it.
    assert extra.endswith(one + bytes.fromhex("c080c0"))


def test_extra_data_refuses_malformed_addresses() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        besu_qbft.qbft_extra_data([bytes(19)])


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qbft") / "net"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--chain-id", "4242",
         "--fund", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "4-validator QBFT network (chain id 4242)" in done.stdout
    return out


def test_genesis_names_the_generated_validators(network: Path) -> None:
    genesis = json.loads((network / "genesis.json").read_text())
    config = genesis["config"]
    assert config["chainId"] == 4242 and config["qbft"]["blockperiodseconds"] == 2
    assert config["shanghaiTime"] == 0 and config["londonBlock"] == 0  # PUSH0 artifacts
    assert config["zeroBaseFee"] is True
    assert genesis["mixHash"] == besu_qbft.BFT_MIX_HASH and genesis["difficulty"] == "0x1"
    assert "f39fd6e51aad88f6f4ce6ab8827279cfffb92266" in genesis["alloc"]

    _, listed, vote, round_, seals = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    addresses = []
    for n in range(1, 5):
        node = network / f"validator-{n}"
        key = keys.PrivateKey(bytes.fromhex((node / "key").read_text().removeprefix("0x")))
        address = key.public_key.to_canonical_address()
        assert (node / "address").read_text() == "0x" + address.hex()
        assert (node / "key.pub").read_text() == "0x" + key.public_key.to_bytes().hex()
        assert stat.S_IMODE((node / "key").stat().st_mode) == 0o600
        addresses.append(address)
    assert listed == sorted(addresses)
    assert (vote, round_, seals) == ([], b"", [])


def test_enodes_configs_and_summary_agree(network: Path) -> None:
    summary = json.loads((network / "network.json").read_text())
    static = json.loads((network / "static-nodes.json").read_text())
    assert summary["chain_id"] == 4242
    assert "key" not in json.dumps(summary).replace("enode", "")  # no private material
    assert static == [v["enode"] for v in summary["validators"]]
    for n, (v, host) in enumerate(zip(summary["validators"], besu_qbft.DEFAULT_HOSTS,
                                      strict=True), 1):
        pub = (network / f"validator-{n}" / "key.pub").read_text().removeprefix("0x")
        assert v["enode"] == f"enode://{pub}@{host}:30303"
        config = tomllib.loads((network / f"validator-{n}" / "config.toml").read_text())
        assert config["node-private-key-file"] == f"/besu/validator-{n}/key"
        assert config["genesis-file"] == "/besu/genesis.json"
        assert config["p2p-host"] == host and config["p2p-port"] == 30303
        assert sorted(config["bootnodes"]) == sorted(e for e in static if e != v["enode"])
        assert config["rpc-http-enabled"] is True and config["rpc-http-port"] == 8545
        assert config["min-gas-price"] == 0 and config["sync-mode"] == "FULL"
        assert config["data-path"] == besu_qbft.DATA_PATH


def test_refuses_to_replace_a_network_without_force(network: Path) -> None:
    before = (network / "validator-1" / "key").read_text()
    done = subprocess.run([sys.executable, str(SCRIPT), str(network)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "pass --force" in done.stderr
    assert (network / "validator-1" / "key").read_text() == before


def test_refuses_bad_hosts_and_addresses(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        besu_qbft.write_network(tmp_path / "a", hosts=["besu-1", "b", "c", "d"])
    with pytest.raises(ValueError, match="need 4 hosts"):
        besu_qbft.write_network(tmp_path / "b", hosts=["10.0.0.1"])
    with pytest.raises(ValueError, match="not a 20-byte hex address"):
        besu_qbft.write_network(tmp_path / "c", fund=["0x1234"])
    assert not (tmp_path / "a").exists()
