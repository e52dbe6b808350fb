"""Anchoring the resolver log's tree heads through the ledger's anchor contract.

The resolver reuses ``CarbonAnchor`` (and the ledger's :class:`ChainClient`) under a
log key of its own, ``keccak256("<prefix>/log.resolver")``: one root per anchoring
round, whatever the number of records, exactly like the ledger's reading log.

Every chain error (the client raises the ledger's error family) becomes
:class:`~identifier_resolver.errors.AnchorFailedError`; the caller keeps its records
and retries next round. Sharing the ledger's account in one process is safe but can
race the ledger's own nonce bookkeeping (the loser is re-sent by its owner); a
deployment gives the resolver its own account with ``ANCHORER_ROLE``.
"""

from __future__ import annotations

from carbon_protocol.chain_view import log_key as log_key_of
from carbon_protocol.models import AnchorRef
from ledger_service._internal.chain import ChainClient
from ledger_service.errors import LedgerError

from ..errors import AnchorFailedError

__all__ = ["ChainAnchorer"]


class ChainAnchorer:
    """Anchors ``(log_key, tree_size, root)`` and reads anchors back."""

    def __init__(self, chain: ChainClient, log_id: str) -> None:
        self.chain = chain
        self.log_id = log_id
        self.log_key = log_key_of(log_id)

    @property
    def domain(self) -> tuple[int, str]:
        """``(chain id, contract address)`` in lowercase hex."""
        return int(self.chain.chain_id), str(self.chain.contract_address).lower()

    def anchor(self, tree_size: int, root: bytes) -> AnchorRef:
        """Anchor a tree head and wait for it to be mined; return where it landed."""
        try:
            rc = self.chain.anchor(self.log_key, tree_size, root)
            block_hash, timestamp = self.chain.block(rc.block_number)
        except LedgerError as exc:
            raise AnchorFailedError(f"anchoring {self.log_id} at size {tree_size} failed: {exc}",
                                    **exc.diagnostics()) from exc
        chain_id, contract = self.domain
        return AnchorRef(
            chain_id=chain_id, contract=contract, log_key=self.log_key.hex(),
            tree_size=tree_size, root_hash=root.hex(), tx_hash=rc.tx_hash.lower(),
            block_number=rc.block_number, block_hash=block_hash.lower(),
            block_timestamp=timestamp, submitter=str(self.chain.account).lower(),
        )

    def holds(self, ref: AnchorRef) -> bool:
        """True when the contract still records ``ref``'s root for its tree size."""
        try:
            rec = self.chain.anchor_of(self.log_key, ref.tree_size)
        except LedgerError as exc:
            raise AnchorFailedError(f"reading anchor {ref.tree_size} of {self.log_id} failed: "
                                    f"{exc}") from exc
        return rec is not None and rec.root.hex() == ref.root_hash
