"""The ledger's own ``QuotaRegistry``: deployed beside the ``RuleRegistry`` on the
embedded chain (``Ledger.open(rules=True)``) and by ``deploy(..., regulator=...)`` (what
``carbon-ledger devchain --rules`` runs) on a real anvil node; the development regulator
issues, anyone else is refused by the contract; the API and CLI default to it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner
from web3.types import Wei

from carbon_rules.errors import QuotaUnauthorizedError
from carbon_rules.fixed_point import parse
from carbon_rules.quotas_client import REGULATOR_ROLE, QuotaRegistryClient
from ledger_service._cli import app as cli
from ledger_service.api import create_app
from ledger_service.auth import KeyCreate, Role, create_key
from ledger_service.deployment import Deployment, deploy
from ledger_service.devchain import DEV_KEYS, DEV_REGULATOR_KEY, DevNode, start_node
from ledger_service.ledger import Ledger
from ledger_service.quotas import regulator_key
from ledger_service.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2 (as in uploader)
    from fastapi.testclient import TestClient

PREFIX = "86.1000.1"
ENTERPRISE = f"{PREFIX}/ent.quota-test"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    tmp = tmp_path_factory.mktemp("quota-registry")
    opened = Ledger.open(Settings(data_dir=tmp / "ledger", prefix=PREFIX,
                                  log_id=f"{PREFIX}/log.main"), rules=True)
    yield opened
    opened.engine.dispose()


def test_embedded_ledger_has_a_quota_registry_its_regulator_issues_on(ledger: Ledger) -> None:
    address = ledger.quota_registry_address
    assert address is not None
    w3 = ledger.rules().w3
    regulator = QuotaRegistryClient(w3, address, regulator_key(ledger.settings.data_dir))
    assert regulator.account is not None and regulator.has_role(REGULATOR_ROLE,
                                                                regulator.account)
    regulator.issue(ENTERPRISE, 2026, parse("1200"), "allocation notice 2026-007")

    stranger = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": stranger.address, "value": Wei(10**18)}))
    with pytest.raises(QuotaUnauthorizedError):
        regulator.with_signer(stranger.key).issue(ENTERPRISE + ".x", 2026, parse("1"), "forged")
    assert not regulator.has_role(REGULATOR_ROLE, stranger.address)

    app = create_app(ledger)
    with ledger.engine.begin() as conn:
        key = create_key(conn, KeyCreate(role=Role.REGULATOR)).api_key
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as http:
        got = http.get("/v1/quotas", params={"enterprise": ENTERPRISE, "year": 2026})
        assert got.status_code == 200, got.text
        assert got.json()["registry"].lower() == address.lower()
        assert got.json()["allocation"] == "1200"
        rec = http.post("/v1/quotas/reconcile", json={
            "enterprise": ENTERPRISE, "year": 2026, "internal": "5000",
            "emissions": {str(m): "100" for m in range(1, 4)}})
        assert rec.status_code == 200, rec.text
        assert rec.json()["quota"]["origin"] == "chain"  # the ledger's registry overrides
        assert rec.json()["quota"]["allocation"] == "1200"


def test_same_registry_address_after_a_restart(ledger: Ledger) -> None:
    again = Ledger.open(ledger.settings, rules=True)
    try:
        assert again.quota_registry_address == ledger.quota_registry_address
    finally:
        again.engine.dispose()


def test_a_ledger_without_rules_asks_for_a_registry(tmp_path: Path) -> None:
    plain = Ledger.open(Settings(data_dir=tmp_path / "ledger", prefix=PREFIX,
                                 log_id=f"{PREFIX}/log.main"))
    try:
        assert plain.quota_registry_address is None
        with plain.engine.begin() as conn:
            key = create_key(conn, KeyCreate(role=Role.REGULATOR)).api_key
        with TestClient(create_app(plain), headers={"Authorization": f"Bearer {key}"}) as http:
            got = http.get("/v1/quotas", params={"enterprise": ENTERPRISE, "year": 2026})
        assert (got.status_code, got.json()["code"]) == (422, "no_quota_registry")
    finally:
        plain.engine.dispose()


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    with start_node("anvil", tmp_path_factory.mktemp("anvil")) as node:
        yield node


@pytest.mark.chain
@pytest.mark.timeout(180)
def test_deployment_file_names_the_quota_registry_and_the_cli_defaults_to_it(
        anvil: DevNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    regulator = Account.from_key(DEV_REGULATOR_KEY).address
    dep = deploy(anvil.url, DEV_KEYS[0], node="anvil", rules_effective_from=head + 3,
                 regulator=regulator)
    assert dep.quota_registry_address is not None and dep.regulator == regulator
    path = tmp_path / "deployment.json"
    dep.write(path)
    assert Deployment.load(path) == dep
    written = json.loads(path.read_text())
    assert written["quota_registry_address"] == dep.quota_registry_address
    client = QuotaRegistryClient.connect(anvil.url, dep.quota_registry_address)
    assert client.has_role(REGULATOR_ROLE, regulator)
    assert not client.has_role(REGULATOR_ROLE, Account.from_key(DEV_KEYS[1]).address)

    ledger = Ledger.open(Settings(data_dir=tmp_path / "ledger", deployment_file=path,
                                  anchor_private_key=DEV_KEYS[0]))
    try:
        assert ledger.quota_registry_address == dep.quota_registry_address
    finally:
        ledger.engine.dispose()

    runner = CliRunner()
    monkeypatch.setenv("LEDGER_DEPLOYMENT_FILE", str(path))
    key_file = tmp_path / "regulator.hex"
    key_file.write_text(DEV_REGULATOR_KEY)
    issued = runner.invoke(cli, ["quota", "issue", ENTERPRISE, "2026", "900",
                                 "--document", "notice 7", "--key-file", str(key_file)])
    assert issued.exit_code == 0, issued.stderr
    shown = runner.invoke(cli, ["quota", "show", ENTERPRISE, "2026"])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout.splitlines()[0])["allocation"] == "900"
    other = tmp_path / "other.hex"
    other.write_text(DEV_KEYS[1])
    refused = runner.invoke(cli, ["quota", "issue", ENTERPRISE, "2027", "900",
                                  "--document", "forged", "--key-file", str(other)])
    assert refused.exit_code == 1 and "quota_unauthorized" in refused.stderr
