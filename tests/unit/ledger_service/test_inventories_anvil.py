"""Inventories on a real node: ``deploy(..., rules_effective_from=...)`` (what
``carbon-ledger devchain --rules`` runs) puts a RuleRegistry with the default
methodology beside CarbonAnchor, the ledger reads the registry from the deployment
file, and ``carbon-ledger inventory verify --rpc`` checks a proof against that chain.

The registry refuses retroactive versions, so the default methodology takes effect a
few seconds after deployment and the inventory is of the next UTC day (its readings are
simulated ahead of time: the ledger does not refuse readings measured later than now).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbon_rules.inventory import period_from_label
from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
from carbon_rules.registry_client import RuleRegistryClient
from ledger_service.api import create_app
from ledger_service.auth import Role
from ledger_service.deployment import Deployment, deploy
from ledger_service.devchain import DEV_KEYS, DevNode, start_node
from ledger_service.ledger import Ledger
from ledger_service.settings import Settings
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import Organisation
from tests.worlds import api_key, inventory_gateway, submit_inventory

pytestmark = [pytest.mark.chain, pytest.mark.timeout(180)]
PREFIX = "86.1000.1"


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    with start_node("anvil", tmp_path_factory.mktemp("anvil")) as node:
        yield node


def test_devchain_rules_ledger_gateway_and_cli_verify(anvil: DevNode, tmp_path: Path) -> None:
    head = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    dep = deploy(anvil.url, DEV_KEYS[0], node="anvil", rules_effective_from=head + 3)
    assert dep.rule_registry_address is not None
    assert dep.methodology_id == DEFAULT_METHODOLOGY
    path = tmp_path / "deployment.json"
    dep.write(path)
    assert Deployment.load(path) == dep
    assert json.loads(path.read_text())["rule_registry_address"] == dep.rule_registry_address

    ledger = Ledger.open(Settings(data_dir=tmp_path / "ledger", deployment_file=path,
                                  anchor_private_key=DEV_KEYS[0]))
    assert ledger.chain.rule_registry_address == dep.rule_registry_address
    app = create_app(ledger)
    day = (datetime.fromtimestamp(head, UTC) + timedelta(days=1)).date()
    gw = inventory_gateway(  # with the gateway's key, for its enterprise
        tmp_path / "gw", app, api_key(ledger, Role.GATEWAY, [f"{PREFIX}/ent.anvil"]),
        Organisation(f"{PREFIX}/ent.anvil", "Anvil Co.", f"{PREFIX}/site.anvil", "anvil",
                     "Liaoning", f"{PREFIX}/gw.anvil", "anvil"),
        [(f"{PREFIX}/dev.anvil.elec-01", "electricity")],
        suite="intl", start=datetime(day.year, day.month, day.day, tzinfo=UTC), days=1, seed=0)
    try:
        registry = RuleRegistryClient.connect(anvil.url, dep.rule_registry_address,
                                              expected_chain_id=dep.chain_id)
        rules = gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY, registry)
        run, receipt = submit_inventory(gw, period_from_label(day.isoformat()), rules)
    finally:
        gw.close()
    assert [e.status for e in ledger.anchor_tick(force=True)] == ["final"]

    proof_file = tmp_path / "inventory-proof.json"
    proof = ledger.inventory_proof(receipt["inventory_id"], with_readings=True)
    proof_file.write_text(proof.model_dump_json(exclude_none=True))
    ledger.engine.dispose()
    cli = [sys.executable, "-m", "ledger_service._cli", "inventory", "verify",
           str(proof_file), "--rpc", anvil.url]
    good = subprocess.run(cli, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stderr and "96 proven readings" in good.stderr
    assert f"{run.signed.inventory.totals.total} tCO2e" in good.stderr

    doc = json.loads(proof_file.read_text())
    doc["signed_inventory"]["inventory"]["lines"][0]["emissions"] = "1"
    proof_file.write_text(json.dumps(doc))
    bad = subprocess.run(cli, capture_output=True, text=True)
    assert bad.returncode == 1 and "step 1 (gateway signature) failed" in bad.stderr
