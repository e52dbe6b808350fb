"""``carbon-gateway inventory`` over real HTTP to a real ledger whose embedded chain holds
a RuleRegistry with the default methodology: computed, signed, submitted, recomputed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gw_support import FlakyServer  # noqa: E402

from node_gateway._cli import app  # noqa: E402

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def rules_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    import warnings

    from ledger_service.api import create_app
    from ledger_service.auth import KeyCreate, Role, create_key
    from ledger_service.ledger import Ledger
    from ledger_service.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's "TestClient moves to httpx2" notice
        from fastapi.testclient import TestClient

    ledger = Ledger.open(Settings(data_dir=tmp_path_factory.mktemp("ledger")), rules=True)
    with ledger.engine.begin() as conn:  # the proxy presents an admin's key upstream
        key = create_key(conn, KeyCreate(role=Role.ADMIN, label="flaky proxy")).api_key
    upstream = TestClient(create_app(ledger), raise_server_exceptions=False,
                          headers={"Authorization": f"Bearer {key}"})
    server = FlakyServer(upstream)
    server.start()
    yield ledger, server.url
    server.stop()
    upstream.close()
    ledger.engine.dispose()


@pytest.fixture
def cli(tmp_path: Path, rules_ledger: tuple[object, str]) -> Cli:
    runner = CliRunner()
    tag = tmp_path.name[-8:]
    env = {
        "GATEWAY_DATA_DIR": str(tmp_path / "gw"),
        "GATEWAY_LEDGER_URL": rules_ledger[1],
        "GATEWAY_ENTERPRISE_ID": f"86.1000.1/ent.inv-{tag}",
        "GATEWAY_SITE_ID": f"86.1000.1/site.inv-{tag}",
        "GATEWAY_GATEWAY_ID": f"86.1000.1/gw.inv-{tag}",
        "GATEWAY_SUITE": "sm",
    }

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env=env)
        return result.exit_code, result.stdout, result.stderr

    return run


def test_inventory_command(cli: Cli, tmp_path: Path,
                           rules_ledger: tuple[object, str]) -> None:
    tag = tmp_path.name[-8:]
    elec, gas = f"86.1000.1/dev.inv-e-{tag}", f"86.1000.1/dev.inv-g-{tag}"
    code, _, err = cli("provision", "--meter", f"electricity={elec}", "--meter", f"gas={gas}")
    assert code == 0, err
    code, _, err = cli("simulate", "--days", "1.5", "--start", "2026-10-05")
    assert code == 0, err

    code, _, err = cli("inventory", "2026-10-05")  # nothing delivered yet
    assert code == 1 and "[inventory_not_ready]" in err and "flush" in err

    assert cli("flush")[0] == 0
    out_file = tmp_path / "inventory.json"
    code, out, err = cli("inventory", "2026-10-05", "-o", str(out_file))
    assert code == 0, err
    receipt = json.loads(out)
    signed = json.loads(out_file.read_text())
    assert receipt["total"] == signed["inventory"]["totals"]["total"]
    assert receipt["period"] == "2026-10-05" and receipt["rule_version"] == 1
    assert f"skipped {gas}" in err and "m3" in err
    (line,) = signed["inventory"]["lines"]
    assert line["readings"]["device"] == elec and line["readings"]["count"] == 96
    ledger = rules_ledger[0]
    stored = ledger.inventory(receipt["inventory_id"])  # type: ignore[attr-defined]
    assert stored.signed_inventory.model_dump(mode="json") == signed

    # Computed again: a new signed statement (new time, new signature), the same numbers;
    # the log keeps both, in order.
    code, out, err = cli("inventory", "2026-10-05")
    again = json.loads(out)
    assert code == 0 and again["inventory_id"] != receipt["inventory_id"]
    assert again["total"] == receipt["total"] and again["leaf_index"] > receipt["leaf_index"]

    code, _, err = cli("inventory", "2026-10-09")  # no readings that day
    assert code == 1 and "[inventory_refused]" in err and "at least one device" in err
    code, _, err = cli("inventory", "2026-13")
    assert code == 2 and "[invalid_inventory]" in err and "2026-13" in err
