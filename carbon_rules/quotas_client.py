"""Client of the ``QuotaRegistry`` contract: the regulator's annual quotas on chain.

The regulator issues and adjusts quotas (:meth:`QuotaRegistryClient.issue`,
:meth:`~QuotaRegistryClient.adjust`); everyone else reads them
(:meth:`~QuotaRegistryClient.quota`, :meth:`~QuotaRegistryClient.history`). Reverts come
back as :mod:`carbon_rules.errors` classes: ``QuotaRegistry*`` errors as their
``Quota*Error`` mirrors, and OpenZeppelin's ``AccessControlUnauthorizedAccount`` (a
sender without ``REGULATOR_ROLE``) as :class:`~carbon_rules.errors.QuotaUnauthorizedError`.

Allocations cross the boundary as 18-decimal fixed point (:mod:`carbon_rules.fixed_point`),
tCO2e, the contract's ``uint128``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.types import Wei

from ._internal.evm import Contract, ContractClient, Receipt, account_from_key, load_artifact
from .embedded_chain import embedded_web3
from .errors import ContractRuleError, QuotaRefusedError, QuotaUnauthorizedError, RegistryError
from .fixed_point import Fixed, checked

__all__ = [
    "CONTRACT_NAME",
    "Adjusted",
    "REGULATOR_ROLE",
    "ChainQuota",
    "QuotaRegistryClient",
    "enterprise_key",
]

CONTRACT_NAME = "QuotaRegistry"
#: ``keccak256("REGULATOR_ROLE")``: may issue and adjust quotas.
REGULATOR_ROLE: bytes = keccak(text="REGULATOR_ROLE")

_EMBEDDED_FUNDING_WEI = 10**21


def enterprise_key(enterprise: str) -> bytes:
    """The contract's storage key of an enterprise: ``keccak256(bytes(enterprise))``."""
    return keccak(enterprise.encode("utf-8"))


@dataclass(frozen=True)
class ChainQuota:
    """One revision of a quota as the contract stores it."""

    enterprise: str
    year: int
    revision: int
    """1 is the issue; the highest is the quota in force."""
    allocation: Fixed
    """tCO2e, fixed point."""
    set_at: int
    """Block time (Unix seconds) of the revision."""
    regulator: str
    document: str
    """The allocation document the revision rests on."""


@dataclass(frozen=True)
class Adjusted:
    """The result of :meth:`QuotaRegistryClient.adjust`."""

    revision: int
    receipt: Receipt


class QuotaRegistryClient(ContractClient):
    """Reads and writes one ``QuotaRegistry`` deployment, as one account (or read-only)."""

    CONTRACT_NAME = CONTRACT_NAME

    @classmethod
    def embedded(cls, private_key: str | bytes | None = None,
                 w3: Web3 | None = None) -> QuotaRegistryClient:
        """A ``QuotaRegistry`` on an in-process chain (py-evm; a new one unless ``w3``
        is given) whose admin and first regulator is ``private_key``'s account (a new
        random key by default)."""
        from eth_account import Account

        key: str | bytes = Account.create().key if private_key is None else private_key
        account = account_from_key(key)
        w3 = embedded_web3() if w3 is None else w3
        if w3.eth.get_balance(account.address) == 0:
            funder = w3.eth.accounts[0]
            tx = w3.eth.send_transaction(
                {"from": funder, "to": account.address, "value": Wei(_EMBEDDED_FUNDING_WEI)})
            w3.eth.wait_for_transaction_receipt(tx)
        return cls(w3, cls.deploy(w3, key), key)

    @classmethod
    def connect(cls, rpc_url: str, address: str,
                private_key: str | bytes | None = None) -> QuotaRegistryClient:
        """A client of the registry at ``address`` on a JSON-RPC node; the code there must
        be this build's ``QuotaRegistry`` (so no other contract answers for it)."""
        if not is_address(address):
            raise QuotaRefusedError(f"{address!r} is not an address", error=None, args={})
        client = cls(Web3(HTTPProvider(rpc_url)), address, private_key, endpoint="rpc")
        contract = client._contract
        with contract.boundary("connect"):
            code = bytes(contract.w3.eth.get_code(contract.address))
        if code != contract.artifact.deployed_bytecode:
            raise RegistryError(f"code at {contract.address} is not {CONTRACT_NAME}",
                                error=None, args={})
        return client

    @staticmethod
    def deploy(w3: Web3, private_key: str | bytes, *, admin: str | None = None) -> str:
        """Deploy a ``QuotaRegistry``; ``admin`` (default: the deployer) gets
        ``DEFAULT_ADMIN_ROLE`` and :data:`REGULATOR_ROLE`. Returns its address."""
        account = account_from_key(private_key)
        owner = account.address if admin is None else to_checksum_address(admin)
        artifact = load_artifact(CONTRACT_NAME)
        deployer = Contract(w3, artifact, "0x" + "00" * 20, account, "deploy")
        rc = deployer.send(None, artifact.bytecode + abi_encode(["address"], [owner]),
                           f"deploy {CONTRACT_NAME}")
        if rc.contract_address is None:
            raise RegistryError("deployment receipt has no contract address", error=None, args={})
        return rc.contract_address

    @contextmanager
    def _access(self) -> Iterator[None]:
        try:
            yield
        except ContractRuleError as exc:
            if exc.details.get("error") == "AccessControlUnauthorizedAccount":
                raise QuotaUnauthorizedError(str(exc), **exc.details) from exc
            raise

    # roles ------------------------------------------------------------------------------
    def has_role(self, role: bytes, account: str) -> bool:
        """Whether ``account`` holds ``role``."""
        return bool(self._contract.call("hasRole", role, to_checksum_address(account))[0])

    def grant_regulator(self, account: str) -> Receipt:
        """Grant :data:`REGULATOR_ROLE` to ``account`` (needs ``DEFAULT_ADMIN_ROLE``)."""
        with self._access():
            return self._contract.transact("grantRole", REGULATOR_ROLE,
                                           to_checksum_address(account))

    # writes -----------------------------------------------------------------------------
    def issue(self, enterprise: str, year: int, allocation: Fixed, document: str) -> Receipt:
        """``issueQuota``: the enterprise's first quota for ``year``."""
        with self._access():
            return self._contract.transact("issueQuota", enterprise, year,
                                           checked(allocation), document)

    def adjust(self, enterprise: str, year: int, allocation: Fixed, document: str) -> Adjusted:
        """``adjustQuota``: a new revision replacing the quota."""
        with self._access():
            rc = self._contract.transact("adjustQuota", enterprise, year,
                                         checked(allocation), document)
        adjusted = [e for e in rc.events if e.name == "QuotaAdjusted"]
        if len(adjusted) != 1:
            raise RegistryError(f"adjustQuota emitted {len(adjusted)} QuotaAdjusted events",
                                error=None, args={})
        return Adjusted(revision=int(adjusted[0].args["revision"]), receipt=rc)

    # reads ------------------------------------------------------------------------------
    def _revision(self, enterprise: str, year: int, revision: int, raw: Any) -> ChainQuota:
        allocation, set_at, regulator, document = raw
        return ChainQuota(enterprise=enterprise, year=year, revision=revision,
                          allocation=Fixed(int(allocation)), set_at=int(set_at),
                          regulator=to_checksum_address(regulator), document=str(document))

    def quota(self, enterprise: str, year: int) -> ChainQuota:
        """The quota in force (latest revision); ``QuotaNotIssuedError`` if none."""
        revision, raw = self._contract.call("quotaOf", enterprise, year)
        return self._revision(enterprise, year, int(revision), raw)

    def revision_count(self, enterprise: str, year: int) -> int:
        """How many revisions the quota has (0: never issued)."""
        return int(self._contract.call("revisionCount", enterprise, year)[0])

    def history(self, enterprise: str, year: int) -> tuple[ChainQuota, ...]:
        """Every revision, oldest first (empty if never issued)."""
        return tuple(
            self._revision(enterprise, year, n,
                           self._contract.call("revisionOf", enterprise, year, n)[0])
            for n in range(1, self.revision_count(enterprise, year) + 1))
