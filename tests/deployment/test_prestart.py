"""deploy/prestart.py, the compose start-up steps, run as the containers run them: deploy the
contract once (a deployment file, LEDGER_DEPLOYMENT_FILE), then start a command only after
the database and the chain check out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_service.devchain import CHAIN_IDS, DEV_KEYS, free_port, start_node

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "prestart.py"
KEY = DEV_KEYS[1]


def prestart(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "CARBON_"))}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT,
                          env=base | {"LEDGER_LOG_FORMAT": "json"} | env,
                          capture_output=True, text=True, timeout=120)
    assert KEY not in done.stdout + done.stderr and KEY[2:] not in done.stdout + done.stderr
    return done


def logs(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[dict[str, str]]:
    with start_node("anvil", tmp_path / "anvil") as node:
        yield {"LEDGER_RPC_URL": node.url, "LEDGER_CHAIN_ID": str(CHAIN_IDS["anvil"]),
               "LEDGER_ANCHOR_PRIVATE_KEY": KEY}


@pytest.mark.chain
def test_deploys_once_then_execs_with_the_address(anvil: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "deployment" / "deployment.json"
    env = anvil | {"LEDGER_DEPLOYMENT_FILE": str(file)}
    first = prestart("deploy-contract", **env)
    assert first.returncode == 0, first.stderr
    doc = json.loads(file.read_text())
    assert doc["chain_id"] == 31337 and doc["rpc_url"] == anvil["LEDGER_RPC_URL"]
    assert doc["contract_name"] == "CarbonAnchor" and doc["deployed_at_block"] >= 1
    assert any(r["msg"] == "contract deployed" and r["contract_address"] ==
               doc["contract_address"] for r in logs(first))

    again = prestart("deploy-contract", **env)
    assert again.returncode == 0, again.stderr
    assert json.loads(file.read_text()) == doc
    assert any(r["msg"] == "contract already deployed" for r in logs(again))

    # The command started reads the same file through the service settings.
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    run = prestart("exec", "--timeout", "10", "--", sys.executable, "-c",
                   "from ledger_service.settings import Settings; s = Settings(); "
                   "print(s.chain, s.contract_address)",
                   LEDGER_DATABASE_URL=db, LEDGER_CHAIN="rpc", **env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["rpc", doc["contract_address"]]
    messages = [r["msg"] for r in logs(run)]
    assert any(m.startswith("the database sqlite:///") and m.endswith("is ready")
               for m in messages)
    assert f"CarbonAnchor at {doc['contract_address']} is ready" in messages


@pytest.mark.chain
def test_refuses_another_chain_or_another_build(anvil: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "deployment.json"
    env = anvil | {"LEDGER_DEPLOYMENT_FILE": str(file)}
    wrong_chain = prestart("deploy-contract", **(env | {"LEDGER_CHAIN_ID": "1"}))
    assert wrong_chain.returncode == 1
    assert "chain id mismatch: LEDGER_CHAIN_ID is 1, the node at LEDGER_RPC_URL answers " \
           "31337" in wrong_chain.stderr
    assert not file.exists()

    assert prestart("deploy-contract", **env).returncode == 0
    doc = json.loads(file.read_text())
    file.write_text(json.dumps(doc | {"contract_code_keccak": "0x" + "00" * 32}))
    other_build = prestart("deploy-contract", **env)
    assert other_build.returncode == 1  # never silently replaced by a new contract
    assert "remove the file to deploy anew" in other_build.stderr
    assert json.loads(file.read_text())["contract_code_keccak"] == "0x" + "00" * 32


@pytest.mark.chain
def test_redeploys_when_the_chain_forgot_the_contract(tmp_path: Path) -> None:
    file = tmp_path / "deployment.json"
    with start_node("anvil", tmp_path / "a1") as node:
        env = {"LEDGER_RPC_URL": node.url, "LEDGER_CHAIN_ID": "31337",
               "LEDGER_ANCHOR_PRIVATE_KEY": KEY, "LEDGER_DEPLOYMENT_FILE": str(file)}
        assert prestart("deploy-contract", **env).returncode == 0
    old = json.loads(file.read_text())["contract_address"]
    with start_node("anvil", tmp_path / "a2") as node:  # a fresh chain, same key
        env["LEDGER_RPC_URL"] = node.url
        again = prestart("deploy-contract", **env)
        assert again.returncode == 0, again.stderr
        assert any(r["msg"] == "deployed contract is gone, deploying again"
                   for r in logs(again))
        # Nonce 0 of the same key on a fresh chain: the same address, now holding code.
        assert json.loads(file.read_text())["contract_address"] == old


def test_gives_up_waiting_for_a_missing_chain(tmp_path: Path) -> None:
    done = prestart("deploy-contract", "--timeout", "1",
                    LEDGER_RPC_URL=f"http://127.0.0.1:{free_port()}/v3/api-key-in-path",
                    LEDGER_CHAIN_ID="31337", LEDGER_ANCHOR_PRIVATE_KEY=KEY,
                    LEDGER_DEPLOYMENT_FILE=str(tmp_path / "d.json"))
    assert done.returncode == 1
    assert "api-key-in-path" not in done.stderr
    records = logs(done)
    assert any(r["msg"] == "waiting for the chain node" and r["attempt"] == 1 for r in records)
    assert "gave up waiting for the chain node after 1 s" in records[-1]["msg"]


def test_gives_up_waiting_for_a_missing_database(tmp_path: Path) -> None:
    done = prestart("exec", "--timeout", "1", "--", "true",
                    LEDGER_RPC_URL="http://127.0.0.1:1", LEDGER_CHAIN_ID="31337",
                    LEDGER_ANCHOR_PRIVATE_KEY=KEY, LEDGER_DEPLOYMENT_FILE=str(tmp_path / "d.json"),
                    LEDGER_DATABASE_URL=f"postgresql+psycopg://u:hunter2@127.0.0.1:{free_port()}/x")
    assert done.returncode == 1
    assert "gave up waiting for the database postgresql+psycopg://u:***@127.0.0.1" in done.stderr
    assert "hunter2" not in done.stderr


def test_exec_needs_a_deployment_and_settings(tmp_path: Path) -> None:
    missing = prestart("exec", "--", "true",
                       LEDGER_RPC_URL="http://127.0.0.1:1", LEDGER_CHAIN_ID="31337",
                       LEDGER_ANCHOR_PRIVATE_KEY=KEY,
                       LEDGER_DEPLOYMENT_FILE=str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "no deployment file" in missing.stderr

    unset = prestart("deploy-contract")
    assert unset.returncode == 2
    assert all(name in unset.stderr for name in (
        "LEDGER_RPC_URL", "LEDGER_ANCHOR_PRIVATE_KEY", "LEDGER_DEPLOYMENT_FILE"))


@pytest.mark.chain
def test_exec_reports_a_command_that_cannot_start(anvil: dict[str, str], tmp_path: Path) -> None:
    env = anvil | {"LEDGER_DEPLOYMENT_FILE": str(tmp_path / "deployment.json")}
    assert prestart("deploy-contract", **env).returncode == 0
    done = prestart("exec", "--", "no-such-command-here", **env)
    assert done.returncode == 127
    assert logs(done)[-1]["msg"].startswith("cannot start no-such-command-here:")
