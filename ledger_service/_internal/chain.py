"""The ledger's client for the ``CarbonAnchor`` contract: its only door to the chain.

Boundary (STYLE 14): every web3, eth-tester, eth-abi and transport exception is caught
in this module and re-raised as the :mod:`ledger_service.errors` family:

- the endpoint cannot be reached, times out, or answers nonsense:
  :class:`~ledger_service.errors.ChainUnavailableError`;
- another chain, or other code at the contract address:
  :class:`~ledger_service.errors.ChainMismatchError` ("expected X, got Y");
- the contract reverted: :class:`~ledger_service.errors.AnchorError` whose message is the
  decoded custom error, e.g. ``CarbonAnchorTreeSizeNotIncreasing(logKey=0x…, latest=5,
  got=3)``, with ``details == {"error": name, "args": {...}}`` (JSON-ready values);
- any other refusal by the node: :class:`~ledger_service.errors.AnchorError`.

Each error that crosses the boundary, other than a decoded contract revert (the node
answered; the contract said no), counts once in the ``RPC_ERRORS`` metric under a
stable ``action`` label ("read receipt", "send transaction", "check deployment", ...);
the transaction hash or block number goes to the message, never to the label.

Reverts reach us in three shapes, depending on the backend, and all three are decoded
from the 4-byte error selector against the contract ABI:

1. py-evm (``EthereumTesterProvider``) raises ``eth_tester.exceptions.TransactionFailed``
   whose message embeds the revert bytes as a Python ``bytes`` literal;
2. over JSON-RPC (anvil, ganache) web3 raises ``ContractCustomError`` (or
   ``ContractLogicError`` / ``ContractPanicError``) carrying the revert data in ``.data``;
3. a mined raw transaction that reverted has a receipt with ``status == 0`` and no revert
   data at all; it is replayed as an ``eth_call`` on the state of the parent block to
   recover the error.

Transactions are signed locally (eth-account; eth-keys picks coincurve) with an explicit
gas limit, explicit fees (EIP-1559 when the head block has ``baseFeePerGas``, legacy
``gasPrice`` otherwise) and a local nonce counter. The signed raw bytes are what the
caller stores before sending and resends byte for byte, so a resend can never double an
anchor; :meth:`ChainClient.send_raw` treats "already known" and "nonce too low because
this very transaction was mined" as success.

Performance: py-evm looks transactions up by hash and filters logs in time proportional
to the chain length. This client never scans logs (events are decoded from the receipt
just fetched), reads anchors with one ``anchorOf`` ``eth_call``, and polls a receipt only
right after sending it. Over HTTP, web3 retries only an explicit allowlist of idempotent
RPCs (reads, ``eth_call`` and the byte-identical ``eth_sendRawTransaction``).
"""

from __future__ import annotations

import ast
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import eth_tester.exceptions as eth_tester_errors  # type: ignore[import-untyped]
import eth_utils.exceptions as eth_utils_errors
import rlp  # type: ignore[import-untyped]
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError, EncodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import Wei

from carbon_rules.embedded_chain import embedded_web3

from ..errors import (
    AnchorError,
    ChainMismatchError,
    ChainUnavailableError,
    InvalidInputError,
    LedgerError,
)
from .contract_artifacts import ContractArtifact, load_artifact
from .metrics import RPC_ERRORS

__all__ = [
    "ANCHORER_ROLE",
    "ANCHOR_GAS_LIMIT",
    "DEFAULT_ADMIN_ROLE",
    "AnchorRecord",
    "BlockId",
    "BlockTag",
    "ChainClient",
    "ChainEvent",
    "SignedTx",
    "TxReceipt",
    "TxType",
]

BlockTag = Literal["latest", "safe", "finalized"]
BlockId = BlockTag | int
#: Which transaction envelope to sign: ``auto`` picks EIP-1559 (type 2) when the head
#: block has ``baseFeePerGas`` (London and later) and legacy (type 0, ``gasPrice``)
#: otherwise; ``legacy`` forces type 0, which London+ chains accept too.
TxType = Literal["auto", "eip1559", "legacy"]

CONTRACT_NAME = "CarbonAnchor"

#: ``keccak256("ANCHORER_ROLE")``, the role allowed to call ``anchor``.
ANCHORER_ROLE: bytes = keccak(text="ANCHORER_ROLE")
#: OpenZeppelin's ``DEFAULT_ADMIN_ROLE`` (``bytes32(0)``): grants and revokes roles.
DEFAULT_ADMIN_ROLE: bytes = bytes(32)

#: Gas limit of an ``anchor`` transaction. Measured: 94,833 for the first anchor of a
#: log (its ``_latest`` slot goes from zero), 77,769 after; the margin covers a fork that
#: reprices storage without paying for an ``eth_estimateGas`` round trip per anchor.
ANCHOR_GAS_LIMIT = 150_000
#: Gas limit of ``grantRole`` / ``revokeRole`` / ``renounceRole`` (about 30-55 k).
ROLE_GAS_LIMIT = 120_000

_EMBEDDED_FUNDING_WEI = 10**21  # 1,000 ether on the in-process chain
_RECEIPT_TIMEOUT_S = 60.0
_HTTP_TIMEOUT_S = 10.0

#: RPCs web3 may retry on a transport error: all are reads, or resend the same bytes.
_IDEMPOTENT_RPCS = [
    "eth_chainId",
    "eth_blockNumber",
    "eth_getBlockByNumber",
    "eth_getCode",
    "eth_call",
    "eth_estimateGas",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_sendRawTransaction",
]

# Everything the libraries under this boundary raise on purpose. OSError covers the
# requests transport errors (ConnectionError, Timeout, HTTPError).
_CHAIN_ERRORS: tuple[type[BaseException], ...] = (
    Web3Exception,
    OSError,
    DecodingError,
    EncodingError,
    eth_utils_errors.ValidationError,
    eth_tester_errors.TransactionFailed,
    eth_tester_errors.ValidationError,
    eth_tester_errors.BlockNotFound,
    eth_tester_errors.TransactionNotFound,
)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ProviderConnectionError,
    RequestTimedOut,
)

_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")


# -- results ------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorRecord:
    """A tree head as the contract holds it for one ``(log_key, tree_size)``."""

    root: bytes
    timestamp: int
    submitter: str
    block_number: int


@dataclass(frozen=True)
class SignedTx:
    """A locally signed raw transaction; ``tx_hash`` is ``keccak256(raw)``, 0x-hex.

    Store it before sending and resend ``raw`` byte for byte: same bytes, same hash,
    so a resend can never make a second anchor.
    """

    raw: bytes
    tx_hash: str
    nonce: int

    def __post_init__(self) -> None:
        expected = "0x" + keccak(self.raw).hex()
        if self.tx_hash.lower() != expected:
            raise InvalidInputError(
                f"signed transaction hash mismatch: expected {expected}, got {self.tx_hash}"
            )
        object.__setattr__(self, "tx_hash", expected)


@dataclass(frozen=True)
class ChainEvent:
    """One event emitted by the contract, decoded through its ABI (JSON-ready args)."""

    name: str
    args: dict[str, Any]
    log_index: int


@dataclass(frozen=True)
class TxReceipt:
    """The parts of a transaction receipt the ledger keeps."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    events: tuple[ChainEvent, ...] = field(default=(), compare=False)


# -- ABI ----------------------------------------------------------------------------


def _abi_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _plain(abi_type: str, value: Any) -> Any:
    """A decoded ABI value made JSON-ready: bytes as 0x-hex, addresses checksummed."""
    if abi_type == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        inner = abi_type[: abi_type.rindex("[")] if abi_type.endswith("]") else ""
        return [_plain(inner, v) for v in value]
    return value


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("0x") else repr(value)


@dataclass(frozen=True)
class _Function:
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class _Signature:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...] = ()


_BUILTIN_ERRORS = (
    _Signature("Error", ("message",), ("string",)),
    _Signature("Panic", ("code",), ("uint256",)),
)


class _ContractAbi:
    """Encodes calls and decodes results, reverts and logs straight from the ABI JSON."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.functions: dict[str, _Function] = {}
        self.errors: dict[bytes, _Signature] = {}
        self.events: dict[bytes, _Signature] = {}
        for sig in _BUILTIN_ERRORS:
            self.errors[keccak(text=f"{sig.name}({','.join(sig.types)})")[:4]] = sig
        for item in abi:
            kind = item["type"]
            if kind not in ("function", "error", "event"):
                continue
            name = str(item["name"])
            types = tuple(_abi_type(p) for p in item["inputs"])
            selector = keccak(text=f"{name}({','.join(types)})")
            if kind == "function":
                if name in self.functions:
                    raise ValueError(f"overloaded function {name!r} is not supported")
                outputs = tuple(_abi_type(p) for p in item["outputs"])
                self.functions[name] = _Function(selector[:4], types, outputs)
                continue
            names = tuple(str(p["name"]) for p in item["inputs"])
            if kind == "error":
                self.errors[selector[:4]] = _Signature(name, names, types)
            else:
                indexed = tuple(bool(p["indexed"]) for p in item["inputs"])
                self.events[selector] = _Signature(name, names, types, indexed)

    def encode_call(self, name: str, *args: Any) -> bytes:
        fn = self.functions[name]
        return fn.selector + abi_encode(list(fn.inputs), list(args))

    def decode_output(self, name: str, data: bytes) -> tuple[Any, ...]:
        return tuple(abi_decode(list(self.functions[name].outputs), data))

    def decode_revert(self, data: bytes) -> tuple[str | None, dict[str, Any], str]:
        """``(error name, JSON-ready args, message)`` for revert data."""
        if len(data) < 4:
            return None, {}, "reverted without reason data"
        sig = self.errors.get(data[:4])
        if sig is None:
            return None, {}, f"reverted with unknown error 0x{data.hex()}"
        try:
            values = abi_decode(list(sig.types), data[4:])
        except DecodingError:
            return sig.name, {}, f"{sig.name}(<undecodable 0x{data[4:].hex()}>)"
        args = {n: _plain(t, v) for n, t, v in zip(sig.names, sig.types, values, strict=True)}
        shown = ", ".join(f"{n}={_fmt(v)}" for n, v in args.items())
        return sig.name, args, f"{sig.name}({shown})"

    def decode_log(self, log: Mapping[str, Any]) -> ChainEvent | None:
        topics = [bytes(t) for t in log["topics"]]
        sig = self.events.get(topics[0]) if topics else None
        if sig is None:
            return None
        body = [t for t, ix in zip(sig.types, sig.indexed, strict=True) if not ix]
        body_values = iter(abi_decode(body, bytes(log["data"])))
        indexed_topics = iter(topics[1:])
        args: dict[str, Any] = {}
        for name, abi_type, ix in zip(sig.names, sig.types, sig.indexed, strict=True):
            if not ix:
                args[name] = _plain(abi_type, next(body_values))
            elif _is_static(abi_type):
                args[name] = _plain(abi_type, abi_decode([abi_type], next(indexed_topics))[0])
            else:  # an indexed dynamic value is only its keccak256 hash
                args[name] = "0x" + next(indexed_topics).hex()
        return ChainEvent(sig.name, args, int(log["logIndex"]))


def _is_static(abi_type: str) -> bool:
    return not (abi_type in ("bytes", "string") or abi_type.endswith("[]") or "(" in abi_type)


# -- revert and error translation ---------------------------------------------------


def _revert_bytes(data: Any) -> bytes | None:
    """Revert data from an error's ``data``: a 0x-hex string, or (ganache) an object
    holding it under ``result``."""
    if isinstance(data, Mapping):
        data = data.get("data", data.get("result"))
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def _revert_payload(exc: BaseException) -> bytes | str | None:
    """Revert data (bytes), an already-decoded reason (str), or None if not a revert."""
    if isinstance(exc, ContractLogicError):
        data = _revert_bytes(exc.data)
        return data if data is not None else str(exc.message or "execution reverted")
    if isinstance(exc, eth_tester_errors.TransactionFailed):
        # py-evm: "execution reverted: b'\\x9b\\xa4...'", the revert bytes as a literal.
        arg: Any = exc.args[0] if exc.args else ""
        if isinstance(arg, Exception):
            arg = arg.args[0] if arg.args else ""
        if isinstance(arg, bytes):
            return arg
        text = str(arg).removeprefix("execution reverted: ")
        if text[:2] in ("b'", 'b"'):
            try:
                literal = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
            if isinstance(literal, bytes):
                return literal
        return text
    if isinstance(exc, Web3RPCError) and "revert" in exc.message.lower():
        error: Any = (exc.rpc_response or {}).get("error")
        data = _revert_bytes(error.get("data") if isinstance(error, Mapping) else None)
        return data if data is not None else exc.message
    return None


def _nonce_of_raw(raw: bytes) -> int | None:
    """The nonce inside a signed raw transaction (typed: ``type || rlp([chainId, nonce,
    ...])``; legacy: ``rlp([nonce, ...])``), or ``None`` if it does not decode."""
    try:
        if raw and raw[0] <= 0x7F:
            fields = rlp.decode(raw[1:])
            return int.from_bytes(fields[1], "big")
        fields = rlp.decode(raw)
        return int.from_bytes(fields[0], "big")
    except (rlp.exceptions.DecodingError, IndexError, TypeError):
        return None


def _redact(url: str) -> str:
    """``scheme://host:port`` of an endpoint: paths and user info may hold API keys."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _account_from_key(private_key: str | bytes) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(private_key)
    except (ValueError, TypeError) as exc:
        # Never echo the key itself.
        raise AnchorError("invalid private key for the anchoring account") from exc
    return account


def _checksum(address: str) -> str:
    if not isinstance(address, str) or not is_address(address):
        raise ChainMismatchError(f"contract address {address!r} is not a 20-byte hex address")
    return to_checksum_address(address)


def _http_web3(rpc_url: str, timeout: float) -> Web3:
    retry = ExceptionRetryConfiguration(
        errors=(OSError,), retries=3, backoff_factor=0.1, method_allowlist=_IDEMPOTENT_RPCS
    )
    provider = HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=retry
    )
    return Web3(provider)


# -- transactions -------------------------------------------------------------------


class _Transactor:
    """Signs, sends and follows transactions of one account; maps every error."""

    def __init__(self, w3: Web3, account: LocalAccount, chain_id: int, endpoint: str,
                 tx_type: TxType = "auto") -> None:
        if tx_type not in ("auto", "eip1559", "legacy"):
            raise InvalidInputError(f"tx_type must be auto, eip1559 or legacy, got {tx_type!r}")
        self._w3 = w3
        self.tx_type: TxType = tx_type
        self._account = account
        self._endpoint = endpoint
        self._artifact: ContractArtifact = load_artifact(CONTRACT_NAME)
        self._abi = _ContractAbi(self._artifact.abi)
        self._nonce_lock = threading.Lock()
        self._next_nonce: int | None = None
        self._priority_fee: int | None = None
        self.chain_id = chain_id
        self.account: str = account.address
        self.receipt_timeout = _RECEIPT_TIMEOUT_S

    # errors ------------------------------------------------------------------------
    @contextmanager
    def _boundary(self, action: str, subject: str = "") -> Iterator[None]:
        """Translate what the libraries raise into our family; count it in RPC_ERRORS.

        ``action`` is the metric label and must be one of a few fixed phrases;
        ``subject`` (a hash, a block number) only goes into the message.
        """
        try:
            yield
        except ChainMismatchError:
            RPC_ERRORS.labels(action=action).inc()
            raise
        except LedgerError:
            raise
        except _CHAIN_ERRORS as exc:
            raise self._translate(exc, action, subject) from exc

    def _translate(self, exc: BaseException, action: str, subject: str = "") -> LedgerError:
        what = f"{action} {subject}" if subject else action
        payload = _revert_payload(exc)
        if isinstance(payload, bytes):
            return self._revert_error(payload)  # the contract's answer, not an RPC failure
        if isinstance(payload, str):
            return AnchorError(f"{what} reverted: {payload}", error=None, args={})
        RPC_ERRORS.labels(action=action).inc()
        if isinstance(exc, _TRANSPORT_ERRORS) or isinstance(exc, TimeExhausted):
            # requests quotes the URL path, where hosted RPC providers put API keys.
            shown = re.sub(r"url: \S+", "url: <redacted>", str(exc))
            return ChainUnavailableError(
                f"{what}: chain endpoint {self._endpoint} unavailable: {shown}",
                endpoint=self._endpoint,
            )
        if isinstance(exc, DecodingError):
            return ChainMismatchError(
                f"{what}: the contract answered data that does not decode as "
                f"{CONTRACT_NAME}'s ABI: {exc}"
            )
        if isinstance(exc, Web3RPCError):
            return AnchorError(f"{what}: the node refused: {exc.message}", rpc_error=exc.message)
        return AnchorError(f"{what} failed: {type(exc).__name__}: {exc}")

    def _revert_error(self, data: bytes, **extra: Any) -> AnchorError:
        name, args, message = self._abi.decode_revert(data)
        details: dict[str, Any] = {"error": name, "args": args, **extra}
        if name is None:
            details["data"] = _hex(data)
        return AnchorError(message, **details)

    # nonces and fees ---------------------------------------------------------------
    def pending_nonce(self) -> int:
        """The node's nonce for the next transaction of this account (pending included)."""
        with self._boundary("read nonce"):
            return int(self._w3.eth.get_transaction_count(self._account.address, "pending"))

    def _take_nonce(self, nonce: int | None) -> int:
        with self._nonce_lock:
            if nonce is not None:
                if self._next_nonce is not None:
                    self._next_nonce = max(self._next_nonce, nonce + 1)
                return nonce
            if self._next_nonce is None:
                self._next_nonce = self.pending_nonce()
            taken = self._next_nonce
            self._next_nonce += 1
            return taken

    def _forget_nonce(self) -> None:
        """Ask the node again next time: our counter and the chain disagree."""
        with self._nonce_lock:
            self._next_nonce = None

    def _fee_fields(self) -> dict[str, int]:
        with self._boundary("read fees"):
            if self.tx_type == "legacy":
                return {"gasPrice": int(self._w3.eth.gas_price)}
            head = self._w3.eth.get_block("latest")
            base_fee = head.get("baseFeePerGas")
            if base_fee is None:
                if self.tx_type == "eip1559":
                    raise AnchorError(
                        f"chain at {self._endpoint} has no base fee (pre-London): "
                        "EIP-1559 transactions are not possible there; use tx_type legacy")
                return {"gasPrice": int(self._w3.eth.gas_price)}
            if self._priority_fee is None:
                self._priority_fee = int(self._w3.eth.max_priority_fee)
        tip = self._priority_fee
        # 2 x base fee stays valid through six full blocks of base-fee increases.
        return {"type": 2, "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * int(base_fee) + tip}

    def _sign(self, to: str | None, data: bytes, gas: int, nonce: int | None = None) -> SignedTx:
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "gas": gas,
            "value": 0,
            "data": data,
            **self._fee_fields(),
        }
        if to is not None:
            tx["to"] = to
        tx["nonce"] = self._take_nonce(nonce)
        signed = self._account.sign_transaction(tx)
        return SignedTx(bytes(signed.raw_transaction), _hex(signed.hash), tx["nonce"])

    # sending and receipts ----------------------------------------------------------
    def send_raw(self, tx: SignedTx) -> str:
        """Broadcast ``tx``; return its hash. Idempotent for the same signed bytes.

        "Already known" (still pending) and "nonce too low" because this very transaction
        was mined are success. A nonce taken by a *different* transaction raises
        :class:`AnchorError` (``details["reason"] == "nonce_used"``): the caller must sign
        anew.
        """
        try:
            returned = self._w3.eth.send_raw_transaction(tx.raw)
        except LedgerError:
            raise
        except _CHAIN_ERRORS as exc:
            text = str(exc).lower()
            if any(marker in text for marker in _ALREADY_KNOWN):
                return tx.tx_hash
            if "nonce" in text:
                # Node wording differs (geth/anvil "nonce too low", py-evm "Invalid
                # transaction nonce: Expected 2, but got 1", ganache "the tx doesn't have
                # the correct nonce"), so ask the chain what happened instead of parsing.
                self._forget_nonce()
                if self.receipt(tx.tx_hash) is not None:
                    return tx.tx_hash  # this very transaction was mined earlier
                nonce = _nonce_of_raw(tx.raw)
                with self._boundary("read nonce"):
                    mined = int(self._w3.eth.get_transaction_count(self._account.address))
                if nonce is not None and nonce < mined:
                    raise AnchorError(
                        f"transaction {tx.tx_hash} was not sent: nonce {nonce} of "
                        f"{self.account} is already used by another transaction",
                        reason="nonce_used",
                        tx_hash=tx.tx_hash,
                    ) from exc
            raise self._translate(exc, "send transaction", tx.tx_hash) from exc
        if _hex(returned) != tx.tx_hash:
            raise ChainUnavailableError(
                f"node at {self._endpoint} answered transaction hash {_hex(returned)}, "
                f"expected {tx.tx_hash}"
            )
        return tx.tx_hash

    def _raw_receipt(self, tx_hash: str) -> Any | None:
        with self._boundary("read receipt", tx_hash):
            try:
                rc = self._w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except (TransactionNotFound, eth_tester_errors.TransactionNotFound):
                return None
        if rc is None or rc.get("blockNumber") is None:
            return None
        return rc

    def _to_receipt(self, rc: Any) -> TxReceipt:
        events: list[ChainEvent] = []
        contract = str(getattr(self, "contract_address", "")).lower()
        for log in rc["logs"]:
            if contract and str(log["address"]).lower() == contract:
                try:
                    event = self._abi.decode_log(log)
                except (DecodingError, StopIteration):
                    event = None
                if event is not None:
                    events.append(event)
        return TxReceipt(
            tx_hash=_hex(rc["transactionHash"]),
            block_number=int(rc["blockNumber"]),
            block_hash=_hex(rc["blockHash"]),
            status=int(rc["status"]),
            gas_used=int(rc["gasUsed"]),
            events=tuple(events),
        )

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of a mined transaction, or ``None`` while it is not in a block.

        On py-evm this costs time proportional to how deep the transaction is; ask for
        recent transactions only.
        """
        rc = self._raw_receipt(tx_hash)
        return None if rc is None else self._to_receipt(rc)

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node knows ``tx_hash`` at all: pending in its pool or in a block.

        ``False`` means the node forgot it (dropped from the pool, restarted without
        its pool, reorganised away): only a resend can bring it back. Like
        :meth:`receipt`, costs time proportional to chain length on py-evm.
        """
        with self._boundary("read transaction", tx_hash):
            try:
                tx = self._w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            except (TransactionNotFound, eth_tester_errors.TransactionNotFound):
                return False
        return tx is not None

    def _wait_raw(self, tx_hash: str, timeout: float | None) -> Any:
        deadline = time.monotonic() + (self.receipt_timeout if timeout is None else timeout)
        delay = 0.001
        while True:
            rc = self._raw_receipt(tx_hash)
            if rc is not None:
                return rc
            if time.monotonic() >= deadline:
                raise AnchorError(
                    f"transaction {tx_hash} was not mined within "
                    f"{self.receipt_timeout if timeout is None else timeout:g} s",
                    tx_hash=tx_hash,
                    reason="not_mined",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def wait_for_receipt(self, tx_hash: str, timeout: float | None = None) -> TxReceipt:
        """Poll until ``tx_hash`` is mined; raise :class:`AnchorError` after ``timeout``."""
        return self._to_receipt(self._wait_raw(tx_hash, timeout))

    def _failure(self, to: str | None, data: bytes, gas: int, rc: Any) -> AnchorError:
        """Recover the error of a mined, reverted transaction by replaying it.

        The replay runs on the parent block's state, which is exact. A node that prunes
        history (anvil ``--prune-history``, most non-archive nodes after a while) may not
        have that state; then it runs on the latest state, which a reverted transaction
        did not change (``details["replayed_at"]`` says which).
        """
        tx_hash = _hex(rc["transactionHash"])
        call: dict[str, Any] = {"from": self.account, "data": data, "gas": gas}
        if to is not None:
            call["to"] = to
        parent = max(int(rc["blockNumber"]) - 1, 0)
        reason = ""
        for at in (parent, "latest"):
            try:
                self._w3.eth.call(call, block_identifier=at)  # type: ignore[arg-type]
            except _CHAIN_ERRORS as exc:
                payload = _revert_payload(exc)
                if isinstance(payload, bytes):
                    return self._revert_error(payload, tx_hash=tx_hash, replayed_at=at)
                if payload is not None:
                    return AnchorError(
                        f"transaction {tx_hash} reverted: {payload}",
                        error=None,
                        args={},
                        tx_hash=tx_hash,
                        replayed_at=at,
                    )
                reason = f"; replay failed: {exc}"
                continue  # state not available: try the next one
            used = int(rc["gasUsed"])
            reason = f"; its replay on block {at} succeeds: out of gas ({used} of {gas})?"
            break
        return AnchorError(
            f"transaction {tx_hash} failed (status 0){reason}", error=None, args={}, tx_hash=tx_hash
        )

    def _deploy_hint(self, exc: AnchorError) -> AnchorError:
        """``exc``, explained when the chain predates the EVM the contract is built for."""
        evm = str(self._artifact.settings.get("evmVersion", "?"))
        if isinstance(exc, ChainUnavailableError) or exc.details.get("error") is not None:
            return exc
        try:
            with self._boundary("read fees"):
                pre_london = self._w3.eth.get_block("latest").get("baseFeePerGas") is None
        except LedgerError:
            return exc
        if not pre_london:
            return exc
        return AnchorError(
            f"deploy {CONTRACT_NAME} failed: {exc}; this chain is pre-London (no base fee) "
            f"and {CONTRACT_NAME} is compiled for EVM {evm} (PUSH0 needs Shanghai)",
            **exc.details)

    def _transact(self, to: str | None, data: bytes, gas: int) -> Any:
        """Sign, send and wait; return the raw receipt; raise the decoded error if reverted."""
        tx = self._sign(to, data, gas)
        self.send_raw(tx)
        rc = self._wait_raw(tx.tx_hash, None)
        if int(rc["status"]) != 1:
            raise self._failure(to, data, gas, rc)
        return rc


# -- the client ---------------------------------------------------------------------


class ChainClient(_Transactor):
    """Reads and writes the ``CarbonAnchor`` contract at one address for one account.

    Build it with :meth:`embedded` (in-process py-evm) or :meth:`connect` (JSON-RPC over
    HTTP); the constructor trusts its arguments and is internal.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        contract_address: str,
        chain_id: int,
        endpoint: str = "embedded",
        tx_type: TxType = "auto",
    ) -> None:
        super().__init__(w3, account, chain_id, endpoint, tx_type)
        self.contract_address: str = to_checksum_address(contract_address)
        self.rule_registry_address: str | None = None
        """The ``RuleRegistry`` on this chain, where one was deployed beside the anchor
        contract (``ledger_service.inventories``); ``None``: no rules on this chain."""

    # construction ------------------------------------------------------------------
    @classmethod
    def embedded(cls, private_key: str | bytes | None = None, *,
                 w3: Web3 | None = None) -> ChainClient:
        """A fresh in-process chain (web3's ``EthereumTesterProvider`` over py-evm).

        Uses ``private_key`` or a new random key, funds it from the tester's first dev
        account, deploys ``CarbonAnchor`` with it as admin (hence also anchorer). Nothing
        external; the chain lives in memory and dies with the process. ``w3``: an
        in-process chain already holding other contracts (the rule registry) to use
        instead of a new one.
        """
        account = Account.create() if private_key is None else _account_from_key(private_key)
        w3 = w3 or embedded_web3()
        with _plain_boundary("start the embedded chain"):
            if w3.eth.get_balance(account.address) == 0:
                funder = w3.eth.accounts[0]
                tx_hash = w3.eth.send_transaction(
                    {"from": funder, "to": account.address, "value": Wei(_EMBEDDED_FUNDING_WEI)}
                )
                w3.eth.wait_for_transaction_receipt(tx_hash)
            chain_id = int(w3.eth.chain_id)
        address = cls.deploy(w3, account.key)
        return cls(w3, account, address, chain_id)

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        private_key: str | bytes,
        contract_address: str,
        *,
        expected_chain_id: int | None = None,
        timeout: float = _HTTP_TIMEOUT_S,
        tx_type: TxType = "auto",
    ) -> ChainClient:
        """Connect to a JSON-RPC node and check it before use.

        Raises :class:`ChainMismatchError` if the node's chain id is not
        ``expected_chain_id`` or the code at ``contract_address`` is not this build of
        ``CarbonAnchor`` (its ``deployedBytecode``; the contract has no immutables), and
        :class:`ChainUnavailableError` if the node cannot be reached.
        """
        endpoint = _redact(rpc_url)
        account = _account_from_key(private_key)
        address = _checksum(contract_address)
        w3 = _http_web3(rpc_url, timeout)
        client = cls(w3, account, address, 0, endpoint, tx_type)
        chain_id = client._check_deployment("connect", expected_chain_id)
        client.chain_id = chain_id
        return client

    @property
    def compiler(self) -> str:
        """The solc version this build of ``CarbonAnchor`` was compiled with."""
        return self._artifact.compiler

    @property
    def code_hash(self) -> str:
        """``keccak256`` (0x-hex) of the ``CarbonAnchor`` runtime code this build expects."""
        return _hex(keccak(self._artifact.deployed_bytecode))

    def verify_deployment(self) -> None:
        """Check, now, that the node is still this client's chain and the contract is there.

        Run before anything is signed or sent, not only at :meth:`connect`: a node can be
        restarted empty, or an endpoint re-pointed at another chain, under a running
        service. Raises :class:`ChainMismatchError` ("expected X, got Y") naming the
        chain id or the contract code that differs; two ``eth_`` reads.
        """
        self._check_deployment("check deployment", self.chain_id)

    def _check_deployment(self, action: str, expected_chain_id: int | None) -> int:
        address = self.contract_address
        with self._boundary(action):
            chain_id = int(self._w3.eth.chain_id)
            # To prevent signing for the wrong chain (replay across deployments), the
            # chain id is checked before anything is signed; it is also bound into every
            # signature (EIP-155).
            if expected_chain_id is not None and chain_id != expected_chain_id:
                raise ChainMismatchError(
                    f"chain id mismatch at {self._endpoint}: expected {expected_chain_id}, "
                    f"got {chain_id}",
                    expected=expected_chain_id,
                    got=chain_id,
                )
            code = bytes(self._w3.eth.get_code(address))  # type: ignore[arg-type]
            expected_code = self._artifact.deployed_bytecode
            if code != expected_code:
                # An empty account here is typically a node restarted without its state.
                raise ChainMismatchError(
                    f"code at {address} is not {CONTRACT_NAME} ({self._artifact.compiler}): "
                    f"expected {len(expected_code)} bytes with keccak "
                    f"{_hex(keccak(expected_code))}, got {len(code)} bytes with keccak "
                    f"{_hex(keccak(code))} (chain {chain_id} at {self._endpoint})",
                    expected=_hex(keccak(expected_code)),
                    got=_hex(keccak(code)),
                )
        return chain_id

    @staticmethod
    def deploy(
        rpc_url_or_w3: str | Web3,
        private_key: str | bytes,
        *,
        admin: str | None = None,
        timeout: float = _HTTP_TIMEOUT_S,
    ) -> str:
        """Deploy ``CarbonAnchor`` with a locally signed raw transaction.

        ``admin`` (default: the deploying account) receives ``DEFAULT_ADMIN_ROLE`` and
        ``ANCHORER_ROLE``. Returns the checksummed contract address, after checking that
        the code there is the artifact's ``deployedBytecode``.
        """
        address, _ = ChainClient.deploy_with_receipt(
            rpc_url_or_w3, private_key, admin=admin, timeout=timeout)
        return address

    @staticmethod
    def deploy_with_receipt(
        rpc_url_or_w3: str | Web3,
        private_key: str | bytes,
        *,
        admin: str | None = None,
        timeout: float = _HTTP_TIMEOUT_S,
    ) -> tuple[str, TxReceipt]:
        """:meth:`deploy`, also returning the deployment's receipt (its block)."""
        if isinstance(rpc_url_or_w3, str):
            endpoint = _redact(rpc_url_or_w3)
            w3 = _http_web3(rpc_url_or_w3, timeout)
        else:
            endpoint, w3 = "embedded", rpc_url_or_w3
        account = _account_from_key(private_key)
        owner = account.address if admin is None else _checksum(admin)
        deployer = _Transactor(w3, account, 0, endpoint)
        artifact = deployer._artifact
        data = artifact.bytecode + abi_encode(["address"], [owner])
        try:
            with deployer._boundary(f"deploy {CONTRACT_NAME}"):
                deployer.chain_id = int(w3.eth.chain_id)
                estimate = int(w3.eth.estimate_gas({"from": account.address, "data": data}))
            rc = deployer._transact(None, data, estimate * 6 // 5)
        except AnchorError as exc:
            raise deployer._deploy_hint(exc) from exc
        address = rc.get("contractAddress")
        with deployer._boundary("read code of the new contract"):
            code = bytes(w3.eth.get_code(address)) if address else b""
        if code != artifact.deployed_bytecode:
            raise ChainMismatchError(
                f"deployed code at {address} differs from {CONTRACT_NAME}'s deployedBytecode: "
                f"expected {len(artifact.deployed_bytecode)} bytes, got {len(code)}"
            )
        return to_checksum_address(address), deployer._to_receipt(rc)

    def with_signer(self, private_key: str | bytes) -> ChainClient:
        """A client for the same chain and contract that signs as another account."""
        client = ChainClient(
            self._w3,
            _account_from_key(private_key),
            self.contract_address,
            self.chain_id,
            self._endpoint,
            self.tx_type,
        )
        client.rule_registry_address = self.rule_registry_address
        return client

    @property
    def w3(self) -> Web3:
        """The web3 connection, for other contracts' clients on the same chain."""
        return self._w3

    # pure helpers ------------------------------------------------------------------
    @staticmethod
    def log_key(log_id: str) -> bytes:
        """The contract's key of a log: ``keccak256`` of the log id's UTF-8 bytes."""
        return keccak(log_id.encode("utf-8"))

    # chain reads -------------------------------------------------------------------
    def block_number(self) -> int:
        """Number of the head block."""
        with self._boundary("read the block number"):
            return int(self._w3.eth.block_number)

    def block(self, number: int) -> tuple[str, int]:
        """``(block hash, timestamp)`` of block ``number``."""
        with self._boundary("read block", str(number)):
            block = self._w3.eth.get_block(number)
        return _hex(block["hash"]), int(block["timestamp"])

    def _call(self, name: str, *args: Any, block: BlockId = "latest") -> tuple[Any, ...]:
        data = self._abi.encode_call(name, *args)
        with self._boundary(f"call {name}"):
            out = self._w3.eth.call(
                {"to": self.contract_address, "data": data},
                block_identifier=block,
            )
            return self._abi.decode_output(name, bytes(out))

    def anchor_of(
        self, log_key: bytes, tree_size: int, *, block: BlockId = "latest"
    ) -> AnchorRecord | None:
        """The anchor of ``(log_key, tree_size)``, or ``None`` if there is none."""
        _check_key(log_key)
        _check_size(tree_size)
        root, timestamp, submitter, block_number = self._call(
            "anchorOf", log_key, tree_size, block=block
        )
        if root == bytes(32):
            return None
        return AnchorRecord(
            bytes(root), int(timestamp), to_checksum_address(submitter), int(block_number)
        )

    def latest_tree_size(self, log_key: bytes, *, block: BlockId = "latest") -> int:
        """The largest tree size anchored for ``log_key`` (0 if none)."""
        _check_key(log_key)
        return int(self._call("latestTreeSize", log_key, block=block)[0])

    def has_role(self, role: bytes, account: str, *, block: BlockId = "latest") -> bool:
        """Whether ``account`` holds ``role`` (e.g. :data:`ANCHORER_ROLE`)."""
        _check_key(role)
        return bool(self._call("hasRole", role, _checksum(account), block=block)[0])

    # anchoring ---------------------------------------------------------------------
    def sign_anchor_tx(
        self, log_key: bytes, tree_size: int, root: bytes, *, nonce: int | None = None
    ) -> SignedTx:
        """Sign ``anchor(log_key, tree_size, root)`` without sending it.

        Without ``nonce`` the local counter assigns the next one (the node's pending
        nonce on first use); a signed transaction must then be sent, or later nonces
        wait for it. The contract's own rules (non-zero root and size, increasing size)
        are left to the contract, whose errors :meth:`anchor` decodes.
        """
        _check_key(log_key)
        _check_key(root)
        _check_size(tree_size)
        data = self._abi.encode_call("anchor", log_key, tree_size, root)
        return self._sign(self.contract_address, data, ANCHOR_GAS_LIMIT, nonce)

    def anchor(self, log_key: bytes, tree_size: int, root: bytes) -> TxReceipt:
        """Anchor a tree head and wait for it to be mined.

        Raises :class:`AnchorError` with the decoded custom error if the contract
        refuses (e.g. ``CarbonAnchorTreeSizeNotIncreasing``).
        """
        tx = self.sign_anchor_tx(log_key, tree_size, root)
        self.send_raw(tx)
        rc = self._wait_raw(tx.tx_hash, None)
        if int(rc["status"]) != 1:
            data = self._abi.encode_call("anchor", log_key, tree_size, root)
            raise self._failure(self.contract_address, data, ANCHOR_GAS_LIMIT, rc)
        return self._to_receipt(rc)

    # roles -------------------------------------------------------------------------
    def _role_tx(self, name: str, *args: Any) -> TxReceipt:
        data = self._abi.encode_call(name, *args)
        return self._to_receipt(self._transact(self.contract_address, data, ROLE_GAS_LIMIT))

    def grant_role(self, role: bytes, account: str) -> TxReceipt:
        """``grantRole(role, account)``; needs the role's admin role."""
        _check_key(role)
        return self._role_tx("grantRole", role, _checksum(account))

    def revoke_role(self, role: bytes, account: str) -> TxReceipt:
        """``revokeRole(role, account)``; needs the role's admin role."""
        _check_key(role)
        return self._role_tx("revokeRole", role, _checksum(account))

    def renounce_role(self, role: bytes) -> TxReceipt:
        """``renounceRole(role, self.account)``: this account gives ``role`` up."""
        _check_key(role)
        return self._role_tx("renounceRole", role, self.account)


@contextmanager
def _plain_boundary(action: str) -> Iterator[None]:
    try:
        yield
    except LedgerError:
        raise
    except _CHAIN_ERRORS as exc:
        RPC_ERRORS.labels(action=action).inc()
        raise AnchorError(f"{action} failed: {type(exc).__name__}: {exc}") from exc


def _check_key(value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidInputError(f"expected 32 bytes, got {value!r}")


def _check_size(tree_size: int) -> None:
    if not isinstance(tree_size, int) or isinstance(tree_size, bool) or not 0 <= tree_size < 2**64:
        raise InvalidInputError(f"tree size must be a uint64, got {tree_size!r}")
