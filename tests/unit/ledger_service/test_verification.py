"""Third-party verification end to end on real parts (SQLite, the in-process EVM with
``CarbonAnchor`` and a ``RuleRegistry``, a gateway with real keys computing and signing
an inventory): register a verifier key, open, sample, check with the CLI, record a
finding, attest with the CLI, and every way the ledger must refuse an attestation."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carbon_protocol import merkle
from carbon_protocol.attestation import (
    Attestation,
    AttestationError,
    SampleEvidence,
    SignedAttestation,
    attestation_bytes,
    check_sample_evidence,
    sign_attestation,
    verify_attestation,
)
from carbon_protocol.canonical import canonical_json
from carbon_protocol.errors import SignatureError
from carbon_protocol.sampling import SampleError, SampleSpec, draw_sample
from carbon_protocol.signing import verify_tree_head
from carbon_protocol.suites import PrivateKey, PublicKey, hash_fn
from ledger_service import registry
from ledger_service._cli import app as cli
from ledger_service.auth import Role
from ledger_service.ledger import Ledger
from ledger_service.log_records import record_proof
from ledger_service.models import EnterpriseCreate
from ledger_service.verification.verifier import draft_attestation
from ledger_service.verification.workflow import (
    VerificationOpen,
    VerificationStatus,
    attested_periods,
    open_verification,
)
from node_gateway.gateway import Organisation
from tests.worlds import DAY, PREFIX, START, api_key, inventory_gateway, rules_app, submit_inventory
from tests.worlds import served as serve

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2
    from fastapi.testclient import TestClient

ENTERPRISE = f"{PREFIX}/ent.verif-test"
OTHER = f"{PREFIX}/ent.verif-other"
SITE = f"{PREFIX}/site.kiln"
VERIFIER = f"{PREFIX}/vfr.acme"
RIVAL = f"{PREFIX}/vfr.rival"
SECOND = f"{PREFIX}/vfr.second"


@dataclass
class World:
    ledger: Ledger
    app: Any
    inventory_id: str
    key: PrivateKey
    key_file: Path
    tmp: Path
    clients: dict[str, TestClient]

    def open(self, size: int = 5, as_: str = "verifier") -> dict[str, Any]:
        r = self.clients[as_].post("/v1/verifications", json={
            "inventory_id": self.inventory_id, "verifier": VERIFIER, "sample_size": size})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def evidence(self, vid: str) -> SampleEvidence:
        r = self.clients["verifier"].get(f"/v1/verifications/{vid}/sample")
        assert r.status_code == 200, r.text
        return SampleEvidence.model_validate_json(r.content)

    def status(self, vid: str) -> VerificationStatus:
        r = self.clients["verifier"].get(f"/v1/verifications/{vid}")
        assert r.status_code == 200, r.text
        return VerificationStatus.model_validate_json(r.content)


def _key(ledger: Ledger, role: Role, enterprises: tuple[str, ...] = (),
         party: str | None = None) -> str:
    """A key of ``role``; a verifier's of ``party`` (default VERIFIER), a bank's of one."""
    party = party or {Role.VERIFIER: VERIFIER, Role.BANK: f"{PREFIX}/bank.test"}.get(role)
    return api_key(ledger, role, enterprises, party)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("verification")
    ledger, app = rules_app(tmp)
    gw = inventory_gateway(
        tmp / "gw", app, _key(ledger, Role.ADMIN),
        Organisation(ENTERPRISE, "Verif Test Co.", SITE, "kiln", "Hebei", f"{PREFIX}/gw.kiln",
                     "kiln"),
        [(f"{PREFIX}/dev.kiln.elec-01", "electricity"), (f"{PREFIX}/dev.kiln.gas-01", "gas")],
        suite="intl", start=START, days=1.25, seed=11)
    _, receipt = submit_inventory(gw, DAY)
    ledger.anchor_tick(force=True)
    ledger.call(registry.create_enterprise, EnterpriseCreate(id=OTHER, name="Other Co."))
    roles: dict[str, tuple[Any, ...]] = {
             "admin": (Role.ADMIN, ()), "regulator": (Role.REGULATOR, ()),
             "verifier": (Role.VERIFIER, (ENTERPRISE,)), "verifier (all)": (Role.VERIFIER, ()),
             "verifier of other": (Role.VERIFIER, (OTHER,)),
             "rival verifier": (Role.VERIFIER, (ENTERPRISE,), RIVAL),
             "second verifier": (Role.VERIFIER, (), SECOND),
             "enterprise": (Role.ENTERPRISE, (ENTERPRISE,)), "bank": (Role.BANK, ()),
             "buyer": (Role.BUYER, (ENTERPRISE,)), "gateway": (Role.GATEWAY, (ENTERPRISE,))}
    clients = {name: TestClient(app, headers={"Authorization": f"Bearer {_key(ledger, *r)}"})
               for name, r in roles.items()}
    clients["anonymous"] = TestClient(app)
    key_file = tmp / "verifier.pem"
    result = CliRunner().invoke(cli, ["verification", "keygen", "-o", str(key_file)])
    assert result.exit_code == 0, result.output
    public = json.loads(result.stdout)
    key = PrivateKey.from_pem(key_file.read_bytes())
    assert public["key_id"] == key.public_key().key_id and key_file.stat().st_mode & 0o077 == 0
    registered = clients["regulator"].post("/v1/verifiers", json={
        "verifier": VERIFIER, "suite": public["suite"], "public_key": public["public_key"]})
    assert registered.status_code == 201, registered.text
    yield World(ledger, app, receipt["inventory_id"], key, key_file, tmp, clients)
    for c in clients.values():
        c.close()
    gw.close()
    ledger.engine.dispose()


def _sign(world: World, ev: SampleEvidence, status: VerificationStatus,
          verdict: str = "attest", key: PrivateKey | None = None) -> SignedAttestation:
    return draft_attestation(ev, status, verifier=VERIFIER, key=key or world.key,
                             verdict=verdict)  # type: ignore[arg-type]


def _post(world: World, vid: str, signed: SignedAttestation | dict[str, Any],
          as_: str = "verifier") -> Any:
    body = signed.model_dump(mode="json") if isinstance(signed, SignedAttestation) else signed
    return world.clients[as_].post(f"/v1/verifications/{vid}/attestation", json=body)


def _resign(world: World, signed: SignedAttestation, **changes: Any) -> SignedAttestation:
    att = Attestation.model_validate({**signed.attestation.model_dump(mode="json"), **changes})
    return sign_attestation(att, world.key)


def test_verifier_keys_are_registered_once_and_public(world: World) -> None:
    pub = world.key.public_key()
    again = world.clients["admin"].post("/v1/verifiers", json={
        "verifier": VERIFIER, "suite": pub.suite, "public_key": pub.hex()})
    assert again.status_code == 200
    listed = world.clients["anonymous"].get(f"/v1/verifiers/{VERIFIER}")
    assert listed.status_code == 200
    assert [k["key"]["public_key"]["key_id"] for k in listed.json()] == [pub.key_id]
    assert listed.json()[0]["record_id"] == f"{VERIFIER}/key.{pub.key_id}"
    assert world.clients["anonymous"].get(f"/v1/verifiers/{PREFIX}/vfr.nobody").status_code \
        == 404
    refused = world.clients["verifier (all)"].post("/v1/verifiers", json={
        "verifier": VERIFIER, "suite": pub.suite, "public_key": pub.hex()})
    assert refused.status_code == 403
    bad = world.clients["admin"].post("/v1/verifiers", json={
        "verifier": VERIFIER, "suite": "intl", "public_key": "04" + "00" * 64})
    assert bad.status_code == 422


def test_whole_flow_through_http_and_the_cli(world: World) -> None:
    opened = world.open(size=5)
    vid = opened["verification_id"]
    assert vid.startswith(f"{PREFIX}/ver.") and opened["state"] == "open"
    assert opened["enterprise"] == ENTERPRISE and opened["period"]["label"] == DAY.label
    # Opening anchored, which mined the seed block after the opening block.
    head = world.ledger.chain.block_number()
    assert opened["seed_block_number"] == opened["opened_in_block"] + 1 <= head
    assert opened["seed_block_hash"] == world.ledger.chain.block(
        opened["seed_block_number"])[0].lower()
    assert len(opened["sampled_leaves"]) == 5

    sample_file, status_file = world.tmp / "sample.json", world.tmp / "status.json"
    sample = world.clients["verifier"].get(f"/v1/verifications/{vid}/sample")
    assert sample.status_code == 200, sample.text
    sample_file.write_bytes(sample.content)
    ev = SampleEvidence.model_validate_json(sample.content)
    assert ev.leaves == opened["sampled_leaves"]
    assert ev.spec.population_size() == sum(
        line.readings.count for line in ev.signed_inventory.inventory.lines)
    runner = CliRunner()
    checked = runner.invoke(cli, ["verification", "check", vid, "--sample", str(sample_file)])
    assert checked.exit_code == 0, checked.output
    assert "OK" in checked.output and f"5 of {ev.spec.population_size()} leaves" in checked.output

    leaf = ev.leaves[0]
    found = world.clients["verifier"].post(f"/v1/verifications/{vid}/findings", json={
        "findings": [{"leaf_index": leaf, "severity": "minor", "category": "value_anomaly",
                      "text": "step change against the previous interval"},
                     {"severity": "info", "category": "documentation",
                      "text": "metering plan reviewed on site"}]})
    assert found.status_code == 201, found.text
    assert len(found.json()) == 2
    outside = world.clients["verifier"].post(f"/v1/verifications/{vid}/findings", json={
        "findings": [{"leaf_index": max(ev.leaves) + 10_000, "severity": "major",
                      "category": "other", "text": "not sampled"}]})
    assert (outside.status_code, outside.json()["code"]) == (422, "invalid_input")

    status_file.write_bytes(world.clients["verifier"].get(f"/v1/verifications/{vid}").content)
    att_file = world.tmp / "attestation.json"
    signed_run = runner.invoke(cli, [
        "verification", "attest", vid, "--key", str(world.key_file), "--verifier", VERIFIER,
        "--verdict", "attest", "--sample", str(sample_file), "--status", str(status_file),
        "-o", str(att_file)])
    assert signed_run.exit_code == 0, signed_run.output
    signed = SignedAttestation.model_validate_json(att_file.read_bytes())
    assert [f.record_id for f in signed.attestation.findings] == [
        f["record_id"] for f in found.json()]
    assert verify_attestation(signed, world.key.public_key()) == signed.attestation

    accepted = _post(world, vid, signed)
    assert accepted.status_code == 201, accepted.text
    receipt = accepted.json()
    assert receipt["verdict"] == "attest" and receipt["anchor"] is not None
    # The attestation record is anchored, and its proof verifies.
    proof = record_proof(world.ledger, receipt["record"]["record_id"])
    h = hash_fn("sm")
    sth = proof.signed_tree_head
    verify_tree_head(sth, PublicKey.from_hex(proof.log_key.suite, proof.log_key.public_key))
    merkle.verify_inclusion(
        h, proof.record.leaf_index, sth.tree_head.tree_size,
        merkle.leaf_hash(h, canonical_json(proof.record.document)),
        [bytes.fromhex(p) for p in proof.inclusion_proof], bytes.fromhex(sth.tree_head.root_hash))
    assert proof.anchor.root_hash == sth.tree_head.root_hash
    assert SignedAttestation.model_validate(proof.record.document) == signed

    # Read back: the enterprise sees its own verification, the state is attested.
    mine = world.clients["enterprise"].get(f"/v1/verifications/{vid}")
    assert mine.status_code == 200 and mine.json()["state"] == "attested"
    assert mine.json()["attestation"]["record_id"] == f"{vid}/attestation"
    listed = world.clients["enterprise"].get("/v1/verifications",
                                             params={"enterprise": ENTERPRISE})
    assert vid in [v["verification_id"] for v in listed.json()]
    assert world.clients["enterprise"].get(
        "/v1/verifications", params={"enterprise": OTHER}).status_code == 403
    assert DAY in attested_periods(world.ledger, ENTERPRISE)
    assert attested_periods(world.ledger, OTHER) == []

    # The same attestation again is 200; a second, different one is 409; so is a finding.
    assert _post(world, vid, signed).status_code == 200
    second = _post(world, vid, _sign(world, ev, world.status(vid), verdict="reject"))
    assert (second.status_code, second.json()["code"]) == (409, "verification_closed")
    late = world.clients["verifier"].post(f"/v1/verifications/{vid}/findings", json={
        "findings": [{"severity": "info", "category": "other", "text": "too late"}]})
    assert (late.status_code, late.json()["code"]) == (409, "verification_closed")


def test_the_cli_check_names_a_tampered_reading(world: World) -> None:
    vid = world.open(size=3)["verification_id"]
    raw = json.loads(world.clients["verifier"].get(f"/v1/verifications/{vid}/sample").content)
    reading = raw["readings"][1]["bundle"]["signed_reading"]["reading"]
    reading["value"] = str(int(float(reading["value"])) + 1)
    bad = world.tmp / "tampered.json"
    bad.write_text(json.dumps(raw))
    result = CliRunner().invoke(cli, ["verification", "check", vid, "--sample", str(bad)])
    assert result.exit_code == 1
    assert f"leaf {raw['leaves'][1]}" in result.output and "reading signature" in result.output
    # A sample whose leaves are not the seed's fails at the sample step.
    raw = json.loads(world.clients["verifier"].get(f"/v1/verifications/{vid}/sample").content)
    population = [i for r in raw["spec"]["population"] for i in range(r["first"], r["last"] + 1)]
    raw["leaves"][-1] = next(i for i in population if i not in raw["leaves"])
    bad.write_text(json.dumps(raw))
    result = CliRunner().invoke(cli, ["verification", "check", vid, "--sample", str(bad)])
    assert result.exit_code == 1 and "sample_mismatch" in result.output


def test_every_bad_attestation_is_refused(world: World) -> None:
    vid = world.open(size=4)["verification_id"]
    ev, status = world.evidence(vid), world.status(vid)
    good = _sign(world, ev, status)

    # A sample that does not match its seed (validly signed).
    population = [i for r in ev.spec.population for i in range(r.first, r.last + 1)]
    other_leaf = next(i for i in population if i not in ev.leaves)
    swapped = _resign(world, good, sampled_leaves=[*ev.leaves[:-1], other_leaf])
    r = _post(world, vid, swapped)
    assert (r.status_code, r.json()["code"]) == (422, "sample_mismatch"), r.text
    with pytest.raises(SampleError):
        verify_attestation(swapped, world.key.public_key())
    # A sample drawn from a seed of the verifier's choosing, consistent with itself.
    chosen = ev.spec.model_copy(update={"seed_block_hash": "0x" + "77" * 32})
    r = _post(world, vid, _resign(world, good, sample=chosen.model_dump(mode="json"),
                                  sampled_leaves=draw_sample(chosen).leaves))
    assert (r.status_code, r.json()["code"]) == (422, "sample_mismatch"), r.text

    # Altered after signing: the signature no longer verifies.
    altered = good.model_dump(mode="json")
    altered["attestation"]["verdict"] = "reject"
    r = _post(world, vid, altered)
    assert (r.status_code, r.json()["code"]) == (422, "bad_signature"), r.text
    with pytest.raises(SignatureError):
        verify_attestation(SignedAttestation.model_validate(altered), world.key.public_key())
    # Forged: another key signs, naming the registered key id.
    forger = PrivateKey.generate("sm")
    forged = SignedAttestation(attestation=good.attestation, signature=forger.sign(
        attestation_bytes(good.attestation)).hex())
    r = _post(world, vid, forged)
    assert (r.status_code, r.json()["code"]) == (422, "bad_signature"), r.text
    # An unregistered key, under its own id.
    r = _post(world, vid, _sign(world, ev, status, key=forger))
    assert (r.status_code, r.json()["code"]) == (422, "unknown_verifier_key"), r.text
    with pytest.raises(AttestationError):
        verify_attestation(_sign(world, ev, status, key=forger), world.key.public_key())
    # Another period or inventory than the verification's.
    r = _post(world, vid, _resign(world, good, period={**DAY.model_dump(), "label": "x"}))
    assert (r.status_code, r.json()["code"]) == (422, "invalid_attestation"), r.text
    r = _post(world, vid, _resign(world, good, inventory_leaf_hash="00" * 32))
    assert (r.status_code, r.json()["code"]) == (422, "invalid_attestation"), r.text
    # Findings left out: one is recorded after the attestation was drafted.
    world.clients["verifier"].post(f"/v1/verifications/{vid}/findings", json={
        "findings": [{"severity": "major", "category": "calibration",
                      "text": "calibration certificate expired"}]})
    r = _post(world, vid, good)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_attestation"), r.text

    # Wrong roles, and a verifier engaged by another enterprise.
    good = _sign(world, ev, world.status(vid))
    for caller in ("enterprise", "bank", "buyer", "gateway", "regulator", "verifier of other",
                   "anonymous"):
        r = _post(world, vid, good, as_=caller)
        assert r.status_code in (401, 403), (caller, r.status_code)
    for caller in ("verifier of other", "enterprise", "bank"):
        assert world.clients[caller].get(f"/v1/verifications/{vid}/sample").status_code == 403
    assert world.clients["verifier of other"].post("/v1/verifications", json={
        "inventory_id": world.inventory_id, "verifier": VERIFIER, "sample_size": 2}
    ).status_code == 403
    assert world.clients["verifier of other"].get(f"/v1/verifications/{vid}").status_code == 403

    assert world.status(vid).state == "open" and world.status(vid).attestation is None
    r = _post(world, vid, good, as_="verifier (all)")  # an unscoped verifier may
    assert r.status_code == 201 and r.json()["verdict"] == "attest"


def test_nothing_is_sampled_or_attested_before_the_seed_block(world: World) -> None:
    ev = world.evidence(world.open(size=3)["verification_id"])  # (opening mines a block)
    status = open_verification(world.ledger, VerificationOpen(
        inventory_id=world.inventory_id, verifier=VERIFIER, sample_size=3), anchor=False)
    vid = status.verification_id
    assert status.seed_block_hash is None and status.sampled_leaves is None
    pending = world.clients["verifier"].get(f"/v1/verifications/{vid}/sample")
    assert (pending.status_code, pending.json()["code"]) == (409, "seed_not_mined")
    assert "not mined yet" in pending.json()["message"]
    # An attestation over a guessed seed is refused the same way.
    guess = SampleSpec.model_validate({**ev.spec.model_dump(mode="json"),
                                       "verification_id": vid,
                                       "seed_block_number": status.seed_block_number})
    att = Attestation(
        verification_id=vid, verifier=VERIFIER, suite="sm",
        key_id=world.key.public_key().key_id, enterprise=ENTERPRISE,
        inventory_id=world.inventory_id, inventory_leaf_hash=status.opened.document[
            "inventory_leaf_hash"], period=status.period, sample=guess,
        sampled_leaves=draw_sample(guess).leaves, findings=[], verdict="attest",
        signed_at="2026-11-01T00:00:00Z")
    r = _post(world, vid, sign_attestation(att, world.key))
    assert (r.status_code, r.json()["code"]) == (409, "seed_not_mined"), r.text
    assert world.clients["verifier"].post(f"/v1/verifications/{vid}/findings", json={
        "findings": [{"severity": "info", "category": "other", "text": "early"}]}
    ).status_code == 409
    world.ledger.anchor_tick(force=True)  # the anchor loop's next round mines the seed
    ready = world.evidence(vid)
    assert ready.spec.seed_block_number == status.seed_block_number
    assert check_sample_evidence(ready)


def test_only_the_opening_verifier_organisation_adds_to_a_verification(world: World) -> None:
    """A key of another verifier organisation, engaged by the same enterprise, neither
    opens a verification in VERIFIER's name nor adds findings or an attestation to one
    VERIFIER opened (even one signed with VERIFIER's key); VERIFIER's other keys and an
    admin do."""
    def refused(r: Any) -> None:
        assert (r.status_code, r.json()["code"]) == (403, "wrong_party"), r.text
        assert r.json()["details"] == {"party": RIVAL, "owner": VERIFIER}

    refused(world.clients["rival verifier"].post("/v1/verifications", json={
        "inventory_id": world.inventory_id, "verifier": VERIFIER, "sample_size": 2}))
    vid = world.open(size=2)["verification_id"]
    finding = {"findings": [{"severity": "info", "category": "other", "text": "seen"}]}
    refused(world.clients["rival verifier"].post(f"/v1/verifications/{vid}/findings",
                                                 json=finding))
    ev = world.evidence(vid)
    refused(_post(world, vid, _sign(world, ev, world.status(vid)), as_="rival verifier"))
    assert world.status(vid).findings == [] and world.status(vid).attestation is None
    # Reading is not adding: the rival, engaged by the enterprise, still reads it.
    assert world.clients["rival verifier"].get(f"/v1/verifications/{vid}").status_code == 200

    assert world.clients["verifier (all)"].post(f"/v1/verifications/{vid}/findings",
                                                json=finding).status_code == 201
    by_admin = world.clients["admin"].post(f"/v1/verifications/{vid}/findings", json={
        "findings": [{"severity": "minor", "category": "other", "text": "by the operator"}]})
    assert by_admin.status_code == 201, by_admin.text
    r = _post(world, vid, _sign(world, ev, world.status(vid)))
    assert r.status_code == 201, r.text


def test_a_verifier_key_without_a_party_acts_for_no_organisation(world: World) -> None:
    """A verifier key issued before keys named their organisation (no party in its row)
    is refused where the organisation decides, and says how to get a new one."""
    from sqlalchemy import update

    from ledger_service._internal.db import api_keys

    key = _key(world.ledger, Role.VERIFIER, (ENTERPRISE,))
    with world.ledger.engine.begin() as conn:
        conn.execute(update(api_keys).where(api_keys.c.key_id == key.split("_")[1])
                     .values(party=None))
    with TestClient(world.app, headers={"Authorization": f"Bearer {key}"}) as legacy:
        assert legacy.get("/v1/auth/whoami").json()["party"] is None
        r = legacy.post("/v1/verifications", json={
            "inventory_id": world.inventory_id, "verifier": VERIFIER, "sample_size": 2})
        assert (r.status_code, r.json()["code"]) == (403, "wrong_party")
        assert "names no party" in r.json()["message"]


def test_opening_needs_a_registered_verifier_and_a_stored_inventory(world: World) -> None:
    body = {"inventory_id": world.inventory_id, "verifier": f"{PREFIX}/vfr.unknown",
            "sample_size": 2}
    r = world.clients["admin"].post("/v1/verifications", json=body)
    assert (r.status_code, r.json()["code"]) == (422, "unknown_verifier_key")
    r = world.clients["admin"].post("/v1/verifications", json={
        **body, "verifier": VERIFIER, "inventory_id": f"{PREFIX}/inv.{'0' * 32}"})
    assert r.status_code == 404
    r = world.clients["verifier"].post("/v1/verifications", json={**body, "sample_size": 0})
    assert r.status_code == 422
    assert world.clients["verifier"].get(f"/v1/verifications/{PREFIX}/ver.nothing").status_code \
        == 403  # scoped: an id that does not exist is refused like another's
    assert world.clients["admin"].get(f"/v1/verifications/{PREFIX}/ver.nothing").status_code \
        == 404


def test_regulator_sees_every_enterprise(world: World) -> None:
    vid = world.open(size=2)["verification_id"]
    r = world.clients["regulator"].get("/v1/regulator/status")
    assert r.status_code == 200, r.text
    body = r.json()
    by_id = {e["enterprise"]: e for e in body["enterprises"]}
    assert {ENTERPRISE, OTHER} <= set(by_id)
    mine = by_id[ENTERPRISE]
    assert [i["inventory_id"] for i in mine["inventories"]] == [world.inventory_id]
    assert vid in mine["open_verifications"]
    assert by_id[OTHER]["inventories"] == [] and by_id[OTHER]["verdicts"] == []
    assert body["last_anchor"]["status"] == "final"
    assert body["tree_size"] == world.ledger.tree_size()
    for caller in ("verifier (all)", "bank", "enterprise"):
        assert world.clients[caller].get("/v1/regulator/status").status_code == 403


@pytest.fixture
def served(world: World) -> Iterator[str]:
    """The world's ledger served by uvicorn on a free local port."""
    with serve(world.app) as url:
        yield url


def test_the_cli_checks_and_attests_over_http(world: World, served: str) -> None:
    vid = world.open(size=3)["verification_id"]
    api_key = _key(world.ledger, Role.VERIFIER, (ENTERPRISE,))
    runner = CliRunner()
    checked = runner.invoke(cli, ["verification", "check", vid, "--url", served,
                                  "--api-key", api_key])
    assert checked.exit_code == 0, checked.output
    assert "3 of" in checked.output and "OK" in checked.output
    refused = runner.invoke(cli, ["verification", "check", vid, "--url", served,
                                  "--api-key", _key(world.ledger, Role.BANK)])
    assert refused.exit_code == 1 and "[forbidden]" in refused.output
    attested = runner.invoke(cli, [
        "verification", "attest", vid, "--key", str(world.key_file), "--verifier", VERIFIER,
        "--verdict", "reject", "--url", served, "--api-key", api_key, "--submit"])
    assert attested.exit_code == 0, attested.output
    assert f"reject recorded as {vid}/attestation" in attested.output
    assert world.status(vid).state == "rejected"
    again = runner.invoke(cli, [
        "verification", "attest", vid, "--key", str(world.key_file), "--verifier", VERIFIER,
        "--verdict", "attest", "--url", served, "--api-key", api_key, "--submit"])
    assert again.exit_code == 1 and "[verification_closed]" in again.output


def test_a_revoked_verifier_key_signs_nothing_more(world: World) -> None:
    other, key = SECOND, PrivateKey.generate("intl")
    pub = key.public_key()
    assert world.clients["admin"].post("/v1/verifiers", json={
        "verifier": other, "suite": "intl", "public_key": pub.hex()}).status_code == 201
    r = world.clients["second verifier"].post("/v1/verifications", json={
        "inventory_id": world.inventory_id, "verifier": other, "sample_size": 2})
    assert r.status_code == 201, r.text
    vid = r.json()["verification_id"]
    signed = draft_attestation(world.evidence(vid), world.status(vid), verifier=other, key=key,
                               verdict="attest")
    path = f"/v1/verifiers/{other}/keys/{pub.key_id}/revoke"
    for caller in ("verifier (all)", "enterprise", "bank"):
        assert world.clients[caller].post(path, json={"reason": "x"}).status_code == 403
    revoked = world.clients["regulator"].post(path, json={"reason": "accreditation withdrawn"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revocation"]["reason"] == "accreditation withdrawn"
    again = world.clients["admin"].post(path, json={"reason": "twice"})
    assert again.json()["revocation"] == revoked.json()["revocation"]
    listed = world.clients["anonymous"].get(f"/v1/verifiers/{other}").json()
    assert listed[0]["revocation_record_id"] == f"{other}/key.{pub.key_id}/revoked"

    r = _post(world, vid, signed, as_="second verifier")
    assert (r.status_code, r.json()["code"]) == (422, "revoked_verifier_key"), r.text
    r = world.clients["second verifier"].post("/v1/verifications", json={
        "inventory_id": world.inventory_id, "verifier": other, "sample_size": 2})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_verifier_key")
    assert world.clients["admin"].post(f"/v1/verifiers/{other}/keys/{'0' * 32}/revoke",
                                       json={"reason": "x"}).status_code == 404
