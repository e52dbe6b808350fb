"""Client of the ``DataMarket`` contract: listings, grants and revocations on chain.

The ledger's own chain account holds ``OPERATOR_ROLE`` and writes for the data owners
who asked the ledger. Writes go through the ledger's :class:`ChainClient` transactor
rather than a second signer of the same account, because the anchor loop keeps a local
nonce counter for that account: two counters would hand out one nonce twice.

Every write is simulated first (``eth_call`` as the operator), so a refusal comes back
as the contract's custom error, decoded, in :class:`MarketContractError` (``details``:
``error`` and ``args``), before anything is sent. Identifiers never reach the chain in
clear: the contract stores ``keccak256`` of their UTF-8 bytes (:func:`chain_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from .._internal.chain import (
    _CHAIN_ERRORS,
    ChainClient,
    ChainEvent,
    _ContractAbi,
    _revert_payload,
)
from .._internal.contract_artifacts import load_artifact
from ..errors import AnchorError
from .errors import MarketContractError

__all__ = ["CONTRACT_NAME", "OPERATOR_ROLE", "SCENES", "ChainGrant", "ChainListing",
           "DataMarketClient", "GrantKind", "MarketTx", "Scene", "chain_key", "deploy_beside"]

CONTRACT_NAME: Final = "DataMarket"
OPERATOR_ROLE: Final = keccak(text="OPERATOR_ROLE")
"""``keccak256("OPERATOR_ROLE")``: may list, grant and revoke."""

Scene = Literal["accounting", "verification", "trading"]
GrantKind = Literal["grant", "sale"]
SCENES: Final[tuple[Scene, ...]] = ("accounting", "verification", "trading")
"""The contract's ``Scene`` enum, in order."""
_KINDS: Final[tuple[GrantKind, ...]] = ("grant", "sale")


def chain_key(text: str) -> bytes:
    """The contract's key of an identifier or purpose: ``keccak256(UTF-8 bytes)``."""
    return keccak(text.encode("utf-8"))


@dataclass(frozen=True)
class MarketTx:
    """A mined ``DataMarket`` transaction: where it is and what it emitted."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[ChainEvent, ...]


@dataclass(frozen=True)
class ChainListing:
    """A listing as the contract holds it."""

    content_hash: str
    owner_key: str
    listed_at: int
    scene: Scene


@dataclass(frozen=True)
class ChainGrant:
    """A grant as the contract holds it (``revoked_at`` 0 while it stands)."""

    dataset_key: str
    buyer_key: str
    purpose_hash: str
    granted_at: int
    expires_at: int
    revoked_at: int
    kind: GrantKind
    price: int


class DataMarketClient:
    """One ``DataMarket`` deployment, written as the ledger's chain account."""

    def __init__(self, chain: ChainClient, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self._abi = _ContractAbi(load_artifact(CONTRACT_NAME).abi)

    @classmethod
    def deploy(cls, chain: ChainClient, *, admin: str | None = None) -> DataMarketClient:
        """Deploy a ``DataMarket`` from ``chain``'s account; ``admin`` (default: that
        account) gets ``DEFAULT_ADMIN_ROLE`` and :data:`OPERATOR_ROLE`."""
        artifact = load_artifact(CONTRACT_NAME)
        owner = chain.account if admin is None else to_checksum_address(admin)
        data = artifact.bytecode + abi_encode(["address"], [owner])
        try:
            gas = int(chain.w3.eth.estimate_gas({"from": chain.account, "data": data}))
        except _CHAIN_ERRORS as exc:
            raise _refusal(_ContractAbi(artifact.abi), chain, exc, "deploy") from exc
        rc = chain._transact(None, data, gas * 6 // 5)
        address = rc.get("contractAddress")
        with chain._boundary("read code of the new contract"):
            code = bytes(chain.w3.eth.get_code(address)) if address else b""
        if code != artifact.deployed_bytecode:
            raise MarketContractError(f"deployed code at {address} is not {CONTRACT_NAME}")
        return cls(chain, str(address))

    # -- plumbing -------------------------------------------------------------------
    def _call(self, name: str, *args: Any) -> tuple[Any, ...]:
        data = self._abi.encode_call(name, *args)
        try:
            out = self.chain.w3.eth.call({"to": self.address, "data": data})
        except _CHAIN_ERRORS as exc:
            raise self._refusal(exc, name) from exc
        return self._abi.decode_output(name, bytes(out))

    def _refusal(self, exc: BaseException, action: str) -> Exception:
        return _refusal(self._abi, self.chain, exc, action)

    def _send(self, name: str, *args: Any) -> MarketTx:
        data = self._abi.encode_call(name, *args)
        call = {"from": self.chain.account, "to": self.address, "data": data}
        try:  # simulate: a refusal is decoded before anything is signed or sent
            self.chain.w3.eth.call(call)  # type: ignore[arg-type]
            gas = int(self.chain.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
        except _CHAIN_ERRORS as exc:
            raise self._refusal(exc, name) from exc
        try:
            rc = self.chain._transact(self.address, data, gas * 6 // 5)
        except AnchorError as exc:  # mined but reverted: the state moved since simulation
            if exc.details.get("error") is None and "tx_hash" in exc.details:
                try:
                    self.chain.w3.eth.call(call)  # type: ignore[arg-type]
                except _CHAIN_ERRORS as replay:
                    raise self._refusal(replay, name) from exc
            raise
        return self._market_tx(rc)

    def _market_tx(self, rc: Any) -> MarketTx:
        """A receipt as a :class:`MarketTx`, with this contract's events decoded."""
        events = (self._abi.decode_log(log) for log in rc["logs"]
                  if str(log["address"]).lower() == self.address.lower())
        return MarketTx(tx_hash="0x" + bytes(rc["transactionHash"]).hex(),
                        block_number=int(rc["blockNumber"]), gas_used=int(rc["gasUsed"]),
                        events=tuple(e for e in events if e is not None))

    # -- roles ----------------------------------------------------------------------
    def has_role(self, role: bytes, account: str) -> bool:
        """Whether ``account`` holds ``role``."""
        return bool(self._call("hasRole", role, to_checksum_address(account))[0])

    def grant_operator(self, account: str) -> MarketTx:
        """Grant :data:`OPERATOR_ROLE` to ``account`` (needs ``DEFAULT_ADMIN_ROLE``)."""
        return self._send("grantRole", OPERATOR_ROLE, to_checksum_address(account))

    # -- writes ---------------------------------------------------------------------
    def list_dataset(self, dataset_id: str, content_hash: bytes, scene: Scene,
                     owner: str) -> MarketTx:
        """``listDataset``: put ``dataset_id`` of enterprise ``owner`` in the window."""
        return self._send("listDataset", chain_key(dataset_id), content_hash,
                          SCENES.index(scene), chain_key(owner))

    def grant(self, grant_id: str, dataset_id: str, buyer: str, purpose: str,
              expires_at: int, kind: GrantKind, price: int) -> MarketTx:
        """``grantAccess``: enterprise ``buyer`` may read ``dataset_id`` for ``purpose``
        until ``expires_at`` (Unix seconds), free or sold at ``price``."""
        return self._send("grantAccess", chain_key(grant_id), chain_key(dataset_id),
                          chain_key(buyer), chain_key(purpose), expires_at,
                          _KINDS.index(kind), price)

    def revoke(self, grant_id: str) -> MarketTx:
        """``revokeGrant``: the grant stops being active from this block on."""
        return self._send("revokeGrant", chain_key(grant_id))

    # -- reads ----------------------------------------------------------------------
    def is_active(self, grant_id: str) -> bool:
        """``isActive``: granted, not revoked, not expired at the latest block's time."""
        return bool(self._call("isActive", chain_key(grant_id))[0])

    def listing(self, dataset_id: str) -> ChainListing:
        """The listing of ``dataset_id`` (``MarketContractError`` if there is none)."""
        content, owner, listed_at, scene = self._call("listingOf", chain_key(dataset_id))[0]
        return ChainListing(content_hash=bytes(content).hex(), owner_key=bytes(owner).hex(),
                            listed_at=int(listed_at), scene=SCENES[int(scene)])

    def grant_of(self, grant_id: str) -> ChainGrant:
        """The grant ``grant_id`` (``MarketContractError`` if there is none)."""
        (dataset, buyer, purpose, granted, expires, revoked, kind,
         price) = self._call("grantOf", chain_key(grant_id))[0]
        return ChainGrant(dataset_key=bytes(dataset).hex(), buyer_key=bytes(buyer).hex(),
                          purpose_hash=bytes(purpose).hex(), granted_at=int(granted),
                          expires_at=int(expires), revoked_at=int(revoked),
                          kind=_KINDS[int(kind)], price=int(price))

    def find_tx(self, event: str, key: bytes) -> MarketTx | None:
        """The transaction that emitted ``event`` with first indexed argument ``key``
        (a dataset or grant key), or ``None``: how a write whose receipt was lost (the
        process died after sending) is found again."""
        topic = next(sel for sel, sig in self._abi.events.items() if sig.name == event)
        with self.chain._boundary("read DataMarket logs"):
            logs = self.chain.w3.eth.get_logs({
                "address": self.address, "fromBlock": 0, "toBlock": "latest",
                "topics": ["0x" + topic.hex(), "0x" + key.hex()]})
            if not logs:
                return None
            rc = self.chain.w3.eth.get_transaction_receipt(logs[0]["transactionHash"])
        return self._market_tx(rc)

    def block_time(self) -> int:
        """The latest block's timestamp: the clock ``isActive`` reads."""
        return self.chain.block(self.chain.block_number())[1]


def _refusal(abi: _ContractAbi, chain: ChainClient, exc: BaseException,
             action: str) -> Exception:
    """The contract's decoded refusal of ``action``, or the chain client's error."""
    payload = _revert_payload(exc)
    if isinstance(payload, bytes):
        error, args, message = abi.decode_revert(payload)
        return MarketContractError(f"DataMarket refused {action}: {message}",
                                   error=error, args=args)
    if isinstance(payload, str):
        return MarketContractError(f"DataMarket refused {action}: {payload}",
                                   error=None, args={})
    return chain._translate(exc, f"DataMarket {action}")


def deploy_beside(chain: ChainClient, admin_key: str, *,
                  operators: tuple[str, ...] = ()) -> str:
    """Deploy a ``DataMarket`` administered by ``admin_key`` and make ``chain``'s account
    (the ledger's) and each of ``operators`` an operator; return its address.

    The admin key deploys, not the ledger's: the ledger's account keeps its nonces for
    anchors, which an embedded chain rebuilt on restart must be able to resend."""
    admin = DataMarketClient.deploy(chain.with_signer(admin_key))
    for account in (chain.account, *operators):
        if not admin.has_role(OPERATOR_ROLE, account):
            admin.grant_operator(account)
    return admin.address
