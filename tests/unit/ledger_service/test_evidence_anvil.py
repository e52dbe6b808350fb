"""The evidence bundle on a real node: the ledger anchors on anvil (CarbonAnchor and a
RuleRegistry deployed as ``carbon-ledger devchain --rules`` does), ``carbon-ledger
export-evidence`` runs in its own process from the settings alone, and ``carbon-ledger
verify --rpc`` checks the file against the chain (every anchor, and the carried rule
against the RuleRegistry), then names the chain step when an anchor's block is wrong."""

from __future__ import annotations

import json
import os
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
from ledger_service.deployment import deploy
from ledger_service.devchain import DEV_KEYS, DevNode, start_node
from ledger_service.ledger import Ledger
from ledger_service.settings import Settings
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import Organisation
from tests.worlds import api_key, inventory_gateway, submit_inventory

pytestmark = [pytest.mark.chain, pytest.mark.timeout(240)]
PREFIX = "86.1000.1"
ENTERPRISE = f"{PREFIX}/ent.evidence-anvil"


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    with start_node("anvil", tmp_path_factory.mktemp("anvil")) as node:
        yield node


def test_export_in_its_own_process_and_verify_against_the_node(anvil: DevNode,
                                                                tmp_path: Path) -> None:
    head = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    dep = deploy(anvil.url, DEV_KEYS[0], node="anvil", rules_effective_from=head + 3)
    assert dep.rule_registry_address is not None
    path = tmp_path / "deployment.json"
    dep.write(path)
    settings = {"LEDGER_DATA_DIR": str(tmp_path / "ledger"),
                "LEDGER_DEPLOYMENT_FILE": str(path), "LEDGER_ANCHOR_PRIVATE_KEY": DEV_KEYS[0]}
    ledger = Ledger.open(Settings(data_dir=tmp_path / "ledger", deployment_file=path,
                                  anchor_private_key=DEV_KEYS[0]))
    app = create_app(ledger)
    day = (datetime.fromtimestamp(head, UTC) + timedelta(days=1)).date()
    gw = inventory_gateway(
        tmp_path / "gw", app, api_key(ledger, Role.GATEWAY, [ENTERPRISE]),
        Organisation(ENTERPRISE, "Anvil Evidence Co.", f"{PREFIX}/site.ev", "ev", "Liaoning",
                     f"{PREFIX}/gw.ev", "ev"),
        [(f"{PREFIX}/dev.ev.elec-01", "electricity")],
        suite="intl", start=datetime(day.year, day.month, day.day, tzinfo=UTC), days=1, seed=0)
    try:
        assert [e.status for e in ledger.anchor_tick(force=True)] == ["final"]
        registry = RuleRegistryClient.connect(anvil.url, dep.rule_registry_address,
                                              expected_chain_id=dep.chain_id)
        submit_inventory(gw, period_from_label(day.isoformat()),
                         gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY, registry))
    finally:
        gw.close()
    assert [e.status for e in ledger.anchor_tick(force=True)] == ["final"]
    ledger.engine.dispose()

    env = {**os.environ, **settings}
    out = tmp_path / "evidence.json.gz"
    cli = [sys.executable, "-m", "ledger_service._cli"]
    exported = subprocess.run([*cli, "export-evidence", "--enterprise", ENTERPRISE,
                               "--period", f"{day:%Y-%m}", "-o", str(out)],
                              capture_output=True, text=True, env=env)
    assert exported.returncode == 0, exported.stderr
    assert "96 readings, 1 inventories" in exported.stderr

    good = subprocess.run([*cli, "verify", str(out), "--rpc", anvil.url],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert good.returncode == 0, good.stderr
    assert "OK (13 passed, 0 failed, 4 not checked)" in good.stderr  # no report, no records

    plain = tmp_path / "evidence.json"
    doc = json.loads(subprocess.run(["gzip", "-dc", str(out)], capture_output=True,
                                    check=True).stdout)
    doc["heads"][-1]["anchor"]["block_number"] += 1  # not where the contract says
    plain.write_text(json.dumps(doc))
    offline = subprocess.run([*cli, "verify", str(plain)], capture_output=True, text=True)
    assert offline.returncode == 0, offline.stderr  # nothing offline binds the block number
    bad = subprocess.run([*cli, "verify", str(plain), "--rpc", anvil.url],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert bad.returncode == 1 and "step 5 (chain) failed" in bad.stderr, bad.stderr
