"""The README's first command, end to end, on a short period."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from carbon_protocol import merkle
from carbon_protocol.inventory import InventoryProof
from carbon_protocol.suites import hash_fn
from carbon_protocol.verify import STEPS
from carbon_rules.reports import proof_link, report_bytes, report_hash
from ledger_service.demo import QUOTA, DemoSummary, run_demo
from ledger_service.reports import ReportProof


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


def test_demo_inventories_account_corrected_gas_and_leave_line_m3_out(
        demo: tuple[Path, DemoSummary]) -> None:
    """The mills' gas meters (volume correctors, Nm3) are scope-1 fuel combustion lines,
    one per meter: 2 + 2 + 1; the heat plant's one line meter in m3 has no line, and the
    report's boundary says that such meters are not inventoried."""
    demo_dir, summary = demo
    report = json.loads((demo_dir / "report.json").read_text())
    sources = report["emissions"]["by_source"]
    assert len(sources) == 8 + 8 + 7  # every meter a line but the heat plant's m3 one
    fuel = [s for s in sources if s["source"] == "fuel_combustion"]
    assert len(fuel) == 5 and {s["scope"] for s in fuel} == {1}
    assert all(Decimal(s["emissions"]) > 0 for s in fuel)
    scopes = report["emissions"]["by_scope"]
    assert Decimal(scopes["scope1"]) == sum(Decimal(s["emissions"]) for s in fuel) > 0
    assert Decimal(scopes["scope2"]) > 0 and scopes["total"] == summary.total_emissions
    assert any("m3 at line conditions" in e for e in report["boundary"]["exclusions"])
    # The heat plant's inventory, proven and verified in the demo: its corrected meter is
    # a combustion line in 10^4 Nm3, its line meter in m3 is in no line.
    proof = InventoryProof.model_validate_json(
        (demo_dir / "inventory-proof.json").read_bytes())
    lines = proof.signed_inventory.inventory.lines
    devices = {line.readings.device.rsplit("/", 1)[1]: line for line in lines}
    gas = devices["dev.heat-plant.gas-corrected-01"]
    assert (gas.source, gas.scope, gas.activity.unit) == ("fuel_combustion", 1, "10^4Nm3")
    assert gas.activity.metered_unit == "Nm3" and gas.readings.count == 96
    assert "dev.heat-plant.gas-01" not in devices and len(lines) == 7


def test_demo_parties_verify_grade_trade_and_prove(demo: tuple[Path, DemoSummary]) -> None:
    """Steps 6 to 9: every inventory attested, a graded and signed code, a sale delivered
    then revoked, the evidence bundle passing and a changed digit in it caught."""
    demo_dir, summary = demo
    p = summary.parties
    assert len(p.attested) == 3 and p.sampled == 3 * 25
    assert p.regulator_view is not None and "2026-01-01 attest" in p.regulator_view
    assert p.grade is not None and p.integrity is not None and p.code_verified
    assert p.code_path is not None and p.code_path.read_bytes().startswith(b"\x89PNG")
    assert p.delivered == 96 and p.after_revocation == "410 grant_inactive"
    assert p.accesses == 5  # listing, request, grant, the one read, revocation
    assert p.evidence_path is not None and p.evidence_path.exists()
    assert p.evidence_steps == 17  # with the chain step: every step passes, none unchecked
    assert p.evidence_tamper_step == "7. reading signatures"
    cli = [sys.executable, "-m", "ledger_service._cli", "verify", str(p.evidence_path)]
    checked = subprocess.run(cli, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert (demo_dir / "verifier-key.pem").stat().st_mode & 0o077 == 0


def test_demo_report_is_anchored_and_proven(demo: tuple[Path, DemoSummary]) -> None:
    """The report's bytes are a log leaf under an anchored root, and its QR link is the
    proof route; a day is not a calendar month, so there is no reconciliation."""
    demo_dir, summary = demo
    assert summary.quota is not None and summary.quota.startswith(QUOTA)
    assert summary.report_id is not None and summary.report_hash is not None
    assert summary.report_proven and summary.report_leaf is not None
    proof = ReportProof.model_validate_json((demo_dir / "report-proof.json").read_bytes())
    assert proof.report_id == summary.report_id and proof.leaf_index == summary.report_leaf
    assert report_bytes(proof.report) == (demo_dir / "report.json").read_bytes()
    sm3 = hash_fn("sm")
    assert report_hash(proof.report, "sm").hex() == summary.report_hash
    merkle.verify_inclusion(sm3, proof.leaf_index, proof.anchor.tree_size,
                            merkle.leaf_hash(sm3, report_bytes(proof.report)),
                            [bytes.fromhex(x) for x in proof.inclusion_proof],
                            bytes.fromhex(proof.signed_tree_head.tree_head.root_hash))
    assert proof.signed_tree_head.tree_head.root_hash == proof.anchor.root_hash
    assert summary.total_emissions == proof.report.emissions.by_scope.total
    assert proof.report.quota is None and summary.reconciliation is None
    assert summary.report_pdf is not None
    assert summary.report_pdf.read_bytes().startswith(b"%PDF")
    assert proof_link(proof.report, "sm").endswith(f"/v1/reports/{summary.report_id}/proof")


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
