"""Read-only chain look-ups a verifier needs, over plain Ethereum JSON-RPC.

The verifier must not depend on the ledger's chain client or on web3's provider
stack: anyone should be able to check a bundle with a JSON-RPC URL and the published
ABI of one view function. This module speaks JSON-RPC directly (``eth_chainId``,
``eth_call`` of ``anchorOf(bytes32,uint64)``, ``eth_getBlockByNumber``,
``eth_getTransactionReceipt``) and never sends a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from .errors import ProtocolError

__all__ = [
    "OnChainAnchor", "OnChainReceipt", "ChainView", "JsonRpcChainView", "ChainLookupError",
    "log_key",
]

_ANCHOR_OF = keccak(text="anchorOf(bytes32,uint64)")[:4]


def log_key(log_id: str) -> bytes:
    """The contract's key for a log: ``keccak256(utf8(log_id))``."""
    return keccak(log_id.encode("utf-8"))


class ChainLookupError(ProtocolError, ConnectionError):
    """The chain could not be asked (unreachable, or an error answer)."""

    code = "chain_lookup_failed"


@dataclass(frozen=True, slots=True)
class OnChainAnchor:
    """What the anchor contract holds for one ``(log_key, tree_size)``."""

    root: bytes
    timestamp: int
    submitter: str
    block_number: int


@dataclass(frozen=True, slots=True)
class OnChainReceipt:
    """The parts of a transaction receipt a verifier compares."""

    block_number: int
    block_hash: str
    status: int


class ChainView(Protocol):
    """The read-only questions the verifier asks a chain."""

    def chain_id(self) -> int: ...
    def head_block(self) -> int: ...
    def anchor_of(self, contract: str, key: bytes, tree_size: int) -> OnChainAnchor | None: ...
    def block_hash(self, number: int) -> str | None: ...
    def receipt(self, tx_hash: str) -> OnChainReceipt | None: ...


def decode_anchor_of(data: bytes) -> OnChainAnchor | None:
    """Decode ``anchorOf``'s return data; ``None`` when nothing was anchored there."""
    root, timestamp, submitter, block_number = decode(
        ["bytes32", "uint64", "address", "uint64"], data
    )
    if timestamp == 0 and root == b"\x00" * 32:
        return None
    return OnChainAnchor(bytes(root), int(timestamp), str(submitter).lower(), int(block_number))


def anchor_of_calldata(key: bytes, tree_size: int) -> bytes:
    """Calldata for ``anchorOf(bytes32 logKey, uint64 treeSize)``."""
    return _ANCHOR_OF + encode(["bytes32", "uint64"], [key, tree_size])


class JsonRpcChainView:
    """:class:`ChainView` over an HTTP JSON-RPC endpoint."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._url = url
        self._client = httpx.Client(timeout=timeout)
        self._next_id = 0

    def _call(self, method: str, params: list[Any]) -> Any:
        self._next_id += 1
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        try:
            answer = self._client.post(self._url, json=body).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainLookupError(f"{method} to {self._url} failed: {exc}") from exc
        if "error" in answer:
            raise ChainLookupError(f"{method} to {self._url} returned error {answer['error']}")
        return answer.get("result")

    def chain_id(self) -> int:
        return int(self._call("eth_chainId", []), 16)

    def head_block(self) -> int:
        return int(self._call("eth_blockNumber", []), 16)

    def anchor_of(self, contract: str, key: bytes, tree_size: int) -> OnChainAnchor | None:
        data = "0x" + anchor_of_calldata(key, tree_size).hex()
        result = self._call("eth_call", [{"to": contract, "data": data}, "latest"])
        return decode_anchor_of(bytes.fromhex(result[2:]))

    def block_hash(self, number: int) -> str | None:
        block = self._call("eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"]).lower()

    def receipt(self, tx_hash: str) -> OnChainReceipt | None:
        rc = self._call("eth_getTransactionReceipt", [tx_hash])
        if rc is None:
            return None
        return OnChainReceipt(
            int(rc["blockNumber"], 16), str(rc["blockHash"]).lower(), int(rc["status"], 16)
        )
