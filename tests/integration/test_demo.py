"""The README's first command, end to end, on a short period."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from carbon_protocol.verify import STEPS
from ledger_service.demo import DemoSummary, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    path = tmp_path_factory.mktemp("demo") / "demo"
    return path, run_demo(path, days=1, console=Console(quiet=True))


def test_demo_runs_the_whole_trust_chain(demo: tuple[Path, DemoSummary]) -> None:
    _, summary = demo
    assert summary.meters == 24 and summary.sites == 3
    assert summary.recorded == 24 * 96
    assert summary.accepted == summary.recorded == summary.tree_size
    assert summary.duplicates == 0 and summary.rejected == 0
    assert summary.final_anchors >= 1 and summary.anchor_gas > 0
    assert summary.verified_steps == list(STEPS)
    assert summary.tamper_step == "2. reading signature"
    assert summary.bundle_path is not None and summary.bundle_path.exists()


def test_cli_verify_exit_codes(demo: tuple[Path, DemoSummary], tmp_path: Path) -> None:
    """``carbon-ledger verify`` passes the good bundle offline and names the failed step,
    with expected and found values, for the tampered one."""
    demo_dir, _ = demo
    cli = [sys.executable, "-m", "ledger_service._cli", "verify"]
    good = subprocess.run([*cli, str(demo_dir / "proof-bundle.json")],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "9. key validity" in good.stderr and "chain (skipped" in good.stderr
    bad = subprocess.run([*cli, str(demo_dir / "proof-bundle-tampered.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "step 2 (reading signature) failed" in bad.stderr
    doc = json.loads((demo_dir / "proof-bundle.json").read_text())
    doc["anchor"]["root_hash"] = "00" * 32
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    out = subprocess.run([*cli, str(forged)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "step 8 (anchor) failed" in out.stderr and "found 0000" in out.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"format": 1}')
    out = subprocess.run([*cli, str(garbage)], capture_output=True, text=True)
    assert out.returncode == 1 and "malformed_bundle" in out.stderr
