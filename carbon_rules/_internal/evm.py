"""A small typed door to one contract: ABI codec, revert decoding, signed transactions.

Boundary: every web3, eth-tester, eth-abi and transport exception raised under
:meth:`Contract.boundary` is re-raised as the :mod:`carbon_rules.errors` family:

- a revert becomes the mirrored error of its decoded custom error
  (:func:`~carbon_rules.errors.contract_error`), e.g. ``VersionSupersededError`` for
  ``RuleRegistryVersionSuperseded(...)``, with ``details == {"error", "args"}``;
- an unreachable or nonsensical endpoint becomes ``RegistryUnavailableError``;
- anything else the node refuses becomes ``RegistryError``.

Reverts arrive as py-evm's ``TransactionFailed`` (revert bytes in a ``bytes`` literal
inside the message) or as web3's ``ContractLogicError`` / ``Web3RPCError`` carrying
0x-hex revert data; both are decoded against the ABI's error selectors.

Transactions are signed locally (eth-account), simulated with ``eth_estimateGas`` first
(a revert is decoded before anything is sent), sent raw with that estimate plus 20 %,
and followed to their receipt. This contract is written to rarely (an association
publishing a version), so nonces are read from the node each time.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Self

import eth_tester.exceptions as eth_tester_errors  # type: ignore[import-untyped]
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError, EncodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from ..errors import RegistryError, RegistryUnavailableError, RulesError, contract_error

__all__ = [
    "ARTIFACTS_DIR",
    "Artifact",
    "Codec",
    "Contract",
    "Event",
    "Receipt",
    "account_from_key",
    "load_artifact",
]

#: The checkout's ``contracts/artifacts`` (the package is installed editable, like
#: ``ledger_service``, whose artifact loader uses the same folder).
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"

_RECEIPT_TIMEOUT_S = 60.0

_CHAIN_ERRORS: tuple[type[BaseException], ...] = (
    Web3Exception,
    OSError,
    DecodingError,
    EncodingError,
    eth_tester_errors.TransactionFailed,
    eth_tester_errors.ValidationError,
)


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one compiled contract."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes


@cache
def load_artifact(name: str) -> Artifact:
    """Load ``contracts/artifacts/<name>.json`` (written by scripts/compile_contracts.py)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"contract artifact {path} is missing; run `python scripts/compile_contracts.py`"
        ) from None
    return Artifact(
        name=name,
        abi=tuple(data["abi"]),
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
    )


# -- ABI ----------------------------------------------------------------------------------


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of an ABI JSON parameter (structs as tuples)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def plain(kind: str, value: Any) -> Any:
    """A decoded ABI value made JSON-ready: bytes as 0x-hex, addresses checksummed."""
    if kind == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [plain("", v) for v in value]
    return value


@dataclass(frozen=True)
class _Signature:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...] = ()


@dataclass(frozen=True)
class _Function:
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Event:
    """One decoded event: name and JSON-ready arguments."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Receipt:
    """What a caller keeps of a mined transaction."""

    tx_hash: str
    block_number: int
    status: int
    gas_used: int
    events: tuple[Event, ...] = field(default=(), compare=False)
    contract_address: str | None = None


class Codec:
    """Encodes calls and decodes outputs, reverts and logs from ABI JSON."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.functions: dict[str, _Function] = {}
        self.errors: dict[bytes, _Signature] = {
            keccak(text="Error(string)")[:4]: _Signature("Error", ("message",), ("string",)),
            keccak(text="Panic(uint256)")[:4]: _Signature("Panic", ("code",), ("uint256",)),
        }
        self.events: dict[bytes, _Signature] = {}
        for item in abi:
            if item["type"] not in ("function", "error", "event"):
                continue
            name = str(item["name"])
            types = tuple(abi_type(p) for p in item["inputs"])
            selector = keccak(text=f"{name}({','.join(types)})")
            if item["type"] == "function":
                outputs = tuple(abi_type(p) for p in item["outputs"])
                self.functions[name] = _Function(selector[:4], types, outputs)
                continue
            names = tuple(str(p["name"]) for p in item["inputs"])
            if item["type"] == "error":
                self.errors[selector[:4]] = _Signature(name, names, types)
            else:
                indexed = tuple(bool(p["indexed"]) for p in item["inputs"])
                self.events[selector] = _Signature(name, names, types, indexed)

    def encode_call(self, name: str, *args: Any) -> bytes:
        fn = self.functions[name]
        return fn.selector + abi_encode(list(fn.inputs), list(args))

    def decode_output(self, name: str, data: bytes) -> tuple[Any, ...]:
        return tuple(abi_decode(list(self.functions[name].outputs), data))

    def revert_error(self, data: bytes, **extra: Any) -> RulesError:
        """The mirrored error for revert ``data``."""
        sig = self.errors.get(data[:4]) if len(data) >= 4 else None
        if sig is None:
            return RegistryError(
                f"reverted with unknown error 0x{data.hex()}" if data else "reverted without data",
                error=None, args={}, data="0x" + data.hex(), **extra)
        try:
            values = abi_decode(list(sig.types), data[4:])
        except DecodingError:
            return RegistryError(f"{sig.name}(<undecodable 0x{data[4:].hex()}>)",
                                 error=sig.name, args={}, **extra)
        args = {n: plain(t, v) for n, t, v in zip(sig.names, sig.types, values, strict=True)}
        return contract_error(sig.name, args, **extra)

    def decode_log(self, log: Mapping[str, Any]) -> Event | None:
        topics = [bytes(t) for t in log["topics"]]
        sig = self.events.get(topics[0]) if topics else None
        if sig is None:
            return None
        body_types = [t for t, ix in zip(sig.types, sig.indexed, strict=True) if not ix]
        body = iter(abi_decode(body_types, bytes(log["data"])))
        indexed = iter(topics[1:])
        args: dict[str, Any] = {}
        for name, kind, ix in zip(sig.names, sig.types, sig.indexed, strict=True):
            if not ix:
                args[name] = plain(kind, next(body))
            else:
                args[name] = plain(kind, abi_decode([kind], next(indexed))[0])
        return Event(sig.name, args)


# -- revert extraction --------------------------------------------------------------------


def _hex_data(data: Any) -> bytes | None:
    if isinstance(data, Mapping):
        data = data.get("data", data.get("result"))
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def revert_payload(exc: BaseException) -> bytes | str | None:
    """Revert bytes, an already-decoded reason (str), or ``None`` if not a revert."""
    if isinstance(exc, ContractLogicError):
        data = _hex_data(exc.data)
        return data if data is not None else str(exc.message or "execution reverted")
    if isinstance(exc, eth_tester_errors.TransactionFailed):
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
        data = _hex_data(error.get("data") if isinstance(error, Mapping) else None)
        return data if data is not None else exc.message
    return None


# -- the contract -------------------------------------------------------------------------


class Contract:
    """One deployed contract, read through ``eth_call`` and written by signed raw txs."""

    def __init__(self, w3: Web3, artifact: Artifact, address: str,
                 account: LocalAccount | None, endpoint: str) -> None:
        self.w3 = w3
        self.artifact = artifact
        self.codec = Codec(artifact.abi)
        self.address = to_checksum_address(address)
        self.account = account
        self.endpoint = endpoint

    @contextmanager
    def boundary(self, action: str) -> Iterator[None]:
        """Translate everything the chain libraries raise into our family."""
        try:
            yield
        except RulesError:
            raise
        except _CHAIN_ERRORS as exc:
            raise self.translate(exc, action) from exc

    def translate(self, exc: BaseException, action: str) -> RulesError:
        payload = revert_payload(exc)
        if isinstance(payload, bytes):
            return self.codec.revert_error(payload)
        if isinstance(payload, str):
            return RegistryError(f"{action} reverted: {payload}", error=None, args={})
        if isinstance(exc, OSError | ProviderConnectionError | RequestTimedOut):
            return RegistryUnavailableError(
                f"{action}: chain endpoint {self.endpoint} unavailable: {type(exc).__name__}")
        if isinstance(exc, DecodingError):
            return RegistryUnavailableError(
                f"{action}: the answer does not decode as {self.artifact.name}'s ABI: {exc}")
        return RegistryError(f"{action} failed: {type(exc).__name__}: {exc}",
                             error=None, args={})

    # reads ------------------------------------------------------------------------------
    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        """``eth_call`` of view/pure function ``name``; decoded outputs."""
        data = self.codec.encode_call(name, *args)
        with self.boundary(f"call {name}"):
            out = self.w3.eth.call({"to": self.address, "data": data})
            return self.codec.decode_output(name, bytes(out))

    def estimate_gas(self, name: str, *args: Any) -> int:
        """``eth_estimateGas`` of a call to ``name`` (what a transaction would pay)."""
        data = self.codec.encode_call(name, *args)
        tx: dict[str, Any] = {"to": self.address, "data": data}
        if self.account is not None:
            tx["from"] = self.account.address
        with self.boundary(f"estimate gas of {name}"):
            return int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]

    # writes -----------------------------------------------------------------------------
    def transact(self, name: str, *args: Any) -> Receipt:
        """Sign, send and wait for ``name(*args)``; raise the decoded error on revert."""
        return self.send(self.address, self.codec.encode_call(name, *args), name)

    def send(self, to: str | None, data: bytes, action: str) -> Receipt:
        """Simulate (``eth_estimateGas``), sign, send raw and wait for the receipt."""
        account = self.account
        if account is None:
            raise RegistryError(f"{action}: this client has no signing key", error=None, args={})
        with self.boundary(action):
            tx: dict[str, Any] = {"from": account.address, "data": data, "value": 0}
            if to is not None:
                tx["to"] = to
            gas = int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
            head = self.w3.eth.get_block("latest")
            base_fee = head.get("baseFeePerGas")
            fees: dict[str, int]
            if base_fee is None:
                fees = {"gasPrice": int(self.w3.eth.gas_price)}
            else:
                tip = int(self.w3.eth.max_priority_fee)
                fees = {"type": 2, "maxPriorityFeePerGas": tip,
                        "maxFeePerGas": 2 * int(base_fee) + tip}
            del tx["from"]
            tx.update(fees, gas=gas * 6 // 5, chainId=int(self.w3.eth.chain_id),
                      nonce=int(self.w3.eth.get_transaction_count(account.address, "pending")))
            signed = account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            rc = self._wait(tx_hash, action)
        if int(rc["status"]) != 1:
            raise self._replayed_error(tx, rc, action)
        return self._receipt(rc)

    def _wait(self, tx_hash: Any, action: str) -> Any:
        deadline = time.monotonic() + _RECEIPT_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                rc = self.w3.eth.get_transaction_receipt(tx_hash)
            except (TransactionNotFound, eth_tester_errors.TransactionNotFound):
                rc = None
            if rc is not None and rc.get("blockNumber") is not None:
                return rc
            if time.monotonic() >= deadline:
                raise RegistryUnavailableError(
                    f"{action}: transaction 0x{bytes(tx_hash).hex()} was not mined within "
                    f"{_RECEIPT_TIMEOUT_S:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _replayed_error(self, tx: dict[str, Any], rc: Any, action: str) -> RulesError:
        """A mined transaction reverted (the state moved after simulation): replay it on
        the parent block's state to recover the error."""
        call: dict[str, Any] = {"data": tx["data"], "gas": tx["gas"]}
        if self.account is not None:
            call["from"] = self.account.address
        if "to" in tx:
            call["to"] = tx["to"]
        try:
            self.w3.eth.call(call, block_identifier=max(int(rc["blockNumber"]) - 1, 0))  # type: ignore[arg-type]
        except _CHAIN_ERRORS as exc:
            return self.translate(exc, action)
        return RegistryError(f"{action}: transaction failed (status 0), replay succeeds",
                             error=None, args={})

    def _receipt(self, rc: Any) -> Receipt:
        events = []
        for log in rc["logs"]:
            if str(log["address"]).lower() == self.address.lower():
                event = self.codec.decode_log(log)
                if event is not None:
                    events.append(event)
        return Receipt(
            tx_hash="0x" + bytes(rc["transactionHash"]).hex(),
            block_number=int(rc["blockNumber"]),
            status=int(rc["status"]),
            gas_used=int(rc["gasUsed"]),
            events=tuple(events),
            contract_address=(to_checksum_address(rc["contractAddress"])
                              if rc.get("contractAddress") else None),
        )


def account_from_key(private_key: str | bytes) -> LocalAccount:
    """A local signing account; never echoes the key on error."""
    try:
        account: LocalAccount = Account.from_key(private_key)
    except (ValueError, TypeError) as exc:
        raise RegistryError("invalid private key", error=None, args={}) from exc
    return account


class ContractClient:
    """The part every typed contract client shares: one deployment of ``CONTRACT_NAME``,
    used as one account (or read-only), and the same deployment as another account."""

    CONTRACT_NAME: ClassVar[str]

    def __init__(self, w3: Web3, address: str, private_key: str | bytes | None = None,
                 *, endpoint: str = "embedded") -> None:
        account = None if private_key is None else account_from_key(private_key)
        self._contract = Contract(w3, load_artifact(self.CONTRACT_NAME), address, account,
                                  endpoint)

    @property
    def w3(self) -> Web3:
        """The web3 connection (tests move the embedded chain's clock through it)."""
        return self._contract.w3

    @property
    def address(self) -> str:
        """The contract's checksummed address."""
        return self._contract.address

    @property
    def account(self) -> str | None:
        """The signing account's address, or ``None`` for a read-only client."""
        acct = self._contract.account
        return None if acct is None else acct.address

    def with_signer(self, private_key: str | bytes | None) -> Self:
        """A client of the same deployment signing as another account (or read-only)."""
        return type(self)(self.w3, self.address, private_key, endpoint=self._contract.endpoint)

