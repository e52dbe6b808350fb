"""Deployment files: which chain, endpoint and ``CarbonAnchor`` a ledger anchors to.

``carbon-ledger devchain`` writes one after deploying; the service reads it through
``LEDGER_DEPLOYMENT_FILE`` (see :class:`~ledger_service.settings.Settings`). A file
looks like::

    {
      "chain_id": 31337,
      "rpc_url": "http://127.0.0.1:8545",
      "contract_address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      "contract_code_keccak": "0x…",
      "compiler": "0.8.37+commit.f401782d",
      "deployer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
      "deployed_at_block": 1,
      "contract_name": "CarbonAnchor",
      "node": "anvil",
      "rule_registry_address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
      "methodology_id": "cn.enterprise-ghg",
      "quota_registry_address": "0x…",
      "regulator": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
      "data_market_address": "0x…"
    }

``rule_registry_address`` is the ``RuleRegistry`` deployed beside the anchor contract
(``devchain --rules`` deploys it and publishes the default methodology,
``methodology_id``, with the deployer as association); gateways and the ledger read
rules from it. ``quota_registry_address`` is the ``QuotaRegistry`` deployed with it (the
deployer is its admin) and ``regulator`` the account granted ``REGULATOR_ROLE`` there
(``devchain`` grants it to a well-known development key); the quota API and CLI use
that registry when none is named. ``data_market_address`` is the marketplace's
``DataMarket`` (deployer as admin, the anchorers as operators: the ledger writes
listings and grants with its anchoring key). These keys are absent from a deployment
without rules.

``contract_code_keccak`` is ``keccak256`` of the runtime code at ``contract_address``
(``CarbonAnchor`` has no immutables, so it equals the artifact's ``deployedBytecode``
hash). Three checks keep a ledger from anchoring somewhere it should not:

1. loading refuses a file made with another build of the contract
   (:meth:`Deployment.check_build`: code hash and compiler, expected vs got);
2. settings refuse explicit ``LEDGER_RPC_URL`` / ``LEDGER_CONTRACT_ADDRESS`` /
   ``LEDGER_CHAIN_ID`` that disagree with the file, naming the one that differs;
3. on start, and again before every anchoring write, the chain client checks the node's
   chain id and the code at the address (``ChainClient.connect`` and
   ``ChainClient.verify_deployment``), raising ``ChainMismatchError`` with expected
   and got.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import ChainMismatchError, InvalidInputError, LedgerError

__all__ = ["Deployment", "deploy", "grant_anchorers"]

_Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
_Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]


class Deployment(BaseModel):
    """One ``CarbonAnchor`` deployment: where it is and what code it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    chain_id: int = Field(gt=0)
    rpc_url: str = Field(min_length=1)
    contract_address: _Address
    contract_code_keccak: _Hex32
    compiler: str
    deployer: _Address
    deployed_at_block: int = Field(ge=0)
    contract_name: str = "CarbonAnchor"
    node: str | None = None
    """The kind of node ``devchain`` started (``anvil``, ``ganache``); informational."""
    rule_registry_address: _Address | None = None
    """The ``RuleRegistry`` on the same chain, if one was deployed (inventories need it)."""
    methodology_id: str | None = None
    """The methodology published there with the shipped default factors."""
    quota_registry_address: _Address | None = None
    """The ``QuotaRegistry`` on the same chain, if one was deployed (regulator's quotas)."""
    regulator: _Address | None = None
    """The account granted ``REGULATOR_ROLE`` on that registry besides the deployer."""
    data_market_address: _Address | None = None
    """The ``DataMarket`` on the same chain, if one was deployed (the marketplace)."""

    # -- files ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read and parse ``path``, then :meth:`check_build`.

        Raises :class:`InvalidInputError` if the file is missing or malformed and
        :class:`ChainMismatchError` if it describes another build of the contract.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot read deployment file {path}: {exc}") from exc
        try:
            deployment = cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(file)"
            raise InvalidInputError(
                f"deployment file {path} is malformed: {loc}: {first['msg']}") from exc
        deployment.check_build(path)
        return deployment

    def write(self, path: Path) -> None:
        """Write the file atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Without rules the file is exactly what it was before the registry existed.
        absent = {k for k in ("rule_registry_address", "methodology_id",
                              "quota_registry_address", "regulator",
                              "data_market_address")
                  if getattr(self, k) is None}
        text = json.dumps(self.model_dump(exclude=absent), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def check_build(self, source: Path | str = "deployment file") -> None:
        """Refuse a deployment of another contract or another build of ``CarbonAnchor``."""
        from eth_utils.crypto import keccak

        from ._internal.contract_artifacts import load_artifact

        if self.contract_name != "CarbonAnchor":
            raise ChainMismatchError(
                f"{source} describes contract {self.contract_name!r}, expected 'CarbonAnchor'",
                expected="CarbonAnchor", got=self.contract_name)
        artifact = load_artifact("CarbonAnchor")
        expected = "0x" + keccak(artifact.deployed_bytecode).hex()
        if self.contract_code_keccak != expected:
            raise ChainMismatchError(
                f"{source} was made for another build of CarbonAnchor: code keccak "
                f"expected {expected} (this build, solc {artifact.compiler}), got "
                f"{self.contract_code_keccak} (solc {self.compiler})",
                expected=expected, got=self.contract_code_keccak)

    # -- chains -----------------------------------------------------------------------
    @classmethod
    def reuse(cls, path: Path, rpc_url: str, key: str) -> Deployment | None:
        """The deployment in ``path`` if it is still live at ``rpc_url`` (same chain id,
        the contract's code at its address), re-pointed at ``rpc_url``; else ``None``."""
        from ._internal.chain import ChainClient

        try:
            old = cls.load(path)
            ChainClient.connect(rpc_url, key, old.contract_address,
                                expected_chain_id=old.chain_id)
        except LedgerError:
            return None
        return old.model_copy(update={"rpc_url": rpc_url})


def deploy(rpc_url: str, deployer_key: str, *, anchorers: Sequence[str] = (),
           node: str | None = None, rules_effective_from: int | None = None,
           regulator: str | None = None) -> Deployment:
    """Deploy ``CarbonAnchor`` at ``rpc_url`` with ``deployer_key`` (a locally signed raw
    transaction; the deployer becomes admin and anchorer) and grant ``ANCHORER_ROLE`` to
    each address in ``anchorers``; return the :class:`Deployment` describing it.

    With ``rules_effective_from`` (Unix seconds, after the chain's current time: the
    registry refuses retroactive versions) a ``RuleRegistry`` is deployed too, and the
    default methodology published in it effective from then, the deployer acting as
    the association; and a ``QuotaRegistry`` whose admin is the deployer, with
    ``REGULATOR_ROLE`` granted to ``regulator`` (an address) if given; and a
    ``DataMarket`` administered by the deployer, operated by it and the ``anchorers``."""
    from ._internal.chain import ChainClient

    address, receipt = ChainClient.deploy_with_receipt(rpc_url, deployer_key)
    client = ChainClient.connect(rpc_url, deployer_key, address)
    registry: str | None = None
    methodology: str | None = None
    quotas: str | None = None
    market: str | None = None
    if rules_effective_from is not None:
        from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY, publish_default_methodology
        from carbon_rules.registry_client import RuleRegistryClient

        rules = RuleRegistryClient(client.w3, RuleRegistryClient.deploy(client.w3, deployer_key),
                                   deployer_key, endpoint="rpc")
        publish_default_methodology(rules, rules_effective_from)
        registry, methodology = rules.address, DEFAULT_METHODOLOGY
        quotas = _deploy_quota_registry(rpc_url, deployer_key, regulator)
        from .market.contract import deploy_beside

        market = deploy_beside(client, deployer_key, operators=tuple(anchorers))
    deployment = Deployment(
        chain_id=client.chain_id, rpc_url=rpc_url, contract_address=address,
        contract_code_keccak=client.code_hash, compiler=client.compiler,
        deployer=client.account, deployed_at_block=receipt.block_number, node=node,
        rule_registry_address=registry, methodology_id=methodology,
        quota_registry_address=quotas, regulator=regulator if quotas else None,
        data_market_address=market,
    )
    grant_anchorers(deployment, deployer_key, anchorers)
    return deployment


def _deploy_quota_registry(rpc_url: str, deployer_key: str, regulator: str | None) -> str:
    from web3 import HTTPProvider, Web3

    from carbon_rules.quotas_client import QuotaRegistryClient

    w3 = Web3(HTTPProvider(rpc_url))
    address = QuotaRegistryClient.deploy(w3, deployer_key)
    if regulator is not None:
        QuotaRegistryClient.connect(rpc_url, address, deployer_key).grant_regulator(regulator)
    return address


def grant_anchorers(deployment: Deployment, admin_key: str, anchorers: Sequence[str]) -> None:
    """Grant ``ANCHORER_ROLE`` to each of ``anchorers`` that lacks it (signed by the
    admin's key), so a ledger can anchor with its own key rather than the deployer's."""
    from ._internal.chain import ANCHORER_ROLE, ChainClient

    client = ChainClient.connect(deployment.rpc_url, admin_key, deployment.contract_address,
                                 expected_chain_id=deployment.chain_id)
    for account in anchorers:
        if not client.has_role(ANCHORER_ROLE, account):
            client.grant_role(ANCHORER_ROLE, account)
