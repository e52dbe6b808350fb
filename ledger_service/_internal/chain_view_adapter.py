"""The verifier's read-only :class:`~carbon_protocol.chain_view.ChainView` over our client.

An in-process (embedded) chain has no JSON-RPC URL, so the demo and the tests check
bundles against it through this adapter; against a real node the verifier uses
:class:`~carbon_protocol.chain_view.JsonRpcChainView` and never this code.
"""

from __future__ import annotations

from carbon_protocol.chain_view import OnChainAnchor, OnChainReceipt

from .chain import ChainClient


class ClientChainView:
    """Answers the verifier's questions with a :class:`ChainClient`."""

    def __init__(self, client: ChainClient) -> None:
        self._client = client

    def chain_id(self) -> int:
        return self._client.chain_id

    def head_block(self) -> int:
        return self._client.block_number()

    def anchor_of(self, contract: str, key: bytes, tree_size: int) -> OnChainAnchor | None:
        if contract.lower() != self._client.contract_address.lower():
            return None
        rec = self._client.anchor_of(key, tree_size)
        if rec is None:
            return None
        return OnChainAnchor(rec.root, rec.timestamp, rec.submitter.lower(), rec.block_number)

    def block_hash(self, number: int) -> str | None:
        if number > self._client.block_number():
            return None
        return self._client.block(number)[0].lower()

    def receipt(self, tx_hash: str) -> OnChainReceipt | None:
        rc = self._client.receipt(tx_hash)
        if rc is None:
            return None
        return OnChainReceipt(rc.block_number, rc.block_hash.lower(), rc.status)
