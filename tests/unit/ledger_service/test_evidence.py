"""The offline evidence bundle on real parts: a gateway signs readings and an inventory,
the ledger checks and logs them, builds a report, logs records, anchors on the in-process
EVM; the bundle is exported, verified, then tampered one defect at a time, each failing
at the step that names it."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carbon_protocol import signing
from carbon_protocol.chain_view import OnChainAnchor
from carbon_protocol.evidence import (
    EVIDENCE_STEPS,
    EvidenceBundle,
    EvidenceReport,
    verify_evidence,
)
from carbon_protocol.financing_code import FinancingCode, sign_financing_code
from carbon_protocol.inventory import Period, leaf_set_proof_nodes
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.signing import leaf_bytes
from carbon_protocol.suites import PrivateKey, hash_fn
from carbon_rules.evidence_check import RulesRecomputer
from carbon_rules.inventory import period_from_label
from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
from carbon_rules.registry_client import RuleRegistryClient
from ledger_service._cli import app as cli
from ledger_service._internal.chain_view_adapter import ClientChainView
from ledger_service.auth import Role
from ledger_service.evidence import export_evidence, write_evidence
from ledger_service.ledger import Ledger
from ledger_service.log_records import append_record
from ledger_service.verification.evidence import sample_evidence
from ledger_service.verification.keys import VerifierKeyCreate, register_key
from ledger_service.verification.verifier import draft_attestation
from ledger_service.verification.workflow import (
    FindingDraft,
    FindingsPost,
    VerificationOpen,
    add_findings,
    open_verification,
    status,
    submit_attestation,
)
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import Gateway, Organisation
from tests.worlds import DAY, PREFIX, START, api_key, inventory_gateway, rules_app, submit_inventory

ENTERPRISE = f"{PREFIX}/ent.evidence"
OTHER = f"{PREFIX}/ent.evidence-other"
SITE = f"{PREFIX}/site.works"
VERIFIER = f"{PREFIX}/vfr.evidence"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class World:
    ledger: Ledger
    app: Any
    admin_key: str
    bundle: EvidenceBundle
    report_id: str
    inventory_id: str
    gateway: Gateway


def _financing_code(ledger: Ledger) -> dict[str, Any]:
    pub = ledger.log_key.public_key()
    code = FinancingCode(
        suite=pub.suite, key_id=pub.key_id, issuer=ledger.settings.log_id,
        enterprise=ENTERPRISE, period=DAY, grade="light_green", intensity="0.5",
        benchmark="0.6", intensity_unit="tCO2e/t", code="green", rules_fired=[],
        rule_config_hash="ab" * 32, issued_at="2026-10-06T00:00:00Z",
        expires_at="2026-10-20T00:00:00Z")
    return sign_financing_code(code, ledger.log_key).model_dump(mode="json")


def _attest(ledger: Ledger, inventory_id: str) -> None:
    """A third-party verification of the inventory: key, opening, a finding, attestation."""
    key = PrivateKey.generate("sm")
    register_key(ledger, VerifierKeyCreate(verifier=VERIFIER, suite="sm",
                                           public_key=key.public_key().hex()))
    vid = open_verification(ledger, VerificationOpen(
        inventory_id=inventory_id, verifier=VERIFIER, sample_size=3)).verification_id
    add_findings(ledger, vid, FindingsPost(findings=[FindingDraft(
        severity="info", category="documentation", text="metering plan reviewed")]))
    signed = draft_attestation(sample_evidence(ledger, vid), status(ledger, vid),
                               verifier=VERIFIER, key=key, verdict="attest")
    submit_attestation(ledger, vid, signed)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("evidence")
    ledger, app = rules_app(tmp)
    admin = api_key(ledger, Role.ADMIN)
    gw = inventory_gateway(
        tmp / "gw", app, admin,
        Organisation(ENTERPRISE, "Evidence Co.", SITE, "works", "Liaoning",
                     f"{PREFIX}/gw.works", "works"),
        [(f"{PREFIX}/dev.works.elec-01", "electricity"), (f"{PREFIX}/dev.works.heat-01", "heat")],
        suite="intl", start=START, days=1.25, seed=11)
    ledger.anchor_tick(force=True)  # a first head: the readings
    _, receipt = submit_inventory(gw, DAY)
    ledger.anchor_tick(force=True)  # the inventory: the report cites this anchor
    built = gw.client.call("POST", "/v1/reports", {
        "enterprise": {"id": ENTERPRISE, "name": "Evidence Co."},
        "boundary": {"sites": [{"id": SITE, "name": "works"}]},
        "period": DAY.model_dump(), "inventory_ids": [receipt["inventory_id"]],
        "prepared_by": "energy office"})
    assert built.status == 201, built.body
    _attest(ledger, receipt["inventory_id"])
    append_record(ledger, kind="financing_code", record_id=f"{PREFIX}/fc.evidence-1",
                  enterprise_id=ENTERPRISE, document=_financing_code(ledger))
    append_record(ledger, kind="note", record_id=f"{PREFIX}/note.evidence-1",
                  enterprise_id=ENTERPRISE, document={"format": "example/unknown/v1", "n": 1})
    ledger.anchor_tick(force=True)
    bundle = export_evidence(ledger, ENTERPRISE, "2026-10")
    yield World(ledger, app, admin, bundle, built.body["report_id"], receipt["inventory_id"],
                gw)
    gw.close()
    ledger.engine.dispose()


def check(bundle: EvidenceBundle | dict[str, Any], **kwargs: Any) -> EvidenceReport:
    parsed = (bundle if isinstance(bundle, EvidenceBundle)
              else EvidenceBundle.model_validate_json(json.dumps(bundle)))
    return verify_evidence(parsed, recomputer=RulesRecomputer(), now=NOW, **kwargs)


def failed_step(doc: dict[str, Any]) -> str:
    report = check(doc)
    failure = report.first_failure
    assert failure is not None, "the tampered bundle verified"
    assert all(s.status == "not-checked" for s in report.steps[failure.number:])
    return failure.name


def test_export_holds_the_whole_chain_and_verifies(world: World) -> None:
    b = world.bundle
    assert [i.inventory_id for i in b.inventories] == [world.inventory_id]
    assert [r.report_id for r in b.reports] == [world.report_id]
    assert sorted(r.kind for r in b.records) == [
        "attestation", "financing_code", "note", "verification_finding",
        "verification_opened", "verifier_key"]
    named = sorted(i for line in b.inventories[0].signed_inventory.inventory.lines
                   for i in line.readings.leaf_indices())
    assert b.readings.indices == named and len(named) > 100
    # every final anchor from the readings' first: readings, inventory, the verification
    # (opening it anchors, to mine the seed block), the rest
    assert len(b.heads) >= 3 and len(b.consistency) == len(b.heads) - 1
    assert b.heads[0].anchor.tree_size > min(named)
    assert {k.device for k in b.device_keys} == {f"{PREFIX}/dev.works.elec-01",
                                                 f"{PREFIX}/dev.works.heat-01"}
    assert b.rules[0].id == DEFAULT_METHODOLOGY
    report = check(b)
    assert report.ok, report.summary()
    statuses = {s.name: s.status for s in report.steps}
    assert [s.name for s in report.steps] == list(EVIDENCE_STEPS)
    assert statuses["chain"] == "not-checked"  # no chain given
    assert statuses["log record formats"] == "not-checked"  # the unknown format
    assert "1 record(s)" in report.steps[-1].detail  # only the note: the rest were checked
    assert "note.evidence-1" in report.steps[-1].detail
    assert all(v == "pass" for k, v in statuses.items()
               if k not in ("chain", "log record formats"))
    assert any("expired" in n for n in report.notes)  # an old code is a note, not a failure


def test_without_a_recomputer_the_numbers_are_not_checked(world: World) -> None:
    report = verify_evidence(world.bundle)
    statuses = {s.name: s.status for s in report.steps}
    assert report.ok
    assert statuses["inventory recomputation"] == statuses["report recomputation"] == (
        "not-checked")


class _RewrittenChain(ClientChainView):
    """The ledger's chain as a stranger's node would answer, but holding another root
    for every anchor: what a log operator rewriting history would face."""

    def anchor_of(self, contract: str, key: bytes, tree_size: int) -> OnChainAnchor | None:
        held = super().anchor_of(contract, key, tree_size)
        return None if held is None else dataclasses.replace(
            held, root=bytes([held.root[0] ^ 1]) + held.root[1:])


def test_chain_lookup_passes_and_catches_a_rewritten_root(world: World) -> None:
    report = check(world.bundle, chain=ClientChainView(world.ledger.chain))
    assert {s.name: s.status for s in report.steps}["chain"] == "pass", report.summary()
    forged = check(world.bundle, chain=_RewrittenChain(world.ledger.chain))
    failure = forged.first_failure
    assert failure is not None and failure.name == "chain"
    assert "another root" in failure.detail


def _doc(world: World) -> dict[str, Any]:
    return json.loads(world.bundle.model_dump_json())


def _reprove(world: World, doc: dict[str, Any]) -> None:
    """Rebuild the readings' leaf-set proof for the (edited) set, as a forger could:
    the hashes of everything else are public."""
    size = doc["heads"][-1]["signed_tree_head"]["tree_head"]["tree_size"]
    indices = doc["readings"]["indices"]
    with world.ledger.reader.connect() as conn:
        nodes = world.ledger.log._ranges(conn, leaf_set_proof_nodes(size, indices))
    doc["readings"]["proof"] = [n.hex() for n in nodes]


def _flip(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


def test_tampered_reading_value_fails_at_reading_signatures(world: World) -> None:
    doc = _doc(world)
    r = doc["readings"]["readings"][3]["reading"]
    r["value"] = r["value"][:-1] + ("1" if r["value"][-1] != "1" else "2")
    assert failed_step(doc) == "reading signatures"


def test_tampered_reading_signature_fails_at_reading_signatures(world: World) -> None:
    doc = _doc(world)
    sig = doc["readings"]["readings"][0]["signature"]
    doc["readings"]["readings"][0]["signature"] = _flip(sig)
    assert failed_step(doc) == "reading signatures"


def test_each_step_is_announced_as_it_starts_and_none_after_a_failure(world: World) -> None:
    told: list[tuple[int, str]] = []
    assert check(world.bundle, on_step=lambda n, name: told.append((n, name))).ok
    assert told == list(enumerate(EVIDENCE_STEPS, 1))
    doc = _doc(world)
    doc["readings"]["proof"][0] = _flip(doc["readings"]["proof"][0])
    told.clear()
    assert not check(doc, on_step=lambda n, name: told.append((n, name))).ok
    assert told[-1] == (8, "reading inclusion") and len(told) == 8


def _failure_detail(doc: dict[str, Any]) -> str:
    failure = check(doc).first_failure
    assert failure is not None, "the tampered bundle verified"
    return failure.detail


def _leaf(doc: dict[str, Any], pos: int) -> str:
    r = doc["readings"]["readings"][pos]["reading"]
    return f"leaf {doc['readings']['indices'][pos]} ({r['device']} #{r['seq']})"


def test_threads_report_the_first_bad_signature_in_leaf_order(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "_CHUNK", 16)  # this world's readings span many chunks
    doc = _doc(world)
    assert len(doc["readings"]["readings"]) > 150
    for pos in (150, 40):
        sig = doc["readings"]["readings"][pos]["signature"]
        doc["readings"]["readings"][pos]["signature"] = _flip(sig)
    assert _failure_detail(doc).startswith(f"{_leaf(doc, 40)}: ")


def test_a_key_fact_before_a_bad_signature_is_reported_first(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "_CHUNK", 16)
    doc = _doc(world)
    key = doc["device_keys"][1]
    key["valid_from"] = "2099-01-01T00:00:00Z"  # not yet valid when anchored
    first = next(pos for pos, s in enumerate(doc["readings"]["readings"])
                 if s["reading"]["key_id"] == key["key_id"])
    later = first + 40
    doc["readings"]["readings"][later]["signature"] = _flip(
        doc["readings"]["readings"][later]["signature"])
    detail = _failure_detail(doc)
    assert detail.startswith(f"{_leaf(doc, first)}: key {key['key_id']} was not valid"), detail
    # The same reading's own signature comes before its key's validity.
    doc["readings"]["readings"][first]["signature"] = _flip(
        doc["readings"]["readings"][first]["signature"])
    detail = _failure_detail(doc)
    assert detail.startswith(f"{_leaf(doc, first)}: ") and "not valid" not in detail, detail


def test_tampered_inclusion_node_fails_at_reading_inclusion(world: World) -> None:
    doc = _doc(world)
    doc["readings"]["proof"][0] = _flip(doc["readings"]["proof"][0])
    assert failed_step(doc) == "reading inclusion"


def test_tampered_inventory_path_fails_at_inventory_inclusion(world: World) -> None:
    doc = _doc(world)
    path = doc["inventories"][0]["inclusion_proof"]
    path[-1] = _flip(path[-1])
    assert failed_step(doc) == "inventory inclusion"


def test_tampered_tree_head_signature_fails_at_tree_heads(world: World) -> None:
    doc = _doc(world)
    sth = doc["heads"][1]["signed_tree_head"]
    sth["signature"] = _flip(sth["signature"])
    assert failed_step(doc) == "tree heads"


def test_tampered_consistency_proof_fails_at_consistency(world: World) -> None:
    doc = _doc(world)
    doc["consistency"][0][0] = _flip(doc["consistency"][0][0])
    assert failed_step(doc) == "consistency"


def test_tampered_anchor_root_fails_at_anchors(world: World) -> None:
    doc = _doc(world)
    anchor = doc["heads"][0]["anchor"]
    anchor["root_hash"] = _flip(anchor["root_hash"])
    report = check(doc)
    assert report.first_failure is not None and report.first_failure.name == "anchors"
    assert report.first_failure.found == anchor["root_hash"]


def test_tampered_inventory_total_fails_at_inventory_signatures(world: World) -> None:
    doc = _doc(world)
    totals = doc["inventories"][0]["signed_inventory"]["inventory"]["totals"]
    totals["total"] = totals["total"] + "1" if "." in totals["total"] else totals["total"] + ".1"
    assert failed_step(doc) == "inventory signatures"


def test_tampered_report_fails_at_report_inclusion(world: World) -> None:
    doc = _doc(world)
    doc["reports"][0]["report"]["prepared_by"] = "someone else"
    assert failed_step(doc) == "report inclusion"


def test_tampered_record_document_fails_at_record_inclusion(world: World) -> None:
    doc = _doc(world)
    code = next(r for r in doc["records"] if r["kind"] == "financing_code")
    code["document"]["financing_code"]["grade"] = "dark_green"
    assert failed_step(doc) == "log record inclusion"


@pytest.mark.parametrize("kind", ["financing_code", "attestation"])
def test_forged_signed_record_fails_at_record_formats(world: World, kind: str) -> None:
    """A record whose leaf is genuine but whose signature is not its signer's: the
    forger logged it (the leaf and path match), the format check refuses it."""
    ledger = world.ledger
    doc = _doc(world)
    code = next(r for r in doc["records"] if r["kind"] == kind)
    code["document"]["signature"] = _flip(code["document"]["signature"])
    # re-log the forged document so its inclusion holds: a new leaf and a new last head
    _, logged = append_record(ledger, kind=kind, record_id=f"{PREFIX}/forged.{kind}",
                              enterprise_id=OTHER, document=code["document"])
    ledger.anchor_tick(force=True)
    fresh = json.loads(export_evidence(ledger, ENTERPRISE, "2026-10").model_dump_json())
    size = fresh["heads"][-1]["signed_tree_head"]["tree_head"]["tree_size"]
    fresh["records"].append({
        "record_id": logged.record_id, "kind": kind,
        "leaf_index": logged.leaf_index, "document": code["document"],
        "inclusion_proof": [p.hex() for p in ledger.inclusion_proof(logged.leaf_index, size)]})
    assert failed_step(fresh) == "log record formats"


def test_reading_removed_fails_at_inventory_readings(world: World) -> None:
    doc = _doc(world)
    del doc["readings"]["indices"][5], doc["readings"]["readings"][5]
    _reprove(world, doc)  # the set is still a proven subset of the log
    report = check(doc)
    failure = report.first_failure
    assert failure is not None and failure.name == "inventory readings", report.summary()
    assert "lacks this reading" in failure.detail


def test_extra_reading_fails_at_inventory_readings(world: World) -> None:
    """A reading of the enterprise the inventory does not name (outside its day)."""
    ledger = world.ledger
    doc = _doc(world)
    named = set(doc["readings"]["indices"])
    size = doc["heads"][-1]["signed_tree_head"]["tree_head"]["tree_size"]
    extra = next(i for i in range(size) if i not in named and _is_reading(ledger, i))
    from carbon_protocol.models import SignedReading
    from ledger_service._internal.db import readings

    with ledger.reader.connect() as conn:
        data = conn.execute(readings.select().where(readings.c.leaf_index == extra)).one()
    pairs = sorted([*zip(doc["readings"]["indices"], doc["readings"]["readings"], strict=True),
                    (extra, json.loads(bytes(data.leaf_data)))], key=lambda p: p[0])
    doc["readings"]["indices"] = [p[0] for p in pairs]
    doc["readings"]["readings"] = [p[1] for p in pairs]
    _reprove(world, doc)
    signed = SignedReading.model_validate_json(bytes(data.leaf_data))
    assert leaf_hash(hash_fn("sm"), leaf_bytes(signed)) == bytes(data.leaf_hash)
    report = check(doc)
    failure = report.first_failure
    assert failure is not None and failure.name == "inventory readings", report.summary()
    assert "no inventory names" in failure.detail


def _is_reading(ledger: Ledger, index: int) -> bool:
    from ledger_service._internal.db import readings

    with ledger.reader.connect() as conn:
        return conn.execute(readings.select().where(
            readings.c.leaf_index == index)).first() is not None


def test_altered_factor_fails_at_rule_version(world: World) -> None:
    doc = _doc(world)
    factor = doc["rules"][0]["versions"][0]["factors"][0]
    factor["value"] = factor["max"]  # still plausible, but not what was published
    if factor["value"] == world.bundle.rules[0].versions[0].factors[0].value:
        factor["value"] = factor["min"]
    assert failed_step(doc) == "rule version"


def test_cli_exports_gzip_and_verifies(world: World, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "evidence.json.gz"
    written = write_evidence(world.bundle, tmp_path / "direct.json.gz")
    assert written == (tmp_path / "direct.json.gz").stat().st_size
    runner = CliRunner()
    # The embedded chain lives in the ledger object (a process reopening the files gets
    # a new one): the command is given this process's ledger, as `serve` would hold it.
    monkeypatch.setattr(Ledger, "open", classmethod(lambda cls, *a, **k: world.ledger))
    exported = runner.invoke(cli, ["export-evidence", "--enterprise", ENTERPRISE,
                                   "--period", "2026-10", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert "inventories" in exported.output
    bad_period = runner.invoke(cli, ["export-evidence", "--enterprise", ENTERPRISE,
                                     "--period", "October", "-o", str(tmp_path / "x.json")])
    assert bad_period.exit_code == 1 and "invalid_input" in bad_period.output
    assert json.loads(gzip.decompress(out.read_bytes()))["format"] == "carbon-ledger/evidence/v1"
    ok = runner.invoke(cli, ["verify", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "inventory recomputation" in ok.output
    doc = _doc(world)
    doc["consistency"][0][0] = _flip(doc["consistency"][0][0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    failed = runner.invoke(cli, ["verify", str(bad)])
    assert failed.exit_code == 1
    assert "step 3 (consistency) failed" in failed.output


def test_route_admits_regulator_bank_and_owner_only(world: World) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    def key(role: Role, enterprises: list[str] | None = None) -> str:
        return api_key(world.ledger, role, enterprises or ())  # a bank's: of bank.test

    url = f"/v1/evidence/{ENTERPRISE}?period=2026-10"
    with TestClient(world.app) as http:
        def get(k: str, target: str = url) -> Any:
            return http.get(target, headers={"Authorization": f"Bearer {k}"})

        for allowed in (key(Role.REGULATOR), key(Role.BANK),
                        key(Role.ENTERPRISE, [ENTERPRISE])):
            got = get(allowed)
            assert got.status_code == 200, got.text
            assert got.json()["format"] == "carbon-ledger/evidence/v1"
        parsed = EvidenceBundle.model_validate_json(got.content)
        assert check(parsed).ok
        for refused in (key(Role.BUYER, [ENTERPRISE]), key(Role.GATEWAY, [ENTERPRISE]),
                        key(Role.ENTERPRISE, [OTHER])):
            assert get(refused).status_code == 403
        bad = get(key(Role.REGULATOR), f"/v1/evidence/{ENTERPRISE}?period=2026-13-99")
        assert bad.status_code == 422
        # A bundle larger than the service builds at once is refused, saying how large.
        settings = world.ledger.settings
        readings = len(parsed.readings.indices)
        world.ledger.settings = settings.model_copy(
            update={"max_evidence_readings": readings - 1})
        try:
            big = get(key(Role.REGULATOR))
        finally:
            world.ledger.settings = settings
        assert big.status_code == 413 and big.json()["code"] == "evidence_too_large"
        assert big.json()["details"] == {"readings": readings, "limit": readings - 1}


def test_attestation_without_its_verifier_key_fails_at_record_formats(world: World) -> None:
    doc = _doc(world)
    doc["records"] = [r for r in doc["records"] if r["kind"] != "verifier_key"]
    report = check(doc)
    failure = report.first_failure
    assert failure is not None and failure.name == "log record formats", report.summary()
    assert "verifier key" in failure.detail and failure.expected is not None
    assert failure.expected.startswith(f"{VERIFIER}/key.")


def test_a_report_brings_the_other_inventories_it_names(world: World) -> None:
    """A two-day report exported with its first day: its second day's inventory (and
    that day's readings) come along, so the report is rebuilt from all it names."""
    gw = world.gateway
    second_day = period_from_label("2026-10-06")
    run = gw_inventory.compute(gw, second_day, gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY))
    second = gw_inventory.submit(gw, run.signed)["inventory_id"]
    world.ledger.anchor_tick(force=True)
    both = Period(label="2026-10-05+2d", start=DAY.start, end="2026-10-07T00:00:00Z")
    built = gw.client.call("POST", "/v1/reports", {
        "enterprise": {"id": ENTERPRISE, "name": "Evidence Co."},
        "boundary": {"sites": [{"id": SITE, "name": "works"}]}, "period": both.model_dump(),
        "inventory_ids": [world.inventory_id, second], "prepared_by": "energy office"})
    assert built.status == 201, built.body
    world.ledger.anchor_tick(force=True)
    bundle = export_evidence(world.ledger, ENTERPRISE, "2026-10-05")
    assert {i.inventory_id for i in bundle.inventories} == {world.inventory_id, second}
    assert built.body["report_id"] in {r.report_id for r in bundle.reports}
    report = check(bundle)
    assert report.ok, report.summary()
    # without the report, the second day's inventory has no business in a 5 October bundle
    doc = json.loads(bundle.model_dump_json())
    doc["reports"] = [r for r in doc["reports"] if r["report_id"] != built.body["report_id"]]
    assert failed_step(doc) == "inventory readings"


def test_with_the_registry_the_carried_rule_must_be_the_published_one(world: World) -> None:
    """``published_at`` is outside the parameters hash: offline, an edit goes unseen;
    against the RuleRegistry the inventories name, it is caught at the rule step."""
    w3 = world.ledger.rules().w3

    def registry(chain_id: int, address: str) -> RuleRegistryClient:
        assert chain_id == int(w3.eth.chain_id)
        return RuleRegistryClient(w3, w3.to_checksum_address(address))

    assert verify_evidence(world.bundle, recomputer=RulesRecomputer(registry)).ok
    doc = _doc(world)
    doc["rules"][0]["versions"][0]["published_at"] += 1
    edited = EvidenceBundle.model_validate(doc)
    assert verify_evidence(edited, recomputer=RulesRecomputer()).ok
    failure = verify_evidence(edited, recomputer=RulesRecomputer(registry)).first_failure
    assert failure is not None and failure.name == "rule version"
    assert "differs from the RuleRegistry" in failure.detail
