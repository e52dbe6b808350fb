"""The demo's second half: the parties who read what the first half wrote.

A verifier samples and attests each inventory, the regulator looks at every
enterprise, a bank grades the month and takes a signed financing code, a buyer
requests a week of one meter's readings, gets it encrypted with its proofs, and is
cut off when the owner revokes; the regulator exports the month's evidence bundle and
checks it offline. Every party calls the ledger's real HTTP API (in process) with an
API key of its own role, so the demo also walks the access control it would meet in
production.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from carbon_protocol.inventory import Period
from carbon_protocol.suites import PrivateKey

from ._internal.chain_view_adapter import ClientChainView
from .auth import KeyCreate, Role, create_key
from .errors import LedgerError
from .ledger import Ledger

__all__ = ["PartiesSummary", "DemoStepError", "verification_step", "finance_step",
           "market_step", "evidence_step"]

VERIFIER_SUFFIX = "vfr.cqc-carbon"
BUYER_SUFFIX = "ent.shenyang-auto-parts"
SAMPLE_SIZE = 25
"""Readings sampled per inventory: enough to show the check, small enough to read."""


class DemoStepError(LedgerError):
    """A party's call the demo expects to succeed did not: the demo stops and says which."""

    code = "demo_step_failed"


@dataclass
class PartiesSummary:
    """What the other parties did; the demo's summary table shows it."""

    attested: list[str] = field(default_factory=list)
    """Verification ids attested, one per inventory."""
    sampled: int = 0
    regulator_view: str | None = None
    grade: str | None = None
    integrity: str | None = None
    code_path: Path | None = None
    code_verified: bool = False
    dataset: str | None = None
    delivered: int = 0
    accesses: int = 0
    after_revocation: str | None = None
    evidence_path: Path | None = None
    evidence_steps: int = 0
    evidence_size_mb: float = 0.0
    evidence_tamper_step: str | None = None


class _Party:
    """One party's HTTP client: an API key of ``role`` against the in-process app."""

    def __init__(self, ledger: Ledger, app: Any, role: Role, enterprises: list[str],
                 label: str, party: str | None = None) -> None:
        with ledger.engine.begin() as conn:
            key = create_key(conn, KeyCreate(role=role, enterprises=enterprises,
                                             label=label, party=party)).api_key
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2
            from fastapi.testclient import TestClient
        self.http = TestClient(app, base_url="http://ledger.in-process",
                               raise_server_exceptions=False,
                               headers={"Authorization": f"Bearer {key}"})
        self.label = label

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201),
             **kwargs: Any) -> Any:
        r = self.http.request(method, path, **kwargs)
        if r.status_code not in expect:
            raise DemoStepError(f"{self.label}: {method} {path} answered {r.status_code}: "
                                f"{r.text[:500]}", status=r.status_code)
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.content


def verification_step(console: Console, ledger: Ledger, app: Any, data_dir: Path,
                      enterprise: str, inventory_ids: list[str], out: PartiesSummary) -> None:
    """The regulator registers a verifier's key; the verifier opens a verification of
    each inventory, draws the sample the next block's hash decides, checks every
    sampled reading offline, records a finding and signs its attestation; the regulator
    then sees every enterprise's state."""
    from carbon_protocol.attestation import SampleEvidence

    from .verification.verifier import check_evidence, draft_attestation
    from .verification.workflow import VerificationStatus

    prefix = enterprise.split("/")[0]
    verifier = f"{prefix}/{VERIFIER_SUFFIX}"
    key = PrivateKey.generate("sm")
    key_path = data_dir / "verifier-key.pem"
    key_path.write_bytes(key.to_pem())
    key_path.chmod(0o600)
    regulator = _Party(ledger, app, Role.REGULATOR, [], "regulator")
    auditor = _Party(ledger, app, Role.VERIFIER, [enterprise], "verifier", party=verifier)
    pub = key.public_key()
    regulator.call("POST", "/v1/verifiers", json={"verifier": verifier, "suite": pub.suite,
                                                  "public_key": pub.hex()})
    console.print(f"  regulator registered verifier {verifier} (SM2 key {pub.key_id})")
    chain = ClientChainView(ledger.chain)
    for inventory_id in inventory_ids:
        opened = auditor.call("POST", "/v1/verifications", json={
            "inventory_id": inventory_id, "verifier": verifier, "sample_size": SAMPLE_SIZE})
        vid = opened["verification_id"]
        evidence = SampleEvidence.model_validate(
            auditor.call("GET", f"/v1/verifications/{vid}/sample"))
        rows = check_evidence(evidence, chain=chain)
        out.sampled += len(evidence.leaves)
        auditor.call("POST", f"/v1/verifications/{vid}/findings", json={"findings": [{
            "severity": "info", "category": "documentation",
            "text": f"{len(rows)} sampled readings checked against the anchored root"}]})
        status = VerificationStatus.model_validate(
            auditor.call("GET", f"/v1/verifications/{vid}"))
        signed = draft_attestation(evidence, status, verifier=verifier, key=key,
                                   verdict="attest")
        receipt = auditor.call("POST", f"/v1/verifications/{vid}/attestation",
                               json=signed.model_dump(mode="json"))
        out.attested.append(vid)
        console.print(f"  [green]✓[/] {inventory_id}: seed block "
                      f"{opened['seed_block_number']} ({opened['seed_block_hash'][:12]}…) "
                      f"chose {len(evidence.leaves)} of {evidence.spec.population_size():,} "
                      f"readings; all verified; attested at leaf "
                      f"{receipt['record']['leaf_index']:,}")
    view = regulator.call("GET", "/v1/regulator/status")
    mine = next(e for e in view["enterprises"] if e["enterprise"] == enterprise)
    verdicts = ", ".join(f"{v['period']['label']} {v['verdict']}" for v in mine["verdicts"])
    out.regulator_view = (f"{len(view['enterprises'])} enterprise(s); {enterprise}: "
                          f"{len(mine['inventories'])} inventories, {verdicts}")
    console.print(f"  regulator's view: {out.regulator_view}")


def finance_step(console: Console, ledger: Ledger, app: Any, data_dir: Path,
                 enterprise: str, industry: str, period: Period, output_tonnes: str,
                 out: PartiesSummary) -> None:
    """The operator configures the industry benchmark; the enterprise declares its
    output; a bank reads the grade and integrity code and takes the signed code as a
    QR image, which it checks offline with the ledger's public log key alone."""
    from carbon_protocol.financing_code import GREEN_GRADE_LABELS, verify_financing_code

    config = data_dir / "ledger" / "finance.json"
    config.write_text(json.dumps({
        "benchmarks": [{"industry": industry, "value": "2.0", "unit": "tCO2e/t",
                        "source": "demo benchmark: set the sector's published value"}],
        "industries": {enterprise: industry}}, ensure_ascii=False, indent=2) + "\n")
    owner = _Party(ledger, app, Role.ENTERPRISE, [enterprise], "enterprise")
    bank = _Party(ledger, app, Role.BANK, [], "bank",
                  party=f"{enterprise.split('/')[0]}/bank.demo")
    owner.call("PUT", f"/v1/finance/output/{enterprise}/{period.label}",
               json={"value": output_tonnes, "unit": "t", "note": "production ledger (demo)"})
    got = bank.call("GET", f"/v1/finance/eligibility/{enterprise}",
                    params={"period": period.label})
    grade, integrity = got["grade"], got["integrity"]
    intensity = Decimal(grade["intensity"]).quantize(Decimal("0.001"))
    out.grade = (f"{GREEN_GRADE_LABELS[grade['grade']]} ({grade['grade']}): {intensity} "
                 f"against {grade['benchmark']['value']} {grade['benchmark']['unit']}")
    fired = ", ".join(f"{f['rule']} ({f['level']})" for f in integrity["fired"]) or "none"
    out.integrity = f"{integrity['code']}; rules fired: {fired}"
    png = bank.call("GET", f"/v1/finance/eligibility/{enterprise}/qr.png",
                    params={"period": period.label})
    out.code_path = data_dir / "financing-code.png"
    out.code_path.write_bytes(png)
    verify_financing_code(got["qr_payload"], ledger.log_key.public_key())
    out.code_verified = True
    console.print(f"  {period.label}: {got['emissions']} tCO2e over {output_tonnes} t → "
                  f"[bold]{out.grade}[/]; integrity {out.integrity}")
    console.print(f"  [green]✓[/] signed code (record {got['code_record']['record_id']}) "
                  f"verified offline with the log key → {out.code_path}")


def market_step(console: Console, ledger: Ledger, app: Any, data_dir: Path,
                enterprise: str, device: str, start: datetime, out: PartiesSummary) -> None:
    """The enterprise lists a week of one meter in the data window; a buyer asks for
    it with an SM2 encryption key; the owner sells it for 30 days; the buyer's delivery
    is decrypted and every reading and proof in it checked; the owner revokes, and the
    next delivery is refused."""
    from carbon_protocol.envelope import Envelope, RecipientPrivateKey

    from .market.delivery import open_delivery

    prefix = enterprise.split("/")[0]
    buyer_id = f"{prefix}/{BUYER_SUFFIX}"
    owner = _Party(ledger, app, Role.ENTERPRISE, [enterprise], "data owner")
    buyer = _Party(ledger, app, Role.BUYER, [buyer_id], "buyer")
    week = start + timedelta(days=7)
    listed = owner.call("POST", "/v1/market/datasets", json={
        "owner": enterprise, "scene": "trading", "title": "north mill feeder, one week",
        "description": "15-minute active energy, signed at the meter's gateway",
        "devices": [device], "period_from": f"{start:%Y-%m-%dT%H:%M:%SZ}",
        "period_to": f"{week:%Y-%m-%dT%H:%M:%SZ}"})
    out.dataset = listed["dataset_id"]
    console.print(f"  listed {out.dataset} ({listed['metadata']['readings']} readings, "
                  f"content hash {listed['content_hash'][:16]}…) on DataMarket, tx "
                  f"{listed['chain']['tx_hash'][:18]}…")
    window = buyer.call("GET", "/v1/market/datasets", params={"scene": "trading"})
    assert out.dataset in [d["dataset_id"] for d in window]
    key = RecipientPrivateKey.generate("sm")
    asked = buyer.call("POST", f"/v1/market/datasets/{out.dataset}/requests", json={
        "buyer": buyer_id, "purpose": "product carbon footprint of supplied parts",
        "recipient_key": {"suite": "sm", "public_key": key.public_key().hex()}})
    expires = datetime.now(UTC) + timedelta(days=30)
    grant = owner.call("POST", f"/v1/market/requests/{asked['request_id']}/grant", json={
        "kind": "sale", "price": 50_000, "expires_at": f"{expires:%Y-%m-%dT%H:%M:%SZ}"})
    delivery = buyer.call("GET", f"/v1/market/grants/{grant['grant_id']}/delivery")
    opened, report = open_delivery(Envelope.model_validate(delivery["envelope"]), key,
                                   expected_content_hash=listed["content_hash"],
                                   chain=ClientChainView(ledger.chain))
    out.delivered = report.readings
    console.print(f"  [green]✓[/] buyer {buyer_id} bought it (grant {grant['grant_id']}); "
                  f"SM4/SM2 delivery of {len(opened.readings)} readings decrypted, every "
                  "signature and their one leaf-set proof verified, content hash matches "
                  "the listing")
    owner.call("POST", f"/v1/market/grants/{grant['grant_id']}/revoke",
               json={"reason": "demo: contract ended"})
    refused = buyer.call("GET", f"/v1/market/grants/{grant['grant_id']}/delivery",
                         expect=(410,))
    out.after_revocation = f"410 {refused['code']}"
    trail = owner.call("GET", f"/v1/market/datasets/{out.dataset}/accesses")
    out.accesses = len(trail)
    console.print(f"  revoked: the next delivery is {out.after_revocation}; the trail holds "
                  f"{' → '.join(e['kind'] for e in trail)}, each a log leaf")


def evidence_step(console: Console, ledger: Ledger, data_dir: Path, enterprise: str,
                  period: Period, out: PartiesSummary) -> None:
    """The regulator exports the month's evidence bundle (one file: readings, proofs,
    heads, anchors, rules, inventories, report, attestations, codes, market records),
    checks it as a stranger would, then changes one digit of one reading in a copy and
    shows the first step that catches it."""
    from carbon_protocol.evidence import EvidenceBundle, verify_evidence
    from carbon_rules.evidence_check import RulesRecomputer

    from .evidence import export_evidence, write_evidence

    bundle = export_evidence(ledger, enterprise, period)
    out.evidence_path = data_dir / f"evidence-{period.label}.json.gz"
    size = write_evidence(bundle, out.evidence_path)
    out.evidence_size_mb = size / 2**20
    console.print(f"  {len(bundle.readings.indices):,} readings, {len(bundle.inventories)} "
                  f"inventories, {len(bundle.reports)} report(s), {len(bundle.records)} log "
                  f"records, {len(bundle.heads)} anchored heads → {out.evidence_path} "
                  f"({out.evidence_size_mb:.1f} MiB)")
    chain = ClientChainView(ledger.chain)
    rules = RulesRecomputer(lambda _chain_id, _address: ledger.rules())
    report = verify_evidence(bundle, chain=chain, recomputer=rules)
    failed = report.first_failure
    if failed is not None:
        raise DemoStepError(f"the evidence bundle does not verify: {report.summary()}")
    out.evidence_steps = sum(s.status == "pass" for s in report.steps)
    console.print(f"  [green]✓[/] {report.summary()}")
    raw = bundle.model_dump(mode="json")
    reading = raw["readings"]["readings"][len(raw["readings"]["readings"]) // 2]["reading"]
    value = reading["value"]
    reading["value"] = ("9" if value[0] != "9" else "8") + value[1:]
    tampered = verify_evidence(EvidenceBundle.model_validate(raw), chain=chain,
                               recomputer=rules)
    caught = tampered.first_failure
    if caught is None:
        raise DemoStepError("a changed reading in the evidence bundle was not caught")
    out.evidence_tamper_step = f"{caught.number}. {caught.name}"
    console.print(f"  one reading's value {value} → {reading['value']} in a copy: "
                  f"[bold red]✗[/] {tampered.summary()}")
