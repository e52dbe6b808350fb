"""``carbon-ledger report|quota|offsets`` from the shell: files in, typed errors out, and
the quota commands against a real JSON-RPC node (anvil)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carbon_protocol.inventory import Inventory
from carbon_protocol.models import Domain, Reading
from carbon_rules.factors import default_factors
from carbon_rules.inventory import LoggedReading, compute_inventory, period_from_label
from carbon_rules.models import Methodology, MethodologyVersion, VersionDraft
from carbon_rules.reports import (
    Boundary,
    EnterpriseInfo,
    InventoryReport,
    LoggedInventory,
    ReportInput,
    SiteInfo,
    build_report,
    report_hash,
    report_id,
)
from ledger_service._cli import app
from ledger_service.devchain import DEV_KEYS, DevNode, start_node

runner = CliRunner()
MID = "cn.enterprise-ghg"
DEV = "86.1000.1/dev.a.elec-01"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_quota_reconcile_from_a_file(tmp_path: Path) -> None:
    request = tmp_path / "rec.json"
    request.write_text(json.dumps({"enterprise": "86.1000.1/ent.acme", "year": 2026,
                                   "internal": "10000",
                                   "emissions": {str(m): "900" for m in range(1, 10)}}))
    code, out, err = run("quota", "reconcile", str(request))
    assert code == 0, err
    body = json.loads(out)
    assert (body["forecast"], body["position"], body["balance"]) == ("10800", "deficit", "800")
    assert "deficit 800 t" in err
    request.write_text(json.dumps({"enterprise": "e", "year": 2026, "emissions": {"1": "1"}}))
    code, _, err = run("quota", "reconcile", str(request))
    assert code == 1 and "[quota_not_issued]" in err
    request.write_text(json.dumps({"enterprise": "e", "year": 2026, "emissions": {"1": "-1"}}))
    code, _, err = run("quota", "reconcile", str(request))
    assert code == 1 and "[invalid_input]" in err


def test_offsets_claim_twice_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "offsets.sqlite"
    request = tmp_path / "claim.json"
    body = {"consumption_key": "86.1000.1/ent.acme/2026-10",
            "gross": {"scope1": "0", "scope2": "570.3", "total": "570.3",
                      "electricity_mwh": "1000", "electricity_emissions": "570.3"},
            "claims": [{"kind": "gec", "serials": ["GEC-1", "GEC-2"]}]}
    request.write_text(json.dumps(body))
    code, out, err = run("offsets", "claim", str(request), "--db", str(db))
    assert code == 0, err
    assert json.loads(out)["green_reduction"] == "1.1406"  # 2 MWh x 0.5703
    body["consumption_key"] = "86.1000.1/ent.acme/2026-11"
    request.write_text(json.dumps(body))
    code, _, err = run("offsets", "claim", str(request), "--db", str(db))
    assert code == 1 and "[offset_double_claim]" in err and "GEC-1" in err


def _inventory() -> Inventory:
    draft = VersionDraft("IPCC-AR5-GWP100", "doc v1", tuple(default_factors()))
    rules = Methodology(MID, (MethodologyVersion(
        MID, 1, 1_672_531_200, 1_672_531_200, "0x" + "11" * 20, draft.parameters_hash,
        draft.gwp_set, draft.document, draft.factors),))
    domain = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id="86.1000.1/log.main")
    logged = [LoggedReading(n, Reading(
        suite="intl", key_id="00" * 16, device=DEV, seq=n + 1,
        measured_at=f"2026-10-05T00:{15 * (n + 1):02d}:00Z", quantity="active_energy",
        unit="kWh", value="500000", quality="measured", salt="00" * 16, domain=domain))
        for n in range(2)]
    return compute_inventory(rules, period_from_label("2026-10"), {DEV: logged}, chain_id=1337,
                             registry="0x" + "cd" * 20, gateway="86.1000.1/gw.a", domain=domain,
                             suite="intl", key_id="00" * 16,
                             computed_at=datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture
def report_file(tmp_path: Path) -> tuple[Path, InventoryReport]:
    inventory = _inventory()
    report = build_report(ReportInput(
        enterprise=EnterpriseInfo(id="86.1000.1/ent.acme", name="Acme"),
        boundary=Boundary(sites=[SiteInfo(id="86.1000.1/site.a", name="A")]),
        period=inventory.period, inventories=[LoggedInventory(
            id="86.1000.1/inv.one", leaf_index=3, inventory=inventory)],
        prepared_by="tester", proof_base="https://ledger.example/v1/reports"))
    path = tmp_path / "built.json"
    path.write_text(json.dumps({"report_id": report_id(report),
                                "report": report.model_dump(mode="json")}))
    return path, report


def test_report_hash_and_pdf_from_a_file(tmp_path: Path,
                                         report_file: tuple[Path, InventoryReport]) -> None:
    path, report = report_file
    assert report.emissions.by_scope.total == "570.3"  # 1,000 MWh x 0.5703
    code, out, err = run("report", "hash", str(path))
    assert code == 0, err
    assert out.split() == [report_id(report), report_hash(report).hex()]
    code, out, _ = run("report", "hash", str(path), "--suite", "intl")
    assert out.split()[1] == report_hash(report, "intl").hex()
    pdf = tmp_path / "r.pdf"
    code, _, err = run("report", "pdf", str(path), "-o", str(pdf))
    assert code == 0, err
    assert pdf.read_bytes().startswith(b"%PDF-")
    path.write_text('{"report": {"format": "other"}}')
    code, _, err = run("report", "pdf", str(path), "-o", str(pdf))
    assert code == 1 and "[invalid_input]" in err
    code, _, err = run("report", "hash", str(tmp_path / "missing.json"))
    assert code == 2 and "[unreadable]" in err


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    with start_node("anvil", tmp_path_factory.mktemp("anvil")) as node:
        yield node


@pytest.mark.chain
def test_quota_commands_on_a_real_node(anvil: DevNode, tmp_path: Path) -> None:
    regulator = tmp_path / "regulator.key"
    regulator.write_text(DEV_KEYS[0])
    outsider = tmp_path / "outsider.key"
    outsider.write_text(DEV_KEYS[1])
    code, out, err = run("quota", "deploy", "--rpc", anvil.url, "--key-file", str(regulator))
    assert code == 0, err
    registry = out.strip()
    common = ["--rpc", anvil.url, "--registry", registry]
    code, _, err = run("quota", "issue", "86.1000.1/ent.acme", "2026", "10000", *common,
                       "--document", "notice 2026-1", "--key-file", str(regulator))
    assert code == 0, err
    code, _, err = run("quota", "issue", "86.1000.1/ent.other", "2026", "1", *common,
                       "--document", "forged", "--key-file", str(outsider))
    assert code == 1 and "[quota_unauthorized]" in err
    code, _, err = run("quota", "adjust", "86.1000.1/ent.acme", "2026", "9500", *common,
                       "--document", "notice 2026-7", "--key-file", str(regulator))
    assert code == 0 and "revision 2" in err
    code, out, err = run("quota", "show", "86.1000.1/ent.acme", "2026", *common)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["revision"], r["allocation"], r["document"]) for r in rows] == [
        (1, "10000", "notice 2026-1"), (2, "9500", "notice 2026-7")]
    request = tmp_path / "rec.json"
    request.write_text(json.dumps({"enterprise": "86.1000.1/ent.acme", "year": 2026,
                                   "internal": "12000",
                                   "emissions": {str(m): "900" for m in range(1, 10)}}))
    code, out, err = run("quota", "reconcile", str(request), *common)
    assert code == 0, err
    body = json.loads(out)
    assert (body["quota"]["origin"], body["position"], body["balance"]) == (
        "chain", "deficit", "1300")
    assert body["quota"]["overridden_internal"]["allocation"] == "12000"
    code, _, err = run("quota", "show", "86.1000.1/ent.acme", "2026", "--rpc", anvil.url,
                       "--registry", "0x" + "12" * 20)
    assert code == 1 and "is not QuotaRegistry" in err
