"""Verify an inventory the way a stranger would: from proven readings and the chain.

Input is an :class:`~carbon_protocol.inventory.InventoryProof` carrying the readings
the inventory used, and a connection to the ``RuleRegistry`` it names. Nothing the
ledger says is trusted beyond what the proof proves:

1. the protocol steps (:func:`carbon_protocol.inventory.verify_inventory_proof`): the
   gateway signed it, it is a leaf of a signed tree head that is anchored on chain,
   and every reading it names sits at the claimed leaf of that same tree;
2. the rule: the registry is the one the inventory names (chain id and address), and
   the version named is in force on the whole period with the parameters hash named;
3. the numbers, twice: the whole inventory recomputed offline from the proven readings
   (:func:`carbon_rules.inventory.recompute_inventory`), and each line's emissions
   recomputed by the contract itself (``computePurchasedEnergy`` /
   ``computeFuelCombustion``), which must give the same value to the last digit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from carbon_protocol.chain_view import ChainView
from carbon_protocol.inventory import InventoryProof
from carbon_protocol.models import parse_utc

from .fixed_point import parse, to_decimal
from .inventory import (
    InventoryError,
    InventoryMismatchError,
    LoggedReading,
    recompute_inventory,
    rule_for_period,
)
from .models import FuelUse, Param, RuleRef
from .registry_client import RuleRegistryClient

__all__ = ["InventoryVerification", "verify_inventory"]


@dataclass
class InventoryVerification:
    """What was verified: readings proven, and each line's emissions from the contract."""

    inventory_id: str
    readings: int = 0
    on_chain: dict[int, str] = field(default_factory=dict)
    """Line number -> emissions the contract computed (equal to the claimed ones)."""
    chain_checked: bool = False
    signatures_checked: bool = False


def verify_inventory(proof: InventoryProof, registry: RuleRegistryClient, *,
                     chain: ChainView | None = None,
                     check_signatures: bool = True) -> InventoryVerification:
    """Verify ``proof`` (module docstring); raise at the first failure: a
    ``BundleVerificationError`` for a protocol step, :class:`InventoryMismatchError`
    (naming the line and field) or the contract's own error for the rule and numbers.
    ``check_signatures``: also verify every reading's device signature (see
    :func:`carbon_protocol.inventory.verify_inventory_proof`)."""
    from carbon_protocol.inventory import verify_inventory_proof

    if proof.readings is None:
        raise InventoryError("the proof carries no readings; ask for it with its readings")
    proven = verify_inventory_proof(proof, chain=chain, check_signatures=check_signatures)
    inv = proof.signed_inventory.inventory
    rule = inv.rule
    chain_id = int(registry.w3.eth.chain_id)
    if (chain_id, registry.address.lower()) != (rule.chain_id, rule.registry):
        raise InventoryMismatchError(
            f"inventory names registry {rule.registry} on chain {rule.chain_id}; this client "
            f"reads {registry.address.lower()} on chain {chain_id}", field="rule.registry")
    methodology = registry.methodology(rule.methodology_id)
    rule_for_period(methodology, inv.period, rule.version)
    by_device: dict[str, list[LoggedReading]] = defaultdict(list)
    for index, signed in proven.items():
        by_device[signed.reading.device].append(LoggedReading(index, signed.reading))
    recompute_inventory(inv, methodology, by_device)
    report = InventoryVerification(proof.inventory_id, readings=len(proven),
                                   chain_checked=chain is not None,
                                   signatures_checked=check_signatures)
    at = int(parse_utc(inv.period.start).timestamp())
    ref = RuleRef(rule.methodology_id, rule.version, at)
    for line in inv.lines:
        ad = parse(line.activity.value)
        params = [Param.measured_value(f.id, parse(f.value)) if f.measured
                  else Param.default(f.id) for f in line.factors]
        if line.source == "fuel_combustion":
            ncv, cc, of = params
            value = registry.compute_fuel_combustion(ref, [FuelUse(ad, ncv, cc, of)])
        else:
            value = registry.compute_purchased_energy(ref, ad, params[0])
        if to_decimal(value) != line.emissions:
            raise InventoryMismatchError(
                f"line {line.line}: the contract computes {to_decimal(value)} tCO2e, the "
                f"inventory claims {line.emissions}", line=line.line, field="emissions",
                claimed=line.emissions, recomputed=to_decimal(value))
        report.on_chain[line.line] = to_decimal(value)
    return report
