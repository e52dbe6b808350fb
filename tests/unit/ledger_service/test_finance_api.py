"""The finance routes on real parts: SQLite, the in-process EVM with the rule registry,
gateways with real keys computing and signing inventories, the ledger's SM2 log key
signing codes, a real QR decoder (zxing-cpp) reading them back.

Four enterprises share one ledger: ``steel`` (a clean January), ``cement`` (a January
with a meter that skips sequence numbers and a bill that disagrees), ``loan`` (two
quarterly inventories) and ``nobench`` (no industry configured)."""

from __future__ import annotations

import base64
import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zxingcpp  # type: ignore[import-not-found,unused-ignore]
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from carbon_protocol import merkle
from carbon_protocol.errors import (
    ExpiredFinancingCodeError,
    FinancingCodeError,
    SignatureError,
)
from carbon_protocol.financing_code import (
    decode_qr_payload,
    encode_qr_payload,
    sign_financing_code,
    verify_financing_code,
)
from carbon_protocol.models import Reading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey, hash_fn
from carbon_rules.inventory import period_from_label
from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
from ledger_service import registry
from ledger_service._cli import app as cli
from ledger_service.auth import Role
from ledger_service.finance.config import load_finance_config
from ledger_service.finance.eligibility import enterprise_inventories
from ledger_service.finance.issuing import rule_config_hash
from ledger_service.ledger import Ledger
from ledger_service.log_records import append_record, get_record, record_proof
from ledger_service.models import DeviceCreate, DeviceKeyCreate, EnterpriseCreate
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import Gateway, Organisation
from tests.worlds import api_key, client, inventory_gateway, rules_app, submit_inventory

P = "86.1000.1"
STEEL, CEMENT, LOAN, NOBENCH = (f"{P}/ent.{n}" for n in ("steel", "cement", "loan", "nobench"))
BANK = f"{P}/bank.icbc-ln"
CONFIG = {
    "timezone": "UTC",
    "finance": {"valid_days": 30},
    "benchmarks": [
        {"industry": "crude steel", "value": "0.5", "unit": "tCO2e/t", "source": "test"},
        {"industry": "cement clinker", "value": "0.8", "unit": "tCO2e/t", "source": "test"}],
    "industries": {STEEL: "crude steel", CEMENT: "cement clinker", LOAN: "crude steel"},
}


@dataclass
class World:
    ledger: Ledger
    app: Any
    admin: str
    gateways: dict[str, Gateway]
    totals: dict[str, list[str]]
    tmp: Path

    def client(self, role: str | None, *enterprises: str, party: str | None = None
               ) -> TestClient:
        """A client with a new key of ``role`` (a bank's: of ``party``, default BANK)."""
        if role is None:
            return TestClient(self.app)
        party = party or (BANK if role == "bank" else None)
        return client(self.app, api_key(self.ledger, role, enterprises, party))


def _gateway(tmp: Path, app: Any, key: str, name: str, days: list[datetime],
             labels: list[str]) -> tuple[Gateway, list[str]]:
    gw = inventory_gateway(
        tmp / f"gw-{name}", app, key,
        Organisation(f"{P}/ent.{name}", name, f"{P}/site.{name}", name, "Liaoning",
                     f"{P}/gw.{name}", name),
        [(f"{P}/dev.{name}.elec-01", "electricity")],
        suite="intl", start=days, days=1, seed=7)
    rules = gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY)
    totals = []
    for label in labels:
        run, _ = submit_inventory(gw, period_from_label(label), rules)
        totals.append(run.signed.inventory.totals.total)
    return gw, totals


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("finance")
    ledger, app = rules_app(tmp, prefix=P, finance=CONFIG)
    admin = api_key(ledger, Role.ADMIN)
    jan5 = datetime(2026, 1, 5, tzinfo=UTC)
    gateways, totals = {}, {}
    for name, days, labels in (
            ("steel", [jan5], ["2026-01"]), ("cement", [jan5], ["2026-01"]),
            ("loan", [datetime(2026, 2, 5, tzinfo=UTC), datetime(2026, 5, 5, tzinfo=UTC)],
             ["2026-Q1", "2026-Q2"])):
        gateways[name], totals[name] = _gateway(tmp, app, admin, name, days, labels)
    ledger.call(registry.create_enterprise, EnterpriseCreate(id=NOBENCH, name="No benchmark"))
    yield World(ledger, app, admin, gateways, totals, tmp)
    for gw in gateways.values():
        gw.close()
    ledger.engine.dispose()


def _scan(png: bytes) -> str:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (barcode,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(barcode.text)


def _attest(world: World, enterprise: str, label: str) -> None:
    """An ``attest`` verdict on each of the period's inventories, as the verification
    workflow records it (the fields finance reads)."""
    period = period_from_label(label)
    for used in enterprise_inventories(world.ledger, enterprise, period):
        append_record(world.ledger, kind="attestation",
                      record_id=f"{P}/att.{secrets.token_hex(8)}", enterprise_id=enterprise,
                      document={"attestation": {"inventory_id": used.id, "verdict": "attest",
                                                "period": used.period.model_dump()}})


def test_eligibility_grades_signs_logs_and_its_qr_verifies_offline(world: World) -> None:
    own = world.client("enterprise", STEEL)
    put = own.put(f"/v1/finance/output/{STEEL}/2026-01", json={"value": "10", "unit": "t",
                                                               "note": "production ledger"})
    assert put.status_code == 201, put.json()
    assert put.json()["record"]["kind"] == "production_output"
    again = own.put(f"/v1/finance/output/{STEEL}/2026-01",
                    json={"value": "10", "unit": "t", "note": "production ledger"})
    assert again.status_code == 200 and again.json() == {**put.json(), "created": False}

    bank = world.client("bank")
    size = world.ledger.tree_size()
    got = bank.get(f"/v1/finance/eligibility/{STEEL}", params={"period": "2026-01"})
    assert got.status_code == 200, got.json()
    body = got.json()
    emissions = Decimal(world.totals["steel"][0])
    assert Decimal(body["emissions"]) == emissions
    assert Decimal(body["grade"]["intensity"]) == emissions / 10
    assert body["grade"]["grade"] == "dark_green" and body["grade"]["label"] == "深绿"
    assert body["output"]["record_id"] == put.json()["record"]["record_id"]
    # No verifier attested January: the one rule that fires, and it says so.
    assert body["integrity"]["code"] == "yellow"
    assert body["integrity"]["fired"] == [{"rule": "unverified_periods", "level": "yellow",
                                           "measured": "1", "threshold": "0"}]
    assert body["facts"]["readings"] == 96 and body["facts"]["missing_sequence_numbers"] == 0
    code = body["financing_code"]["financing_code"]
    assert (code["enterprise"], code["grade"], code["code"]) == (STEEL, "dark_green", "yellow")
    assert code["issuer"] == f"{P}/log.main"

    # Logged once, as the signed code; asking again gives the same code, no new leaf.
    record = body["code_record"]
    assert record["record_id"].startswith(f"{P}/fc.") and body["code_created"] is True
    assert world.ledger.tree_size() == size + 1
    assert get_record(world.ledger, record["record_id"]).document == body["financing_code"]
    second = bank.get(f"/v1/finance/eligibility/{STEEL}", params={"period": "2026-01"}).json()
    assert second["code_record"]["record_id"] == record["record_id"]
    assert second["code_created"] is False and second["qr_payload"] == body["qr_payload"]
    assert world.ledger.tree_size() == size + 1

    # The QR image, read by a real decoder, verifies offline with the log key alone.
    png = own.get(f"/v1/finance/eligibility/{STEEL}/qr.png", params={"period": "2026-01"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    payload = _scan(png.content)
    assert payload == body["qr_payload"]
    checked = verify_financing_code(payload, world.ledger.log_key.public_key())
    assert checked.model_dump(mode="json") == code

    # The code's record is provable against an anchor.
    world.ledger.anchor_tick(force=True)
    proof = record_proof(world.ledger, record["record_id"])
    head = proof.signed_tree_head.tree_head
    merkle.verify_inclusion(hash_fn("sm"), proof.record.leaf_index, head.tree_size,
                            bytes.fromhex(proof.record.leaf_hash),
                            [bytes.fromhex(p) for p in proof.inclusion_proof],
                            bytes.fromhex(head.root_hash))

    # A verifier attests January: the code turns green, and a new code is issued.
    _attest(world, STEEL, "2026-01")
    green = bank.get(f"/v1/finance/eligibility/{STEEL}", params={"period": "2026-01"}).json()
    assert green["integrity"]["code"] == "green" and green["integrity"]["fired"] == []
    assert green["facts"]["unverified_months"] == [] and len(green["attested"]) == 1
    assert green["code_created"] is True
    assert green["code_record"]["record_id"] != record["record_id"]


def _steel_code(world: World) -> tuple[str, dict[str, Any]]:
    body = world.client("admin").get(f"/v1/finance/eligibility/{STEEL}",
                                     params={"period": "2026-01"}).json()
    return body["qr_payload"], body["financing_code"]["financing_code"]


def _forge(payload: str, **changes: Any) -> str:
    _, code, _ = payload.split(".")
    doc = json.loads(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    doc.update(changes)
    signed = decode_qr_payload(payload).model_copy(
        update={"financing_code": decode_qr_payload(payload).financing_code.model_validate(doc)})
    return encode_qr_payload(signed)


def test_forged_expired_and_foreign_codes_are_refused_offline(world: World) -> None:
    _output(world, STEEL, "2026-01", "10")
    payload, code = _steel_code(world)
    key = world.ledger.log_key.public_key()
    with pytest.raises(SignatureError):  # a better grade, the issuer's signature kept
        verify_financing_code(_forge(payload, grade="dark_green", intensity="0.01"), key)
    with pytest.raises(SignatureError):  # a longer validity
        verify_financing_code(_forge(payload, expires_at="2099-01-01T00:00:00Z"), key)
    expires = datetime.fromisoformat(code["expires_at"].replace("Z", "+00:00"))
    with pytest.raises(ExpiredFinancingCodeError):
        verify_financing_code(payload, key, now=expires)
    verify_financing_code(payload, key, now=expires - timedelta(seconds=1))
    with pytest.raises(FinancingCodeError, match="signed by sm key"):
        verify_financing_code(payload, PrivateKey.generate("sm").public_key())
    other = PrivateKey.generate("sm")  # a code another key signed, naming that key
    foreign = decode_qr_payload(payload).financing_code.model_copy(
        update={"key_id": other.public_key().key_id})
    with pytest.raises(FinancingCodeError):
        verify_financing_code(encode_qr_payload(sign_financing_code(foreign, other)), key)


def _output(world: World, enterprise: str, label: str, value: str, unit: str = "t") -> None:
    r = world.client("admin").put(f"/v1/finance/output/{enterprise}/{label}",
                                  json={"value": value, "unit": unit})
    assert r.status_code in (200, 201), r.json()


def test_rules_fire_on_a_sequence_gap_and_a_bill_mismatch(world: World) -> None:
    _output(world, CEMENT, "2026-01", "4")
    _attest(world, CEMENT, "2026-01")
    admin = world.client("admin")
    clean = admin.get(f"/v1/finance/eligibility/{CEMENT}", params={"period": "2026-01"}).json()
    assert clean["integrity"]["code"] == "green", clean["integrity"]

    # A second meter of the plant (no gateway) whose readings skip sequence numbers 3 to 5.
    device = f"{P}/dev.cement.aux"
    world.ledger.call(registry.create_device, DeviceCreate(
        id=device, site_id=f"{P}/site.cement", quantity="active_energy", unit="kWh",
        serial="aux"))
    key = PrivateKey.generate("sm")
    world.ledger.call(registry.add_device_key, device, DeviceKeyCreate(
        suite="sm", public_key=key.public_key().hex(), valid_from="2026-01-01T00:00:00Z"))
    for seq in (1, 2, 6, 7):
        world.ledger.ingest_one(sign_reading(Reading(
            suite="sm", key_id=key.public_key().key_id, device=device, seq=seq,
            measured_at=f"2026-01-10T0{seq}:00:00Z",
            quantity="active_energy", unit="kWh", value="1", cumulative=str(seq),
            quality="measured", salt=secrets.token_hex(16), domain=world.ledger.domain), key))
    # The supplier billed the gateway's meter 10 % more than it measured.
    meter = f"{P}/dev.cement.elec-01"
    metered = sum(Decimal(e.signed_reading().reading.value)
                  for e in world.gateways["cement"].outbox.entries(meter))
    bill = {"period": "2026-01", "device": meter, "billed": str(metered * Decimal("1.1")),
            "unit": "kWh", "reference": "SGCC-2026-01-778"}
    own = world.client("enterprise", CEMENT)
    posted = own.post(f"/v1/finance/bills/{CEMENT}", json=bill)
    assert posted.status_code == 201 and posted.json()["record"]["kind"] == "supplier_bill"
    assert own.post(f"/v1/finance/bills/{CEMENT}", json=bill).status_code == 200

    body = admin.get(f"/v1/finance/eligibility/{CEMENT}", params={"period": "2026-01"}).json()
    assert body["integrity"]["code"] == "red"
    fired = {f["rule"]: f for f in body["integrity"]["fired"]}
    assert set(fired) == {"sequence_gaps", "bill_mismatch"}
    # 3 missing of 96 + 4 + 3 expected: above the 1 % warning, under the 5 % red line.
    assert fired["sequence_gaps"] == {
        "rule": "sequence_gaps", "level": "yellow", "threshold": "0.01",
        "measured": str((Decimal(3) / Decimal(103)).quantize(Decimal("1e-12")))}
    assert fired["bill_mismatch"]["level"] == "red"
    assert Decimal(fired["bill_mismatch"]["measured"]) == (
        (Decimal("0.1") / Decimal("1.1")).quantize(Decimal("1e-12")))
    assert body["facts"]["missing_sequence_numbers"] == 3
    code = verify_financing_code(body["qr_payload"], world.ledger.log_key.public_key())
    assert code.code == "red" and {f.rule for f in code.rules_fired} == set(fired)

    # A bill for another enterprise's meter: refused (scope), or for an admin, invalid.
    steel_meter = {**bill, "device": f"{P}/dev.steel.elec-01"}
    assert own.post(f"/v1/finance/bills/{CEMENT}", json=steel_meter).status_code == 403
    wrong = admin.post(f"/v1/finance/bills/{CEMENT}", json=steel_meter)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_input")


def test_loan_tracking_over_two_quarters(world: World) -> None:
    bank = world.client("bank")
    loan = {"id": f"{P}/loan.boiler-retrofit", "enterprise": LOAN, "start": "2026-Q1",
            "baseline": "5", "planned_reductions": ["2.5", "3.5", "1"],
            "description": "waste-heat boiler"}
    created = bank.post("/v1/finance/loans", json=loan)
    assert created.status_code == 201, created.json()
    assert created.json()["kind"] == "loan_project"
    assert bank.post("/v1/finance/loans", json=loan).status_code == 200
    changed = bank.post("/v1/finance/loans", json={**loan, "baseline": "9"})
    assert (changed.status_code, changed.json()["code"]) == (409, "loan_exists")

    got = bank.get(f"/v1/finance/loans/{loan['id']}/tracking")
    assert got.status_code == 200, got.json()
    q1, q2 = (Decimal(t) for t in world.totals["loan"])
    quarters = got.json()["quarters"]
    assert [q["quarter"] for q in quarters] == ["2026-Q1", "2026-Q2", "2026-Q3"]
    assert Decimal(quarters[0]["actual"]) == 5 - q1 and quarters[0]["status"] == "on_track"
    assert Decimal(quarters[1]["actual"]) == 5 - q2 and quarters[1]["status"] == "behind"
    assert quarters[2]["status"] == "pending" and quarters[2]["actual"] is None
    assert Decimal(quarters[1]["cumulative_actual"]) == 10 - q1 - q2
    assert Decimal(quarters[1]["cumulative_planned"]) == 6
    assert len(got.json()["inventories"]) == 2 and got.json()["incomplete"] == {}

    tracking = f"/v1/finance/loans/{loan['id']}/tracking"
    assert world.client("regulator").get(tracking).status_code == 200
    assert world.client("enterprise", LOAN).get(tracking).status_code == 200
    assert world.client("bank").get(tracking).status_code == 200  # another key of the bank
    other_bank = world.client("bank", party=f"{P}/bank.other").get(tracking)
    assert (other_bank.status_code, other_bank.json()["code"]) == (403, "wrong_party")
    assert world.client("enterprise", STEEL).get(tracking).status_code == 403
    assert world.client("buyer", LOAN).get(tracking).status_code == 403
    missing = bank.get(f"/v1/finance/loans/{P}/loan.none/tracking")
    assert (missing.status_code, missing.json()["code"]) == (404, "loan_not_found")
    bad = bank.post("/v1/finance/loans", json={**loan, "id": f"{P}/rpt.x"})
    assert bad.status_code == 422


def test_roles_and_scopes(world: World) -> None:
    elig = (f"/v1/finance/eligibility/{STEEL}", {"period": "2026-01"})
    for role in ("buyer", "gateway"):
        c = world.client(role, STEEL)
        assert c.get(elig[0], params=elig[1]).status_code == 403
        assert c.get(f"{elig[0]}/qr.png", params=elig[1]).status_code == 403
        assert c.get("/v1/finance/config").status_code == 403
        assert c.put(f"/v1/finance/output/{STEEL}/2026-01",
                     json={"value": "1", "unit": "t"}).status_code == 403
    association = world.client("association")
    assert association.get(elig[0], params=elig[1]).status_code == 403
    assert association.get("/v1/finance/config").status_code == 403
    assert world.client(None).get(elig[0], params=elig[1]).status_code == 401
    cement = world.client("enterprise", CEMENT)
    assert cement.get(elig[0], params=elig[1]).status_code == 403
    assert cement.put(f"/v1/finance/output/{STEEL}/2026-01",
                      json={"value": "1", "unit": "t"}).status_code == 403
    assert world.client("enterprise", STEEL).post(
        "/v1/finance/loans", json={"enterprise": STEEL}).status_code == 403

    config = world.client("regulator").get("/v1/finance/config")
    assert config.status_code == 200
    body = config.json()
    assert body["exists"] is True and body["config"]["industries"][STEEL] == "crude steel"
    assert body["config"]["finance"]["grade"] == {"dark_green": "0.8", "medium_green": "0.9",
                                                  "light_green": "1.0"}
    _output(world, STEEL, "2026-01", "10")
    _, code = _steel_code(world)
    assert code["rule_config_hash"] == body["rule_config_hashes"]["crude steel"]
    cfg = load_finance_config(world.ledger)
    assert code["rule_config_hash"] == rule_config_hash(cfg.finance, cfg.benchmarks[0], "sm")


def test_missing_configuration_and_inputs_are_typed_errors(world: World) -> None:
    admin = world.client("admin")

    def problem(enterprise: str, period: str) -> tuple[int, str]:
        r = admin.get(f"/v1/finance/eligibility/{enterprise}", params={"period": period})
        return r.status_code, r.json()["code"]

    assert problem(NOBENCH, "2026-01") == (409, "no_benchmark")
    assert problem(STEEL, "2026-03") == (409, "no_output")
    _output(world, STEEL, "2026-04", "12", unit="MWh")
    assert problem(STEEL, "2026-04") == (409, "output_unit_mismatch")
    _output(world, STEEL, "2026-06", "12")
    assert problem(STEEL, "2026-06") == (409, "no_inventory")
    _output(world, STEEL, "2026", "120")  # January's inventory does not cover the year
    assert problem(STEEL, "2026") == (409, "incomplete_inventories")
    assert problem(STEEL, "2026-13") == (422, "invalid_input")
    assert problem(f"{P}/ent.unknown", "2026-01") == (404, "not_found")
    bad_unit = admin.put(f"/v1/finance/output/{STEEL}/2026-01",
                         json={"value": "1", "unit": "barrels"})
    assert bad_unit.status_code == 422
    negative = admin.put(f"/v1/finance/output/{STEEL}/2026-01",
                         json={"value": "-1", "unit": "t"})
    assert negative.status_code == 422

    path = world.tmp / "ledger" / "finance.json"
    saved = path.read_text()
    try:
        path.write_text(json.dumps({**CONFIG, "benchmarks": [
            {"industry": "crude steel", "value": "0.5", "unit": "kg", "source": "x"}]}))
        assert problem(STEEL, "2026-01") == (500, "finance_config_invalid")
    finally:
        path.write_text(saved)


def test_cli_eligibility_verify_code_and_loan_tracking(world: World, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _output(world, STEEL, "2026-01", "10")
    for name, value in (("DATA_DIR", str(world.tmp / "ledger")), ("PREFIX", P),
                        ("LOG_ID", f"{P}/log.main"), ("LOG_SUITE", "sm")):
        monkeypatch.setenv(f"LEDGER_{name}", value)
    runner = CliRunner()
    png = tmp_path / "code.png"
    out = runner.invoke(cli, ["finance", "eligibility", STEEL, "--period", "2026-01",
                              "--qr", str(png)])
    assert out.exit_code == 0, out.stderr
    payload = json.loads(out.stdout)["qr_payload"]
    log_key = world.ledger.log_key.public_key().hex()

    ok = runner.invoke(cli, ["finance", "verify-code", str(png), "--log-key", log_key])
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["enterprise"] == STEEL and "OK" in ok.stderr
    ok = runner.invoke(cli, ["finance", "verify-code", payload, "--log-key", f"sm:{log_key}"])
    assert ok.exit_code == 0, ok.stderr

    forged = _forge(payload, grade="dark_green", intensity="0.01")
    bad = runner.invoke(cli, ["finance", "verify-code", forged, "--log-key", log_key])
    assert bad.exit_code == 1 and "[bad_signature]" in bad.stderr
    other = PrivateKey.generate("sm").public_key().hex()
    bad = runner.invoke(cli, ["finance", "verify-code", payload, "--log-key", other])
    assert bad.exit_code == 1 and "[invalid_financing_code]" in bad.stderr

    loan = {"id": f"{P}/loan.cli", "enterprise": LOAN, "start": "2026-Q1", "baseline": "5",
            "planned_reductions": ["1", "1"]}
    assert world.client("bank").post("/v1/finance/loans", json=loan).status_code == 201
    tracked = runner.invoke(cli, ["finance", "loan-tracking", loan["id"]])
    assert tracked.exit_code == 0, tracked.stderr
    assert [q["status"] for q in json.loads(tracked.stdout)["quarters"]] == ["on_track"] * 2
    missing = runner.invoke(cli, ["finance", "loan-tracking", f"{P}/loan.none"])
    assert missing.exit_code == 1 and "[loan_not_found]" in missing.stderr


def test_loans_belong_to_the_bank_not_the_key(world: World) -> None:
    """A project is the bank's: a rotated key (a second one of the bank) reads it, another
    bank neither reads it nor claims its id; a bank key registers only for its own bank,
    and an admin names the bank it registers for."""
    loan = {"id": f"{P}/loan.kiln-heat", "enterprise": LOAN, "start": "2026-Q1",
            "baseline": "5", "planned_reductions": ["1"]}
    first = world.client("bank").post("/v1/finance/loans", json=loan)
    assert first.status_code == 201 and first.json()["document"]["bank"] == BANK
    assert "registered_by" not in first.json()["document"]
    rotated = world.client("bank")
    assert rotated.get(f"/v1/finance/loans/{loan['id']}").status_code == 200
    assert rotated.post("/v1/finance/loans", json=loan).status_code == 200  # same terms
    other = world.client("bank", party=f"{P}/bank.other")
    for url in (f"/v1/finance/loans/{loan['id']}", f"/v1/finance/loans/{loan['id']}/tracking"):
        refused = other.get(url)
        assert (refused.status_code, refused.json()["code"]) == (403, "wrong_party")
        assert refused.json()["details"] == {"party": f"{P}/bank.other", "owner": BANK}
    claimed = other.post("/v1/finance/loans", json=loan)  # the same id for another bank
    assert (claimed.status_code, claimed.json()["code"]) == (409, "loan_exists")
    for_other = other.post("/v1/finance/loans", json={**loan, "id": f"{P}/loan.x", "bank": BANK})
    assert (for_other.status_code, for_other.json()["code"]) == (403, "wrong_party")
    named_own = other.post("/v1/finance/loans", json={**loan, "id": f"{P}/loan.own",
                                                      "bank": f"{P}/bank.other"})
    assert named_own.status_code == 201 and named_own.json()["document"]["bank"] == \
        f"{P}/bank.other"

    admin = world.client("admin")
    nameless = admin.post("/v1/finance/loans", json={**loan, "id": f"{P}/loan.by-admin"})
    assert (nameless.status_code, nameless.json()["code"]) == (422, "invalid_input")
    named = admin.post("/v1/finance/loans", json={**loan, "id": f"{P}/loan.by-admin",
                                                  "bank": BANK})
    assert named.status_code == 201 and named.json()["document"]["bank"] == BANK
    assert rotated.get(f"/v1/finance/loans/{P}/loan.by-admin").status_code == 200
    assert admin.get(f"/v1/finance/loans/{P}/loan.own").status_code == 200
