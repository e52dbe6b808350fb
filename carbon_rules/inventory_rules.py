"""The methodology inventories are computed with, and putting it on a chain.

An association publishes :data:`DEFAULT_METHODOLOGY` (every shipped default factor with
its source: the MEE 2023 grid factor 0.5703 tCO2/MWh, the NDRC heat and fuel defaults,
IPCC AR5 GWPs) with its ``ASSOCIATION_ROLE``; gateways and the ledger read it back from
the same chain with :meth:`RuleRegistryClient.methodology`.

The registry refuses retroactive versions (``effectiveFrom`` must be after the block
that publishes it), so a version can only apply to periods after its publication. A
real consortium chain has that history. The in-process chain of a demo or a test has
none: :func:`embedded_rules_chain` gives it one, by starting the chain at a genesis
before :data:`DEFAULT_EFFECTIVE_FROM` and mining the registry's deployment and the
publication in blocks dated then; every later block carries the real time. The
registry's rules are not bypassed: the publication block really precedes the
version's effective date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]
from web3 import Web3
from web3.types import Wei

from .embedded_chain import embedded_web3
from .errors import InvalidRuleError
from .factors import default_draft
from .fixed_point import parse, to_decimal
from .models import Factor, Methodology, MethodologyVersion
from .registry_client import ASSOCIATION_ROLE, Published, RuleRegistryClient

__all__ = [
    "DEFAULT_EFFECTIVE_FROM",
    "methodology_from_json",
    "methodology_to_json",
    "DEFAULT_METHODOLOGY",
    "EmbeddedRules",
    "embedded_rules_chain",
    "publish_default_methodology",
]

#: The methodology id the shipped defaults are published under.
DEFAULT_METHODOLOGY = "cn.enterprise-ghg"
#: 2023-01-01T00:00:00Z: the year of the MEE notice that set the 0.5703 grid factor.
DEFAULT_EFFECTIVE_FROM = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())

_FUNDING_WEI = 10**21


def publish_default_methodology(client: RuleRegistryClient,
                                effective_from: int = DEFAULT_EFFECTIVE_FROM) -> Published:
    """Publish the shipped defaults as the next version of :data:`DEFAULT_METHODOLOGY`
    (the client's account needs ``ASSOCIATION_ROLE``)."""
    account = client.account
    if account is None or not client.has_role(ASSOCIATION_ROLE, account):
        from .errors import RegistryError

        raise RegistryError(f"{account} lacks ASSOCIATION_ROLE on {client.address}",
                            error=None, args={})
    return client.publish_version(DEFAULT_METHODOLOGY, effective_from, default_draft())


class EmbeddedRules:
    """An in-process chain whose history holds a registry with the default methodology."""

    def __init__(self, w3: Web3, registry: RuleRegistryClient) -> None:
        self.w3 = w3
        self.registry = registry


def _next_block_at(backend: PyEVMBackend, timestamp: int) -> None:
    # py-evm mines the pending header as it stands; dating it is what time_travel does
    # (forward only, which this is: the chain starts before ``timestamp``).
    backend.chain.header = backend.chain.header.copy(timestamp=timestamp)


def embedded_rules_chain(association_key: str | bytes,
                         effective_from: int = DEFAULT_EFFECTIVE_FROM) -> EmbeddedRules:
    """A new in-process chain on which ``association_key``'s account deployed a
    ``RuleRegistry`` and published the default methodology, effective from
    ``effective_from``, in blocks dated the two days before it. Contracts deployed on
    ``.w3`` afterwards (the anchor contract) live in blocks with the real time."""
    genesis = effective_from - 2 * 86_400
    params = PyEVMBackend.generate_genesis_params(overrides={"timestamp": genesis})
    backend = PyEVMBackend(genesis_parameters=params)
    w3 = embedded_web3(EthereumTester(backend))
    account = Account.from_key(association_key)
    _next_block_at(backend, genesis + 60)
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address,
                                  "value": Wei(_FUNDING_WEI)})
    w3.eth.wait_for_transaction_receipt(tx)
    _next_block_at(backend, genesis + 120)
    address = RuleRegistryClient.deploy(w3, association_key)
    client = RuleRegistryClient(w3, address, association_key)
    _next_block_at(backend, genesis + 180)
    publish_default_methodology(client, effective_from)
    return EmbeddedRules(w3, client)


def methodology_to_json(methodology: Methodology) -> dict[str, Any]:
    """A methodology's published versions as JSON (fixed point as decimal strings)."""
    return {"id": methodology.id, "versions": [{
        "version": v.version, "effective_from": v.effective_from,
        "published_at": v.published_at, "publisher": v.publisher,
        "parameters_hash": v.parameters_hash.hex(), "gwp_set": v.gwp_set,
        "document": v.document, "factors": [{
            "id": f.id, "value": to_decimal(f.value), "min": to_decimal(f.min_value),
            "max": to_decimal(f.max_value), "unit": f.unit, "region": f.region,
            "year": f.year, "source": f.source} for f in v.factors],
    } for v in methodology.versions]}


def methodology_from_json(data: Any) -> Methodology:
    """The inverse of :func:`methodology_to_json`. Each version's factors are checked
    against its parameters hash (:class:`MethodologyVersion` refuses a mismatch), so a
    relay cannot alter a factor without also altering the hash, which the registry
    on chain would then contradict."""
    try:
        return Methodology(id=str(data["id"]), versions=tuple(MethodologyVersion(
            methodology_id=str(data["id"]), version=int(v["version"]),
            effective_from=int(v["effective_from"]), published_at=int(v["published_at"]),
            publisher=str(v["publisher"]), parameters_hash=bytes.fromhex(v["parameters_hash"]),
            gwp_set=str(v["gwp_set"]), document=str(v["document"]),
            factors=tuple(Factor(id=f["id"], value=parse(f["value"]), min_value=parse(f["min"]),
                                 max_value=parse(f["max"]), unit=f["unit"], region=f["region"],
                                 year=int(f["year"]), source=f["source"])
                          for f in v["factors"]))
            for v in data["versions"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidRuleError):
            raise
        raise InvalidRuleError(f"not a methodology document: {exc!r}") from exc
