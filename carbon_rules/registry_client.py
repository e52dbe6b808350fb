"""Client of the ``RuleRegistry`` contract: publish versions, fetch rules, recompute.

A gateway fetches a methodology once (:meth:`RuleRegistryClient.methodology`, which
checks every version's factors against its on-chain parameters hash) and then computes
offline with :class:`~carbon_rules.models.Methodology`; a verifier asks the contract
itself (``compute_*``) and must get the same number. Reverts come back as the same
error classes the Python computation raises (see :mod:`carbon_rules.errors`).

Build a client with :meth:`RuleRegistryClient.embedded` (in-process py-evm, fresh
deployment) or :meth:`RuleRegistryClient.connect` (JSON-RPC node, existing deployment);
without a private key it can only read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.types import Wei

from ._internal.evm import (
    Contract,
    ContractClient,
    Event,
    Receipt,
    account_from_key,
    load_artifact,
)
from .embedded_chain import embedded_web3
from .errors import InvalidRuleError, RegistryError
from .fixed_point import Fixed
from .formulas import FuelLine, ProcessLine
from .models import (
    Factor,
    FuelUse,
    Methodology,
    MethodologyVersion,
    Param,
    ProcessUse,
    RuleRef,
    VersionDraft,
    VersionStatus,
    decode_name,
    encode_name,
)

__all__ = [
    "ASSOCIATION_ROLE",
    "CONTRACT_NAME",
    "DEFAULT_ADMIN_ROLE",
    "Event",
    "Published",
    "Receipt",
    "RuleRegistryClient",
    "VersionInfo",
]

CONTRACT_NAME = "RuleRegistry"
#: ``keccak256("ASSOCIATION_ROLE")``: may publish methodology versions.
ASSOCIATION_ROLE: bytes = keccak(text="ASSOCIATION_ROLE")
#: OpenZeppelin's ``DEFAULT_ADMIN_ROLE``: grants and revokes roles.
DEFAULT_ADMIN_ROLE: bytes = bytes(32)

_EMBEDDED_FUNDING_WEI = 10**21


@dataclass(frozen=True)
class VersionInfo:
    """``IRuleRegistry.VersionInfo``: a version's record without its factor values."""

    methodology_id: str
    version: int
    effective_from: int
    effective_to: int | None
    published_at: int
    publisher: str
    parameters_hash: bytes
    gwp_set: str
    document: str
    factor_ids: tuple[str, ...]


@dataclass(frozen=True)
class Published:
    """The result of :meth:`RuleRegistryClient.publish_version`."""

    version: int
    receipt: Receipt


class RuleRegistryClient(ContractClient):
    """Reads and writes one ``RuleRegistry`` deployment, as one account (or read-only)."""

    CONTRACT_NAME = CONTRACT_NAME

    # construction ---------------------------------------------------------------------

    @classmethod
    def embedded(cls, private_key: str | bytes | None = None) -> RuleRegistryClient:
        """A fresh in-process chain (py-evm) with a new registry whose admin (and
        association) is ``private_key``'s account (a new random key by default)."""
        from eth_account import Account

        key: str | bytes = Account.create().key if private_key is None else private_key
        account = account_from_key(key)
        w3 = embedded_web3()
        if w3.eth.get_balance(account.address) == 0:
            funder = w3.eth.accounts[0]
            tx = w3.eth.send_transaction(
                {"from": funder, "to": account.address, "value": Wei(_EMBEDDED_FUNDING_WEI)})
            w3.eth.wait_for_transaction_receipt(tx)
        return cls(w3, cls.deploy(w3, key), key)

    @classmethod
    def connect(cls, rpc_url: str, address: str, private_key: str | bytes | None = None,
                *, expected_chain_id: int | None = None) -> RuleRegistryClient:
        """A client of the registry at ``address`` on a JSON-RPC node.

        To prevent computing with another contract's answers, the code at ``address``
        must be this build's ``deployedBytecode`` (the contract has no immutables), and
        the chain id must be ``expected_chain_id`` when given.
        """
        if not is_address(address):
            raise InvalidRuleError(f"{address!r} is not an address")
        client = cls(Web3(HTTPProvider(rpc_url)), address, private_key, endpoint="rpc")
        contract = client._contract
        with contract.boundary("connect"):
            chain_id = int(contract.w3.eth.chain_id)
            code = bytes(contract.w3.eth.get_code(contract.address))
        if expected_chain_id is not None and chain_id != expected_chain_id:
            raise RegistryError(f"chain id mismatch: expected {expected_chain_id}, got {chain_id}",
                                error=None, args={})
        if code != contract.artifact.deployed_bytecode:
            expected = keccak(contract.artifact.deployed_bytecode).hex()
            raise RegistryError(
                f"code at {contract.address} is not {CONTRACT_NAME}: expected keccak "
                f"0x{expected}, got 0x{keccak(code).hex()}", error=None, args={})
        return client

    @staticmethod
    def deploy(w3: Web3, private_key: str | bytes, *, admin: str | None = None) -> str:
        """Deploy a ``RuleRegistry`` with a locally signed transaction; return its address.

        ``admin`` (default: the deployer) gets ``DEFAULT_ADMIN_ROLE`` and
        :data:`ASSOCIATION_ROLE`.
        """
        account = account_from_key(private_key)
        owner = account.address if admin is None else to_checksum_address(admin)
        artifact = load_artifact(CONTRACT_NAME)
        deployer = Contract(w3, artifact, "0x" + "00" * 20, account, "deploy")
        rc = deployer.send(None, artifact.bytecode + abi_encode(["address"], [owner]),
                           f"deploy {CONTRACT_NAME}")
        if rc.contract_address is None:
            raise RegistryError("deployment receipt has no contract address", error=None, args={})
        with deployer.boundary("read the deployed code"):
            code = bytes(w3.eth.get_code(rc.contract_address))  # type: ignore[arg-type]
        if code != artifact.deployed_bytecode:
            raise RegistryError(f"deployed code at {rc.contract_address} is not {CONTRACT_NAME}",
                                error=None, args={})
        return rc.contract_address

    # roles ----------------------------------------------------------------------------
    def has_role(self, role: bytes, account: str) -> bool:
        """Whether ``account`` holds ``role``."""
        return bool(self._contract.call("hasRole", role, to_checksum_address(account))[0])

    def grant_role(self, role: bytes, account: str) -> Receipt:
        """``grantRole(role, account)``; needs the role's admin role."""
        return self._contract.transact("grantRole", role, to_checksum_address(account))

    def revoke_role(self, role: bytes, account: str) -> Receipt:
        """``revokeRole(role, account)``; needs the role's admin role."""
        return self._contract.transact("revokeRole", role, to_checksum_address(account))

    # publication ----------------------------------------------------------------------
    def publish_version(self, methodology_id: str, effective_from: int, draft: VersionDraft,
                        *, check: bool = True) -> Published:
        """Publish ``draft`` as the next version of ``methodology_id``.

        With ``check`` (the default) the draft's factors are checked here first, raising
        exactly what the contract would; the contract checks again either way.
        """
        if check:
            draft.check()
        rc = self._contract.transact(
            "publishVersion", encode_name(methodology_id), effective_from,
            encode_name(draft.gwp_set, allow_empty=True), draft.document,
            [f.to_abi() for f in draft.factors])
        published = [e for e in rc.events if e.name == "MethodologyVersionPublished"]
        if len(published) != 1:
            raise RegistryError(f"publishVersion emitted {len(published)} publication events",
                                error=None, args={})
        return Published(version=int(published[0].args["version"]), receipt=rc)

    def publish_raw(self, methodology_id: bytes, effective_from: int, gwp_set: bytes,
                    document: str, factors: Sequence[tuple[Any, ...]]) -> Receipt:
        """``publishVersion`` with raw ABI values, unchecked (for tests of the contract's
        own refusals)."""
        return self._contract.transact("publishVersion", methodology_id, effective_from,
                                       gwp_set, document, list(factors))

    # versions -------------------------------------------------------------------------
    def version_count(self, methodology_id: str) -> int:
        """How many versions ``methodology_id`` has (0 if unknown)."""
        return int(self._contract.call("versionCount", encode_name(methodology_id))[0])

    def version_at(self, methodology_id: str, at: int) -> int:
        """The version in force at ``at``."""
        return int(self._contract.call("versionAt", encode_name(methodology_id), at)[0])

    def status_at(self, methodology_id: str, version: int, at: int) -> VersionStatus:
        """Whether ``version`` is pending, in force or superseded at ``at``."""
        out = self._contract.call("statusAt", encode_name(methodology_id), version, at)
        return VersionStatus(int(out[0]))

    def version_info(self, methodology_id: str, version: int) -> VersionInfo:
        """``versionOf``: the version's record."""
        (info,) = self._contract.call("versionOf", encode_name(methodology_id), version)
        number, start, end, published_at, publisher, digest, gwp, document, ids = info
        return VersionInfo(
            methodology_id=methodology_id, version=int(number), effective_from=int(start),
            effective_to=int(end) if int(end) else None, published_at=int(published_at),
            publisher=to_checksum_address(publisher), parameters_hash=bytes(digest),
            gwp_set=decode_name(bytes(gwp)), document=str(document),
            factor_ids=tuple(decode_name(bytes(i)) for i in ids))

    def factor(self, methodology_id: str, version: int, factor_id: str) -> Factor:
        """``factorOf``: one factor of one version, with its provenance."""
        (data,) = self._contract.call("factorOf", encode_name(methodology_id), version,
                                      encode_name(factor_id))
        return Factor.from_abi(data)

    def version(self, methodology_id: str, version: int) -> MethodologyVersion:
        """A whole version, its factors checked against its published parameters hash."""
        info = self.version_info(methodology_id, version)
        factors = tuple(self.factor(methodology_id, version, f) for f in info.factor_ids)
        return MethodologyVersion(
            methodology_id=methodology_id, version=info.version,
            effective_from=info.effective_from, published_at=info.published_at,
            publisher=info.publisher, parameters_hash=info.parameters_hash,
            gwp_set=info.gwp_set, document=info.document, factors=factors)

    def methodology(self, methodology_id: str) -> Methodology:
        """Every version of ``methodology_id``: what a gateway computes with offline."""
        count = self.version_count(methodology_id)
        return Methodology(id=methodology_id, versions=tuple(
            self.version(methodology_id, v) for v in range(1, count + 1)))

    def parameters_hash_of(self, draft: VersionDraft) -> bytes:
        """``parametersHashOf`` of a draft (equals ``draft.parameters_hash``)."""
        out = self._contract.call("parametersHashOf",
                                  encode_name(draft.gwp_set, allow_empty=True),
                                  draft.document, [f.to_abi() for f in draft.factors])
        return bytes(out[0])

    def require_in_force(self, rule: RuleRef) -> None:
        """Raise unless ``rule``'s version is in force at ``rule.at``."""
        self._contract.call("requireInForce", rule.to_abi())

    # formulas -------------------------------------------------------------------------
    def purchased_energy_emissions(self, activity_data: int, emission_factor: int) -> Fixed:
        """``purchasedEnergyEmissions``: ``E = AD x EF`` on chain."""
        out = self._contract.call("purchasedEnergyEmissions", activity_data, emission_factor)
        return Fixed(int(out[0]))

    def fuel_combustion_emissions(self, lines: Iterable[FuelLine]) -> Fixed:
        """``fuelCombustionEmissions``: ``sum FC x NCV x CC x OF x 44/12`` on chain."""
        out = self._contract.call("fuelCombustionEmissions", [x.to_abi() for x in lines])
        return Fixed(int(out[0]))

    def process_emissions(self, lines: Iterable[ProcessLine]) -> Fixed:
        """``processEmissions``: ``sum amount x EF x GWP`` on chain."""
        out = self._contract.call("processEmissions", [x.to_abi() for x in lines])
        return Fixed(int(out[0]))

    def project_reductions(self, baseline: int, project_emissions: int, leakage: int) -> int:
        """``projectReductions``: ``baseline - project - leakage`` on chain."""
        out = self._contract.call("projectReductions", baseline, project_emissions, leakage)
        return int(out[0])

    def compute_purchased_energy(self, rule: RuleRef, activity_data: int,
                                 emission_factor: Param) -> Fixed:
        """``computePurchasedEnergy``: ``E = AD x EF`` with EF resolved by ``rule``."""
        out = self._contract.call("computePurchasedEnergy", rule.to_abi(), activity_data,
                                  emission_factor.to_abi())
        return Fixed(int(out[0]))

    def compute_fuel_combustion(self, rule: RuleRef, uses: Iterable[FuelUse]) -> Fixed:
        """``computeFuelCombustion``: fuel lines with parameters resolved by ``rule``."""
        out = self._contract.call("computeFuelCombustion", rule.to_abi(),
                                  [u.to_abi() for u in uses])
        return Fixed(int(out[0]))

    def compute_process_emissions(self, rule: RuleRef, uses: Iterable[ProcessUse]) -> Fixed:
        """``computeProcessEmissions``: process lines with parameters resolved by ``rule``."""
        out = self._contract.call("computeProcessEmissions", rule.to_abi(),
                                  [u.to_abi() for u in uses])
        return Fixed(int(out[0]))

    def gas_of(self, function: str, *args: Any) -> int:
        """Gas used by a transaction that makes this call (receipt ``gasUsed``): what an
        on-chain recomputation costs, 21,000 base and calldata included.

        Measured by sending the call as a transaction (views change nothing), because
        ``eth_estimateGas`` pads its answer on some backends (py-evm). Needs a signer.
        """
        return self._contract.transact(function, *args).gas_used
