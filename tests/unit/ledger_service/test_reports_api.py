"""Reports, quotas and offsets through the ledger's HTTP API, on real parts: SQLite, the
in-process EVM with ``CarbonAnchor``, a ``RuleRegistry`` and a ``QuotaRegistry``
deployed beside them, a gateway with real keys computing and signing an inventory."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from carbon_protocol import merkle
from carbon_protocol.errors import ProofError
from carbon_protocol.suites import hash_fn
from carbon_rules.fixed_point import parse
from carbon_rules.inventory import period_from_label
from carbon_rules.quotas_client import QuotaRegistryClient
from carbon_rules.reports import InventoryReport, proof_link, report_bytes, report_hash
from ledger_service._cli import app as cli
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.reports import ReportProof
from node_gateway.gateway import Gateway, Organisation
from tests.worlds import DAY, PREFIX, START, api_key, inventory_gateway, rules_app, submit_inventory

ENTERPRISE = f"{PREFIX}/ent.report-test"
SITE = f"{PREFIX}/site.mill"


@dataclass
class World:
    ledger: Ledger
    gateway: Gateway
    inventory_id: str
    total: str
    registry: QuotaRegistryClient
    app: Any
    api_key: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("reports")
    ledger, app = rules_app(tmp)
    key = api_key(ledger, Role.ADMIN)  # an admin's key: the tests call every route
    gw = inventory_gateway(
        tmp / "gw", app, key,
        Organisation(ENTERPRISE, "Report Test Co.", SITE, "mill", "Liaoning",
                     f"{PREFIX}/gw.mill", "mill"),
        [(f"{PREFIX}/dev.mill.elec-01", "electricity")],
        suite="intl", start=START, days=1.25, seed=7)
    run, receipt = submit_inventory(gw, DAY)
    ledger.anchor_tick(force=True)
    regulator = (Path(tmp / "ledger") / "embedded_association_key.hex").read_text().strip()
    w3 = ledger.rules().w3
    registry = QuotaRegistryClient(w3, QuotaRegistryClient.deploy(w3, regulator), regulator)
    yield World(ledger, gw, receipt["inventory_id"], run.signed.inventory.totals.total,
                registry, app, key)
    gw.close()
    ledger.engine.dispose()


def call(world: World, method: str, path: str, body: Any = None) -> Any:
    return world.gateway.client.call(method, path, body)


def test_quota_on_chain_overrides_internal_through_the_api(world: World) -> None:
    ent = ENTERPRISE + ".q"
    world.registry.issue(ent, 2026, parse("10000"), "allocation notice 2026-001")
    registry = world.registry.address.lower()
    got = call(world, "GET", f"/v1/quotas?registry={registry}&enterprise={ent}&year=2026")
    assert got.status == 200 and got.body["allocation"] == "10000"
    assert got.body["revisions"][0]["document"] == "allocation notice 2026-001"
    body = {"enterprise": ent, "year": 2026, "registry": world.registry.address.lower(),
            "internal": "12000", "emissions": {str(m): "900" for m in range(1, 10)}}
    rec = call(world, "POST", "/v1/quotas/reconcile", body)
    assert rec.status == 200, rec.body
    assert (rec.body["forecast"], rec.body["position"], rec.body["balance"]) == (
        "10800", "deficit", "800")
    assert rec.body["quota"]["origin"] == "chain"
    assert rec.body["quota"]["overridden_internal"]["allocation"] == "12000"
    missing = call(world, "GET",
                   f"/v1/quotas?registry={registry}&enterprise={ent}.none&year=2026")
    assert (missing.status, missing.body["code"]) == (404, "quota_not_issued")
    hole = call(world, "POST", "/v1/quotas/reconcile", {**body, "emissions": {"2": "1"}})
    assert (hole.status, hole.body["code"]) == (422, "invalid_quota_input")
    bad = call(world, "POST", "/v1/quotas/reconcile", {**body, "emissions": {"1": "-5"}})
    assert (bad.status, bad.body["code"]) == (422, "invalid_input")


def test_offsets_report_json_and_pdf(world: World) -> None:
    claim = {"consumption_key": f"{ENTERPRISE}/2026-10-05", "inventory_ids": [world.inventory_id],
             "claims": [{"kind": "gec", "serials": ["GEC-A-1"]}]}
    first = call(world, "POST", "/v1/offsets/claims", claim)
    assert first.status == 200, first.body
    assert first.body["green_mwh"] == "1" and first.body["gross"]["total"] == world.total
    again = call(world, "POST", "/v1/offsets/claims",
                 {**claim, "consumption_key": f"{ENTERPRISE}/2026-10-06"})
    assert (again.status, again.body["code"]) == (409, "offset_double_claim")

    request = {
        "enterprise": {"id": ENTERPRISE, "name": "Report Test Co."},
        "boundary": {"sites": [{"id": SITE, "name": "mill"}]},
        "period": DAY.model_dump(), "inventory_ids": [world.inventory_id],
        "offsets_key": f"{ENTERPRISE}/2026-10-05", "prepared_by": "energy office"}
    built = call(world, "POST", "/v1/reports", request)
    assert built.status == 201, built.body
    rid, digest = built.body["report_id"], built.body["hash"]
    assert rid == f"{PREFIX}/rpt.{digest[:32]}"
    report = built.body["report"]
    assert report["emissions"]["by_scope"]["total"] == world.total
    assert report["anchors"][0]["anchor"]["tx_hash"].startswith("0x")
    assert report["offsets"]["green_mwh"] == "1"
    assert call(world, "GET", f"/v1/reports/{rid}").body["hash"] == digest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2 (as in uploader)
        from fastapi.testclient import TestClient
    with TestClient(world.app, headers={"Authorization": f"Bearer {world.api_key}"}) as http:
        pdf = http.get(f"/v1/reports/{rid}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert f"sm3:{digest}" in text.replace("\n", "")
    unknown = call(world, "GET", f"/v1/reports/{PREFIX}/rpt.{'0' * 32}")
    assert unknown.status == 404
    outside = call(world, "POST", "/v1/reports", {
        **request, "period": period_from_label("2026-10-06").model_dump()})
    assert (outside.status, outside.body.get("code")) == (422, "report_error"), outside
    daily = call(world, "POST", "/v1/reports", {**request, "quota": {"year": 2026,
                                                                       "internal": "100"}})
    assert (daily.status, daily.body["code"]) == (422, "invalid_quota_input")  # not monthly


def test_cli_verifies_a_built_report_against_its_inventory_proofs(world: World,
                                                                  tmp_path: Path) -> None:
    request = {
        "enterprise": {"id": ENTERPRISE, "name": "Report Test Co."},
        "boundary": {"sites": [{"id": SITE, "name": "mill"}]},
        "period": DAY.model_dump(), "inventory_ids": [world.inventory_id],
        "prepared_by": "energy office", "proof_base": "https://ledger.example/v1/reports"}
    built = call(world, "POST", "/v1/reports", request)
    assert built.status == 201, built.body
    report_file = tmp_path / "report.json"
    report_file.write_text(json.dumps(built.body))
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(world.ledger.inventory_proof(world.inventory_id).model_dump_json())
    result = CliRunner().invoke(cli, ["report", "verify", str(report_file), str(proof_file)])
    assert result.exit_code == 0, result.stderr
    assert built.body["hash"] in result.stderr
    built.body["report"]["emissions"]["by_source"][0]["emissions"] = "0.001"
    report_file.write_text(json.dumps(built.body))
    result = CliRunner().invoke(cli, ["report", "verify", str(report_file), str(proof_file)])
    assert result.exit_code == 1 and "[report_mismatch]" in result.stderr
    assert "'emissions'" in result.stderr


def test_a_report_is_a_log_leaf_once_and_its_qr_link_proves_it(world: World) -> None:
    request = {
        "enterprise": {"id": ENTERPRISE, "name": "Report Test Co."},
        "boundary": {"sites": [{"id": SITE, "name": "mill"}]},
        "period": DAY.model_dump(), "inventory_ids": [world.inventory_id],
        "prepared_by": "anchoring test", "proof_base": "/v1/reports"}
    size_before = world.ledger.tree_size()
    first = call(world, "POST", "/v1/reports", request)
    assert first.status == 201, first.body
    rid, index = first.body["report_id"], first.body["leaf_index"]
    assert world.ledger.tree_size() == size_before + 1 and index == size_before
    again = call(world, "POST", "/v1/reports", request)  # submitted twice: same leaf
    assert again.status == 200 and again.body["leaf_index"] == index
    assert again.body["hash"] == first.body["hash"]
    assert world.ledger.tree_size() == size_before + 1

    report = InventoryReport.model_validate(first.body["report"])
    sm3 = hash_fn("sm")
    leaf = merkle.leaf_hash(sm3, report_bytes(report))
    assert first.body["leaf_hash"] == leaf.hex() == world.ledger.leaf_hash(index).hex()
    assert report_hash(report, "sm").hex() == first.body["hash"]

    link = proof_link(report, "sm")
    assert link == f"/v1/reports/{rid}/proof"
    pending = call(world, "GET", link)
    assert (pending.status, pending.body["code"]) == (404, "not_found")  # no anchor yet
    world.ledger.anchor_tick(force=True)
    got = call(world, "GET", link)
    assert got.status == 200, got.body
    proof = ReportProof.model_validate(got.body)
    assert proof.report == report and proof.leaf_index == index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(world.app) as scanner:  # a phone scanning the QR code has no API key
        assert scanner.get(link).json() == got.body
        assert scanner.get(f"/v1/reports/{rid}").status_code == 401  # the report itself: a key
    head = proof.signed_tree_head.tree_head
    assert head.tree_size == proof.anchor.tree_size > index
    assert head.root_hash == proof.anchor.root_hash
    merkle.verify_inclusion(sm3, index, head.tree_size, leaf,
                            [bytes.fromhex(p) for p in proof.inclusion_proof],
                            bytes.fromhex(proof.anchor.root_hash))
    forged = report.model_copy(update={"prepared_by": "someone else"})
    with pytest.raises(ProofError):
        merkle.verify_inclusion(sm3, index, head.tree_size,
                                merkle.leaf_hash(sm3, report_bytes(forged)),
                                [bytes.fromhex(p) for p in proof.inclusion_proof],
                                bytes.fromhex(proof.anchor.root_hash))
