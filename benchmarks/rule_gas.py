"""Gas of recomputing an inventory's source lines on chain with the ``RuleRegistry``.

A verifier that does not trust the gateway recomputes each source line with the
contract. For every formula this measures, on a fresh embedded chain, the gas of a
transaction making the call (receipt ``gasUsed``: 21,000 base, calldata and
execution; ``eth_estimateGas`` pads its answer on py-evm, so it is not used):

* ``rule_gas_<formula>``: one call with one line, ``case`` ``pure`` (the caller passes
  every factor) or ``rule-bound`` (the contract checks the version is in force and
  resolves the factors it published);
* ``rule_gas_<formula>_per_line``: the marginal gas of one more line in a call, from
  calls with 1 and ``LINES`` lines (what a many-line inventory pays per line);
* ``rule_gas_publish_version`` and ``rule_gas_deploy``: what the association pays.
* ``quota_gas_deploy``, ``quota_gas_issue``, ``quota_gas_adjust``: what the regulator
  pays for the ``QuotaRegistry`` (:func:`_quota_gas`).

The rule-bound calls use the shipped default factors (``carbon_rules.factors``),
published as version 1 of a methodology; every line of a call is the same worked
example, so factor reads after the first line of a call are warm (EIP-2929). Results
are also checked against the Python computation: a benchmark of a wrong number is no
benchmark.
"""

from __future__ import annotations

from typing import Any

from benchmarks._common import check, emit, log

LINES = 50
QUICK_LINES = 10


def _measure(client: Any, function: str, *args: Any) -> tuple[int, int]:
    """``(gas used, calldata bytes)`` of a transaction calling ``function(*args)``."""
    data = client._contract.codec.encode_call(function, *args)
    return client.gas_of(function, *args), len(data)


def _deploy_gas(client: Any) -> int:
    """Gas of the transaction that created ``client``'s contract (in the first blocks)."""
    w3 = client.w3
    for number in range(w3.eth.block_number + 1):
        for tx_hash in w3.eth.get_block(number)["transactions"]:
            rc = w3.eth.get_transaction_receipt(tx_hash)
            if rc.get("contractAddress") == client.address:
                return int(rc["gasUsed"])
    raise AssertionError("the registry's deployment transaction was not found")


def run(suites: list[str], quick: bool) -> None:  # noqa: ARG001 - gas is suite-independent
    """Emit gas per on-chain recomputation, per source line and formula."""
    from carbon_rules.factors import default_draft
    from carbon_rules.fixed_point import parse
    from carbon_rules.formulas import (
        FuelLine,
        ProcessLine,
        fuel_combustion,
        process_emissions,
        project_reductions,
        purchased_energy,
    )
    from carbon_rules.models import FuelUse, Param, ProcessUse, RuleRef
    from carbon_rules.registry_client import RuleRegistryClient

    lines = QUICK_LINES if quick else LINES
    log(f"rule_gas: embedded chain, 1 and {lines} lines per call")
    client = RuleRegistryClient.embedded()
    deploy_gas = _deploy_gas(client)
    draft = default_draft()
    published = client.publish_version("bench.defaults", 1_600_000_000, draft)
    emit("rule_gas_deploy", "any", deploy_gas, "gas",
         contract="RuleRegistry", chain="embedded py-evm")
    emit("rule_gas_publish_version", "any", published.receipt.gas_used, "gas",
         factors=len(draft.factors), chain="embedded py-evm",
         note="each factor stores value, range, unit, region, year and its source text")
    methodology = client.methodology("bench.defaults")
    rule = RuleRef("bench.defaults", 1, 1_700_000_000)

    # -- the lines: the worked examples of tests/unit/carbon_rules/test_formulas.py --
    ad, ef = parse("186.42"), parse("0.5703")
    diesel = FuelLine(parse("120"), parse("42.652"), parse("0.0202"), parse("0.98"))
    diesel_use = FuelUse.with_defaults("diesel", parse("120"))
    sf6 = ProcessLine(parse("0.012"), parse("1"), parse("23500"))
    sf6_use = ProcessUse(parse("0.012"), Param("ef.direct_release"), Param("gwp.SF6"))
    grid = Param("ef.grid.CN")

    check(client.purchased_energy_emissions(ad, ef) == purchased_energy(ad, ef),
          "purchased energy differs between contract and Python")
    check(client.compute_purchased_energy(rule, ad, grid)
          == methodology.compute_purchased_energy(rule, ad, grid), "rule-bound E = AD x EF differs")
    check(client.fuel_combustion_emissions([diesel] * lines) == fuel_combustion([diesel] * lines),
          "fuel combustion differs between contract and Python")
    check(client.compute_fuel_combustion(rule, [diesel_use] * lines)
          == methodology.compute_fuel_combustion(rule, [diesel_use] * lines),
          "rule-bound fuel combustion differs")
    check(client.process_emissions([sf6] * lines) == process_emissions([sf6] * lines),
          "process emissions differ between contract and Python")
    check(client.project_reductions(parse("45421.8"), parse("2652.70915648"), 0)
          == project_reductions(parse("45421.8"), parse("2652.70915648"), 0),
          "project reductions differ")

    # -- one call per formula ------------------------------------------------------
    single: list[tuple[str, str, str, tuple[Any, ...]]] = [
        ("rule_gas_purchased_energy", "pure", "purchasedEnergyEmissions", (ad, ef)),
        ("rule_gas_purchased_energy", "rule-bound", "computePurchasedEnergy",
         (rule.to_abi(), ad, grid.to_abi())),
        ("rule_gas_fuel_combustion", "pure", "fuelCombustionEmissions", ([diesel.to_abi()],)),
        ("rule_gas_fuel_combustion", "rule-bound", "computeFuelCombustion",
         (rule.to_abi(), [diesel_use.to_abi()])),
        ("rule_gas_process_emissions", "pure", "processEmissions", ([sf6.to_abi()],)),
        ("rule_gas_process_emissions", "rule-bound", "computeProcessEmissions",
         (rule.to_abi(), [sf6_use.to_abi()])),
        ("rule_gas_project_reductions", "pure", "projectReductions",
         (parse("45421.8"), parse("2652.70915648"), 0)),
    ]
    for metric, case, function, args in single:
        gas, size = _measure(client, function, *args)
        emit(metric, "any", gas, "gas", case=case, function=function, lines=1,
             calldata_bytes=size, chain="embedded py-evm", includes="21000 base + calldata")

    # -- marginal gas per line ---------------------------------------------------------
    many: list[tuple[str, str, str, Any]] = [
        ("rule_gas_fuel_combustion_per_line", "pure", "fuelCombustionEmissions",
         lambda n: ([diesel.to_abi()] * n,)),
        ("rule_gas_fuel_combustion_per_line", "rule-bound", "computeFuelCombustion",
         lambda n: (rule.to_abi(), [diesel_use.to_abi()] * n)),
        ("rule_gas_process_emissions_per_line", "pure", "processEmissions",
         lambda n: ([sf6.to_abi()] * n,)),
        ("rule_gas_process_emissions_per_line", "rule-bound", "computeProcessEmissions",
         lambda n: (rule.to_abi(), [sf6_use.to_abi()] * n)),
    ]
    for metric, case, function, make_args in many:
        one, _size = _measure(client, function, *make_args(1))
        total, size = _measure(client, function, *make_args(lines))
        per_line = (total - one) / (lines - 1)
        check(0 < per_line < 20_000, f"{metric} ({case}): {per_line} gas per line")
        emit(metric, "any", per_line, "gas/line", case=case, function=function,
             lines=lines, gas_one_line=one, gas_all_lines=total, calldata_bytes=size,
             chain="embedded py-evm")
    _quota_gas()


def _quota_gas() -> None:
    """``quota_gas_*``: what the regulator pays to deploy a ``QuotaRegistry``, issue a
    quota and adjust it (each revision keeps its allocation document on chain)."""
    from carbon_rules.fixed_point import parse
    from carbon_rules.quotas_client import QuotaRegistryClient

    client = QuotaRegistryClient.embedded()
    document = "生态环境部 2026 年度配额分配通知 (allocation notice) No. 2026-001"
    issued = client.issue("86.1000.1/ent.bench-steel-0001", 2026, parse("10000"), document)
    adjusted = client.adjust("86.1000.1/ent.bench-steel-0001", 2026, parse("10400.5"),
                             document.replace("001", "017"))
    check(adjusted.revision == 2, f"adjustQuota returned revision {adjusted.revision}")
    check(client.quota("86.1000.1/ent.bench-steel-0001", 2026).allocation == parse("10400.5"),
          "quota after adjustment")
    emit("quota_gas_deploy", "any", _deploy_gas(client), "gas", contract="QuotaRegistry",
         chain="embedded py-evm")
    emit("quota_gas_issue", "any", issued.gas_used, "gas", document_bytes=len(
        document.encode()), chain="embedded py-evm")
    emit("quota_gas_adjust", "any", adjusted.receipt.gas_used, "gas", revision=2,
         chain="embedded py-evm")
