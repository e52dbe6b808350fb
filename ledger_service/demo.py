"""``carbon-ledger demo``: the whole trust chain on the embedded default, in one process.

An enterprise with three sites, one gateway each (two on the national ``sm`` suite, one
on ``intl``), 24 meters of electricity, district heat and natural gas (gas behind volume
correctors, in Nm3, is inventoried as scope 1 combustion; the heat plant's one line meter
in m3 at line conditions is left out, and the report says so); a month of 15-minute
readings signed at the gateways, kept in their durable outboxes and delivered over the
ledger's real HTTP API (in-process ASGI); tree heads anchored on the in-process EVM; each
gateway's monthly inventory computed with the rule version the chain's RuleRegistry has
in force, signed, recomputed and logged by the ledger, anchored, and one verified from
its proven readings and the contract; the regulator's annual quota issued on the ledger's
``QuotaRegistry``, the month's report (GB/T 32151 / ISO 14064-1 JSON and PDF with charts
and a QR code of its proof link) built from the anchored inventories with the month
reconciled against the quota, its bytes appended to the log, anchored and proven. Then
the parties who read it (:mod:`.demo_parties`), each through the HTTP API with a key of
its own role: a verifier samples every inventory by a block hash and signs attestations,
the regulator views every enterprise, a bank grades the period and checks its signed
financing code offline, a buyer buys a week of one meter (delivered encrypted with its
proofs) until the owner revokes, and the regulator's evidence bundle for the period is
checked end to end and caught with one digit changed. Last, one proof bundle exported and
verified step by step, including the on-chain look-up; then one byte of a stored reading
changed and the same verification shown failing at the step that catches it.

The month is January: a reconciliation runs over the compliance year's months from
January, and the demo has only the one month it simulates.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import func, select, update

from carbon_protocol.errors import BundleVerificationError
from carbon_protocol.inventory import Period
from carbon_protocol.models import ProofBundle
from carbon_protocol.verify import STEPS, verify_bundle
from node_gateway.gateway import DeviceSpec, Gateway, Organisation
from node_gateway.outbox import RecordResult
from node_gateway.uploader import HttpTransport
from node_gateway.uploader import Progress as FlushProgress

from ._internal.chain_view_adapter import ClientChainView
from ._internal.db import anchors, readings
from .api import create_app
from .auth import KeyCreate, Role, create_key
from .demo_parties import PartiesSummary
from .ledger import Ledger
from .settings import Settings

__all__ = ["DemoSummary", "run_demo"]

PREFIX = "86.1000.1"
ENTERPRISE = f"{PREFIX}/ent.liaoning-steel"
SITES = (("north-mill", "sm"), ("south-mill", "sm"), ("heat-plant", "intl"))
QUOTA = "48000"
"""The demo enterprise's annual quota (tCO2e), issued by the regulator on chain."""
OUTPUT_TONNES_PER_DAY = 80
"""Crude steel the demo enterprise declares per day, for its carbon intensity."""
MILL_FLEET = (("electricity", 4), ("gas_corrected", 2), ("heat", 2))
FLEETS = {"north-mill": MILL_FLEET, "south-mill": MILL_FLEET,
          "heat-plant": (("electricity", 4), ("gas_corrected", 1), ("gas", 1), ("heat", 2))}
"""Meters per site (8 each, 24 in all). The mills' gas meters have volume correctors and
report Nm3, which inventories account as natural gas combustion (scope 1); the heat
plant keeps one plain line meter in m3 (a canteen line without a corrector), which its
inventory leaves out rather than guess a pressure and temperature correction."""


@dataclass
class DemoSummary:
    """What the demo did and found; the CLI prints it, the tests assert on it."""

    sites: int = 0
    meters: int = 0
    recorded: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    tree_size: int = 0
    anchors: int = 0
    final_anchors: int = 0
    anchor_gas: int = 0
    """Gas of all final anchors together."""
    bundle_path: Path | None = None
    verified_steps: list[str] = field(default_factory=list)
    tamper_step: str | None = None
    tamper_message: str | None = None
    inventories: dict[str, str] = field(default_factory=dict)
    """Gateway -> total emissions (tCO2e) of its accepted inventory."""
    inventory_anchor: str | None = None
    inventory_verified_lines: int = 0
    total_emissions: str | None = None
    """The report's total (tCO2e): every gateway's inventory of the period."""
    quota: str | None = None
    """The annual quota in force (tCO2e) and where it came from."""
    reconciliation: str | None = None
    """Emissions to date, forecast and surplus/deficit, if the period is a month."""
    report_id: str | None = None
    report_hash: str | None = None
    report_leaf: int | None = None
    report_anchor: str | None = None
    report_proven: bool = False
    """The report's leaf verified against the anchored root with its inclusion proof."""
    report_pdf: Path | None = None
    parties: PartiesSummary = field(default_factory=PartiesSummary)
    """What the verifier, regulator, bank and buyer did (steps 6 to 9)."""
    seconds: float = 0.0


def _gateway_keys(ledger: Ledger) -> dict[str, str]:
    """A new API key for each site's gateway, scoped to the demo enterprise."""
    with ledger.engine.begin() as conn:
        return {site: create_key(conn, KeyCreate(
            role=Role.GATEWAY, enterprises=[ENTERPRISE], label=f"demo gateway {site}")).api_key
            for site, _ in SITES}


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def run_demo(data_dir: Path, *, days: int = 31, console: Console | None = None,
             start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> DemoSummary:
    """Run the demo in ``data_dir`` (wiped first) and return its summary."""

    console = console or Console(stderr=True)
    began = time.perf_counter()
    summary = DemoSummary()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    ledger = Ledger.open(Settings(data_dir=data_dir / "ledger", prefix=PREFIX,
                                  log_id=f"{PREFIX}/log.main", log_suite="sm",
                                  anchor_every_leaves=5_000), rules=True)
    app = create_app(ledger)
    api_keys = _gateway_keys(ledger)
    console.rule("[bold]1. registry: enterprise, sites, gateways, meters")
    gateways: list[Gateway] = []
    for site, suite in SITES:
        gw = Gateway(data_dir / f"gateway-{site}",
                     transport=HttpTransport.for_app(app, api_key=api_keys[site]),
                     suite=suite)  # type: ignore[arg-type]
        site_id = f"{PREFIX}/site.{site}"
        gw.ensure_organisation(Organisation(
            ENTERPRISE, "Liaoning Demo Steel Co.", site_id, site, "Liaoning",
            f"{PREFIX}/gw.{site}", f"gateway {site}"))
        for kind, count in FLEETS[site]:
            for n in range(1, count + 1):
                label = kind.replace("_", "-")  # identifiers have no underscores
                gw.provision(DeviceSpec.for_kind(f"{PREFIX}/dev.{site}.{label}-{n:02d}",
                                                 kind, site_id))  # type: ignore[arg-type]
                summary.meters += 1
        gateways.append(gw)
        summary.sites += 1
        console.print(f"  site {site_id}: gateway {PREFIX}/gw.{site} ({suite} suite), "
                      f"{sum(c for _, c in FLEETS[site])} meters")

    console.rule(f"[bold]2. gateways sign {days} days of 15-minute readings into their outboxes")
    with _progress(console) as bar:
        for site_no, gw in enumerate(gateways):
            task = bar.add_task(f"record {SITES[site_no][0]}", total=days)

            def on_day(n: int, _result: RecordResult, t: TaskID = task) -> None:
                bar.update(t, completed=n)

            res = gw.simulate(start, days, seed=site_no, on_day=on_day)
            summary.recorded += res.recorded

    console.rule("[bold]3. deliver to the ledger: verify, store once, append, anchor")
    with _progress(console) as bar:
        for site_no, gw in enumerate(gateways):
            pending = gw.status().counts["pending"]
            task = bar.add_task(f"deliver {SITES[site_no][0]}", total=pending)

            def on_progress(p: FlushProgress, t: TaskID = task) -> None:
                bar.update(t, completed=p.settled)
                ledger.anchor_tick()

            delivered = gw.flush(on_progress=on_progress)
            summary.accepted += delivered.accepted
            summary.duplicates += delivered.duplicates
            summary.rejected += delivered.rejected
    ledger.anchor_tick(force=True)
    summary.tree_size = ledger.tree_size()
    listed = ledger.anchors()
    summary.anchors = len(listed)
    summary.final_anchors = sum(a.status == "final" for a in listed)
    with ledger.reader.connect() as conn:
        summary.anchor_gas = int(conn.execute(
            select(func.sum(anchors.c.gas_used)).where(anchors.c.status == "final")
        ).scalar_one() or 0)
        device = f"{PREFIX}/dev.{SITES[0][0]}.electricity-01"
        reading_id = conn.execute(
            select(readings.c.id).where(readings.c.device_id == device)
            .order_by(readings.c.seq).offset(days * 96 // 2).limit(1)
        ).scalar_one()
    for gw in gateways:
        gw.close()
    console.print(f"  {summary.accepted:,} readings accepted into a log of "
                  f"{summary.tree_size:,} leaves; {summary.final_anchors} anchors final")

    period, inventory_ids = _inventory_step(console, ledger, app, data_dir, start, days,
                                            summary)
    _report_step(console, ledger, data_dir, period, inventory_ids, summary)
    _parties(console, ledger, app, data_dir, start, days, period, inventory_ids, summary)

    console.rule("[bold]10. export and verify one reading's proof bundle")
    bundle = ledger.export_proof(reading_id)
    summary.bundle_path = data_dir / "proof-bundle.json"
    summary.bundle_path.write_text(bundle.model_dump_json(indent=2) + "\n")
    console.print(f"  {reading_id} → {summary.bundle_path}")
    chain = ClientChainView(ledger.chain)
    report = verify_bundle(ProofBundle.model_validate_json(summary.bundle_path.read_bytes()),
                           chain=chain)
    summary.verified_steps = report.passed
    for n, step in enumerate(report.passed, 1):
        console.print(f"  [green]✓[/] {n:>2}. {step}")

    console.rule("[bold]11. tamper one byte of the stored reading, verify again")
    with ledger.engine.begin() as conn:
        data = bytearray(conn.execute(select(readings.c.leaf_data)
                                      .where(readings.c.id == reading_id)).scalar_one())
        at = data.index(b'"value":"') + len(b'"value":"')
        old = chr(data[at])
        data[at] = ord("9") if data[at] != ord("9") else ord("8")
        conn.execute(update(readings).where(readings.c.id == reading_id)
                     .values(leaf_data=bytes(data)))
    console.print(f"  changed byte {at} of the stored reading: {old!r} → {chr(data[at])!r}")
    tampered = ledger.export_proof(reading_id)
    tampered_path = data_dir / "proof-bundle-tampered.json"
    tampered_path.write_text(tampered.model_dump_json(indent=2) + "\n")
    try:
        verify_bundle(tampered, chain=chain)
    except BundleVerificationError as exc:
        summary.tamper_step = f"{exc.step}. {exc.step_name}"
        summary.tamper_message = str(exc)
        console.print(f"  [bold red]✗[/] {exc}")
    summary.seconds = time.perf_counter() - began
    ledger.engine.dispose()
    console.print(_table(summary))
    return summary


def _inventory_step(console: Console, ledger: Ledger, app: Any, data_dir: Path,
                    start: datetime, days: int, summary: DemoSummary
                    ) -> tuple[Period, list[str]]:
    """Each gateway computes its inventory for the month (or the simulated span) with
    the rule version the chain's RuleRegistry has in force, signs and submits it; the
    ledger recomputes and logs it; it is anchored; one is verified from its proven
    readings and the contract. Returns the period and the inventories' ids."""
    from carbon_protocol.models import format_utc
    from carbon_rules.inventory import period_from_label
    from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
    from carbon_rules.inventory_verify import verify_inventory
    from node_gateway import inventory as gw_inventory

    month = period_from_label(f"{start:%Y-%m}")
    end = start + timedelta(days=days)
    period = month if (format_utc(start), format_utc(end)) == (month.start, month.end) else (
        period_from_label(f"{start:%Y-%m-%d}") if days == 1 else
        Period(label=f"{start:%Y-%m-%d}+{days}d", start=format_utc(start), end=format_utc(end)))
    console.rule(f"[bold]4. inventories for {period.label}: computed and signed at the "
                 "gateways, recomputed and anchored by the ledger")
    registry = ledger.rules()  # the gateways read the chain's RuleRegistry directly
    api_keys = _gateway_keys(ledger)
    rules = None  # one machine, one chain: read once, for the three gateways
    receipts = []
    for site, suite in SITES:
        gw = Gateway(data_dir / f"gateway-{site}",
                     transport=HttpTransport.for_app(app, api_key=api_keys[site]),
                     suite=suite, gateway_id=f"{PREFIX}/gw.{site}")  # type: ignore[arg-type]
        try:
            gw_inventory.ensure_gateway_key(gw)
            rules = rules or gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY, registry)
            run = gw_inventory.compute(gw, period, rules)
            receipt = gw_inventory.submit(gw, run.signed)
        finally:
            gw.close()
        inv = run.signed.inventory
        receipts.append(receipt)
        summary.inventories[str(gw.gateway_id)] = inv.totals.total
        console.print(f"  {gw.gateway_id}: {len(inv.lines)} sources, "
                      f"{inv.quality.readings:,} readings, scope 1 {inv.totals.scope1} / "
                      f"scope 2 {inv.totals.scope2} = [bold]{inv.totals.total} tCO2e[/] "
                      f"({inv.rule.methodology_id} v{inv.rule.version})")
        for device, why in sorted(run.skipped.items()):
            # e.g. the heat plant's line meter in m3: no emission source without a
            # pressure and temperature correction to Nm3 (corrected meters are lines)
            console.print(f"    left out: {device}: {why.split(';')[0]}", highlight=False)
        console.print(f"    accepted as {receipt['inventory_id']} at leaf "
                      f"{receipt['leaf_index']:,}")
    ledger.anchor_tick(force=True)
    # The Ed25519 gateway's: every reading's signature is checked too, at 0.1 ms each
    # (an SM2 gateway's month would take half a minute more).
    checked = receipts[-1]
    proof = ledger.inventory_proof(checked["inventory_id"], with_readings=True)
    report = verify_inventory(proof, registry, chain=ClientChainView(ledger.chain))
    summary.inventory_verified_lines = len(report.on_chain)
    summary.inventory_anchor = (f"tree size {proof.anchor.tree_size:,}, block "
                                f"{proof.anchor.block_number}, tx {proof.anchor.tx_hash}")
    (data_dir / "inventory-proof.json").write_text(
        proof.model_dump_json(exclude_none=True) + "\n")
    console.print(f"  anchored: {summary.inventory_anchor}")
    console.print(f"  [green]✓[/] {checked['inventory_id']}: {report.readings:,} signed "
                  f"readings proven against the anchored root, every line recomputed offline "
                  f"and by the RuleRegistry contract ({len(report.on_chain)} lines agree) → "
                  f"{data_dir / 'inventory-proof.json'}")
    return period, [r["inventory_id"] for r in receipts]


def _report_step(console: Console, ledger: Ledger, data_dir: Path, period: Period,
                 inventory_ids: list[str], summary: DemoSummary) -> None:
    """The regulator issues the year's quota on the ledger's QuotaRegistry; the month's
    report is built from the anchored inventories (reconciled against that quota when
    the period is a calendar month), rendered as PDF, appended to the log, anchored and
    its inclusion proof checked against the anchored root."""
    from carbon_protocol import merkle
    from carbon_protocol.suites import hash_fn
    from carbon_rules.fixed_point import parse
    from carbon_rules.quotas_client import QuotaRegistryClient
    from carbon_rules.reports import Boundary, EnterpriseInfo, SiteInfo, report_bytes
    from carbon_rules.reports.pdf import render_pdf

    from . import reports
    from .quotas import default_registry, regulator_key

    year = int(period.start[:4])
    console.rule(f"[bold]5. the regulator's {year} quota on chain; {period.label}'s report "
                 "built, anchored and proven")
    registry = QuotaRegistryClient(
        ledger.rules().w3, default_registry(None, ledger.quota_registry_address),
        regulator_key(ledger.settings.data_dir))
    issued = registry.issue(ENTERPRISE, year, parse(QUOTA),
                            f"Liaoning DEE {year} allocation notice (demo)")
    console.print(f"  regulator {registry.account} issued {QUOTA} tCO2e for {year} on "
                  f"QuotaRegistry {registry.address} (tx {issued.tx_hash})")
    monthly = len(period.label) == 7  # YYYY-MM: a calendar month
    built = reports.build(ledger, reports.ReportRequest(
        enterprise=EnterpriseInfo(id=ENTERPRISE, name="Liaoning Demo Steel Co.",
                                  industry="iron and steel", address="Liaoning"),
        boundary=Boundary(sites=[SiteInfo(id=f"{PREFIX}/site.{site}", name=site)
                                 for site, _ in SITES],
                          exclusions=["scope 3 not reported",
                                      "gas metered in m3 at line conditions (no volume "
                                      "corrector to Nm3): not inventoried"]),
        period=period, inventory_ids=inventory_ids,
        quota=reports.QuotaRequest(year=year) if monthly else None,
        prepared_by="demo energy office", proof_base="http://127.0.0.1:8000/v1/reports"))[1]
    rec = built.report.quota
    summary.quota = f"{QUOTA} tCO2e ({year}, on chain)"
    if rec is not None:
        summary.reconciliation = (f"to date {rec.emissions_to_date}, forecast {rec.forecast} "
                                  f"({rec.forecast_method}): {rec.position} {rec.balance}")
        console.print(f"  {period.label}: emissions {rec.emissions_to_date} tCO2e; year-end "
                      f"forecast {rec.forecast} ({rec.forecast_method}) against the quota of "
                      f"{rec.quota.allocation} ({rec.quota.origin}): [bold]{rec.position} "
                      f"{rec.balance} tCO2e[/]")
    else:
        console.print(f"  {period.label} is not a calendar month: no reconciliation (it "
                      "runs over whole months from January)")
    summary.report_pdf = data_dir / "report.pdf"
    summary.report_pdf.write_bytes(render_pdf(built.report, ledger.settings.log_suite))
    (data_dir / "report.json").write_bytes(report_bytes(built.report))
    summary.report_id, summary.report_hash = built.report_id, built.hash
    summary.report_leaf = built.leaf_index
    summary.total_emissions = built.report.emissions.by_scope.total
    console.print(f"  report {built.report_id}: total "
                  f"{built.report.emissions.by_scope.total} tCO2e, sm3 {built.hash}, "
                  f"leaf {built.leaf_index:,} → {summary.report_pdf}")
    ledger.anchor_tick(force=True)
    proof = reports.proof(ledger, built.report_id)
    h = hash_fn(ledger.settings.log_suite)
    merkle.verify_inclusion(h, proof.leaf_index, proof.anchor.tree_size,
                            merkle.leaf_hash(h, report_bytes(proof.report)),
                            [bytes.fromhex(x) for x in proof.inclusion_proof],
                            bytes.fromhex(proof.anchor.root_hash))
    summary.report_proven = True
    summary.report_anchor = (f"tree size {proof.anchor.tree_size:,}, block "
                             f"{proof.anchor.block_number}, tx {proof.anchor.tx_hash}")
    (data_dir / "report-proof.json").write_text(proof.model_dump_json() + "\n")
    console.print(f"  [green]✓[/] leaf {proof.leaf_index:,} proven in the anchored tree "
                  f"({summary.report_anchor}) → {data_dir / 'report-proof.json'}")


def _parties(console: Console, ledger: Ledger, app: Any, data_dir: Path, start: datetime,
             days: int, period: Period, inventory_ids: list[str], summary: DemoSummary
             ) -> None:
    """Steps 6 to 9: the verifier, the regulator, the bank, a data buyer and the
    regulator's evidence bundle (:mod:`.demo_parties`)."""
    from . import demo_parties as parties

    out = summary.parties
    console.rule("[bold]6. a verifier samples every inventory by a block hash and attests")
    parties.verification_step(console, ledger, app, data_dir, ENTERPRISE, inventory_ids, out)
    console.rule(f"[bold]7. a bank grades {period.label} and takes a signed financing code")
    if period.label.count("-") in (1, 2) and "+" not in period.label:
        parties.finance_step(console, ledger, app, data_dir, ENTERPRISE, "iron and steel",
                             period, str(OUTPUT_TONNES_PER_DAY * days), out)
    else:
        console.print(f"  {period.label} is not a calendar month or day: no grade")
    console.rule("[bold]8. the data window: a buyer buys a week of one meter; access revoked")
    parties.market_step(console, ledger, app, data_dir, ENTERPRISE,
                        f"{PREFIX}/dev.{SITES[0][0]}.electricity-01", start, out)
    ledger.anchor_tick(force=True)  # the market's records, like every leaf, get anchored
    console.rule(f"[bold]9. the regulator's evidence bundle for {period.label}, checked "
                 "offline; one digit changed")
    parties.evidence_step(console, ledger, data_dir, ENTERPRISE, period, out)


def _table(s: DemoSummary) -> Table:
    p = s.parties
    t = Table(title="carbon-ledger demo", show_header=False, title_style="bold")
    t.add_column(style="cyan")
    t.add_column(justify="right")
    rows = [
        ("enterprise / sites / meters", f"1 / {s.sites} / {s.meters}"),
        ("readings signed at the gateways", f"{s.recorded:,}"),
        ("accepted / duplicates / rejected", f"{s.accepted:,} / {s.duplicates:,} / {s.rejected:,}"),
        ("Merkle log (SM3) size", f"{s.tree_size:,}"),
        ("anchors (final / total)", f"{s.final_anchors} / {s.anchors}"),
        ("gas per anchor (mean)", f"{s.anchor_gas // max(s.final_anchors, 1):,}"),
        ("gas per reading", f"{s.anchor_gas / max(s.tree_size, 1):.2f}"),
        ("proof bundle", "verified: " + f"{len(s.verified_steps)}/{len(STEPS)} steps"
         if s.verified_steps else "not verified"),
        ("inventories (tCO2e per gateway)", ", ".join(s.inventories.values()) or "none"),
        ("inventory verified on chain", f"{s.inventory_verified_lines} lines"),
        ("total emissions (tCO2e)", s.total_emissions or "-"),
        ("quota", s.quota or "none"),
        ("reconciliation", s.reconciliation or "none (not a calendar month)"),
        ("report", s.report_id or "none"),
        ("report hash (SM3)", s.report_hash or "-"),
        ("report leaf / anchor", f"{s.report_leaf:,} / {s.report_anchor}"
         if s.report_leaf is not None else "-"),
        ("report proven", "yes" if s.report_proven else "NO"),
        ("report PDF", str(s.report_pdf or "-")),
        ("verifications attested", f"{len(p.attested)} ({p.sampled} sampled readings)"),
        ("regulator's view", p.regulator_view or "-"),
        ("green grade", p.grade or "-"),
        ("integrity code", p.integrity or "-"),
        ("financing code (QR)", f"{p.code_path} (verified offline)" if p.code_verified
         else "-"),
        ("data sold / after revocation", f"{p.delivered} readings / {p.after_revocation}"
         if p.dataset else "-"),
        ("market trail (log leaves)", str(p.accesses)),
        ("evidence bundle", f"{p.evidence_path} ({p.evidence_size_mb:.1f} MiB): "
         f"{p.evidence_steps} steps pass" if p.evidence_path else "-"),
        ("evidence, one digit changed", f"caught at step {p.evidence_tamper_step}"
         if p.evidence_tamper_step else "NOT caught"),
        ("tampered reading", f"caught at step {s.tamper_step}" if s.tamper_step else "NOT caught"),
        ("time", f"{s.seconds:.1f} s"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t
