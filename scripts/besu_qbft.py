#!/usr/bin/env python3
"""Generate a four-validator Hyperledger Besu QBFT network for the compose ``besu`` profile.

    python scripts/besu_qbft.py var/besu-qbft [--chain-id 1338] [--fund 0xADDRESS ...]

writes, into the output directory (refusing to overwrite an existing network without
``--force``, since the node keys are the validators' identities):

``genesis.json``             QBFT genesis (block-header validator selection); its
                             ``extraData`` names the four validators
``static-nodes.json``        the four enode URLs, for ``--static-nodes-file``
``network.json``             chain id, and per validator: address, enode, host (no keys)
``validator-N/key``          node private key, 0x-hex on one line, mode 0600
``validator-N/key.pub``      node public key (64 bytes, 0x-hex), the enode id
``validator-N/address``      validator address (last 20 bytes of keccak(public key))
``validator-N/config.toml``  Besu options for ``besu --config-file``

The QBFT ``extraData`` is ``RLP([32-byte vanity, [validator addresses], vote, round,
seals])`` with, in the genesis block, 32 zero bytes of vanity, no vote (an empty
*list*, 0xc0), round 0 (the empty string, 0x80, as an RLP scalar) and no seals (0xc0).
This is QBFT's layout only: IBFT 2.0 encodes "no vote" as 0x80 and the round as four
bytes, and a QBFT node refuses that genesis. Validators are listed in ascending order.

The chain is a free-gas private network (``zeroBaseFee`` in the genesis and
``min-gas-price=0`` on every node), with London and Shanghai active from genesis:
the CarbonAnchor artifacts are compiled for Shanghai (PUSH0). Nodes find each other at
fixed addresses on the compose network (``--hosts``, which must match the
``ipv4_address`` of the ``besu-N`` services); enode URLs need IP addresses unless Besu's
experimental DNS options are turned on.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import rlp  # type: ignore[import-untyped]
from eth_keys.datatypes import PrivateKey
from eth_utils.address import is_address, to_canonical_address, to_checksum_address
from eth_utils.exceptions import ValidationError

#: ``mixHash`` that identifies an Istanbul-family (IBFT 2.0 / QBFT) block.
BFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
VANITY = bytes(32)
VALIDATORS = 4
#: Fixed addresses of the ``besu-N`` services on the compose network (see docker-compose.yml).
DEFAULT_HOSTS = ("172.30.89.11", "172.30.89.12", "172.30.89.13", "172.30.89.14")
DEFAULT_CHAIN_ID = 1338
P2P_PORT = 30303
RPC_PORT = 8545
#: Where the compose file mounts the output directory, and each node's data volume.
MOUNT = "/besu"
DATA_PATH = "/var/lib/besu"
FUNDING_WEI = 10**24  # 1,000,000 ether per funded account


@dataclass(frozen=True)
class Validator:
    """One validator node: its secp256k1 node key and where its peers reach it."""

    name: str
    private_key: bytes
    host: str

    @property
    def public_key(self) -> bytes:
        """The 64-byte public key (no 0x04 prefix): the node id in its enode URL."""
        return bytes(PrivateKey(self.private_key).public_key.to_bytes())

    @property
    def address(self) -> bytes:
        return bytes(PrivateKey(self.private_key).public_key.to_canonical_address())

    @property
    def enode(self) -> str:
        return f"enode://{self.public_key.hex()}@{self.host}:{P2P_PORT}"


def qbft_extra_data(validators: Sequence[bytes]) -> bytes:
    """QBFT genesis ``extraData`` naming ``validators`` (20-byte addresses, in the order
    given): ``RLP([vanity, validators, no vote, round 0, no seals])``."""
    for v in validators:
        if len(v) != 20:
            raise ValueError(f"a validator address has 20 bytes, got {len(v)}")
    return bytes(rlp.encode([VANITY, list(validators), [], 0, []]))


def new_node_key() -> bytes:
    """32 random bytes that are a valid secp256k1 private key (0 < k < n)."""
    while True:
        candidate = secrets.token_bytes(32)
        try:
            PrivateKey(candidate)
        except ValidationError:
            continue
        return candidate


def genesis(chain_id: int, validators: Sequence[Validator], fund: Sequence[str],
            block_period: int) -> dict[str, object]:
    """The genesis document (validators sorted by address in ``extraData``)."""
    addresses = sorted(v.address for v in validators)
    return {
        "config": {
            "chainId": chain_id,
            "berlinBlock": 0,
            "londonBlock": 0,
            "shanghaiTime": 0,
            "zeroBaseFee": True,
            "qbft": {
                "blockperiodseconds": block_period,
                "epochlength": 30000,
                "requesttimeoutseconds": max(4, 2 * block_period),
            },
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": "0x1c9c380",
        "difficulty": "0x1",
        "mixHash": BFT_MIX_HASH,
        "coinbase": "0x" + "00" * 20,
        "alloc": {to_checksum_address(a)[2:].lower(): {"balance": hex(FUNDING_WEI)}
                  for a in fund},
        "extraData": "0x" + qbft_extra_data(addresses).hex(),
    }


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def node_config(v: Validator, peers: Sequence[Validator]) -> str:
    """``besu --config-file`` contents for ``v`` (paths as mounted by the compose file)."""
    lines = [
        f"# {v.name}, generated by scripts/besu_qbft.py",
        f'data-path = "{DATA_PATH}"',
        f'genesis-file = "{MOUNT}/genesis.json"',
        f'node-private-key-file = "{MOUNT}/{v.name}/key"',
        f'static-nodes-file = "{MOUNT}/static-nodes.json"',
        f"bootnodes = {_toml_list([p.enode for p in peers if p is not v])}",
        f'p2p-host = "{v.host}"',
        'p2p-interface = "0.0.0.0"',
        f"p2p-port = {P2P_PORT}",
        'sync-mode = "FULL"',
        "min-gas-price = 0",
        "rpc-http-enabled = true",
        'rpc-http-host = "0.0.0.0"',
        f"rpc-http-port = {RPC_PORT}",
        f"rpc-http-api = {_toml_list(['ETH', 'NET', 'WEB3', 'QBFT'])}",
        f"host-allowlist = {_toml_list(['*'])}",
        "",
    ]
    return "\n".join(lines)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)  # also when the file already existed with another mode


def write_network(out: Path, *, chain_id: int = DEFAULT_CHAIN_ID,
                  hosts: Sequence[str] = DEFAULT_HOSTS, fund: Sequence[str] = (),
                  block_period: int = 2, force: bool = False) -> list[Validator]:
    """Generate keys and write every file of the network into ``out``."""
    if len(hosts) != VALIDATORS:
        raise ValueError(f"need {VALIDATORS} hosts, got {len(hosts)}")
    for host in hosts:
        ipaddress.ip_address(host)  # enode URLs carry IP addresses
    for address in fund:
        if not is_address(address):
            raise ValueError(f"--fund {address!r} is not a 20-byte hex address")
    if (out / "genesis.json").exists() and not force:
        raise FileExistsError(f"{out} already holds a network (its node keys are the "
                              "validators' identities); pass --force to replace it")
    validators = [Validator(f"validator-{i + 1}", new_node_key(), host)
                  for i, host in enumerate(hosts)]
    out.mkdir(parents=True, exist_ok=True)
    doc = genesis(chain_id, validators, [to_checksum_address(to_canonical_address(a))
                                         for a in fund], block_period)
    _write(out / "genesis.json", json.dumps(doc, indent=2) + "\n")
    _write(out / "static-nodes.json", json.dumps([v.enode for v in validators], indent=2) + "\n")
    _write(out / "network.json", json.dumps({
        "chain_id": chain_id,
        "rpc_port": RPC_PORT,
        "p2p_port": P2P_PORT,
        "validators": [{"name": v.name, "address": to_checksum_address(v.address),
                        "host": v.host, "enode": v.enode} for v in validators],
    }, indent=2) + "\n")
    for v in validators:
        node = out / v.name
        # Besu writes its own key file as 0x-hex without a newline; it reads it with
        # Bytes32.fromHexString, one line.
        _write(node / "key", "0x" + v.private_key.hex(), 0o600)
        _write(node / "key.pub", "0x" + v.public_key.hex())
        _write(node / "address", to_checksum_address(v.address).lower())
        _write(node / "config.toml", node_config(v, validators))
    return validators


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory (e.g. var/besu-qbft)")
    parser.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID)
    parser.add_argument("--block-period", type=int, default=2, help="seconds between blocks")
    parser.add_argument("--hosts", default=",".join(DEFAULT_HOSTS),
                        help="four comma-separated IP addresses, one per validator")
    parser.add_argument("--fund", action="append", default=[], metavar="ADDRESS",
                        help="give ADDRESS a balance in the genesis (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace an existing network")
    args = parser.parse_args(argv)
    try:
        validators = write_network(args.out, chain_id=args.chain_id,
                                   hosts=[h.strip() for h in args.hosts.split(",")],
                                   fund=args.fund, block_period=args.block_period,
                                   force=args.force)
    except (ValueError, FileExistsError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"wrote a {len(validators)}-validator QBFT network (chain id "
                     f"{args.chain_id}) to {args.out}\n")
    for v in validators:
        sys.stdout.write(f"  {v.name}  {to_checksum_address(v.address)}  {v.host}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
