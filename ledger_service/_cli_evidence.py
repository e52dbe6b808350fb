"""``carbon-ledger export-evidence`` and the evidence half of ``carbon-ledger verify``.

``verify`` reads a file, sniffs its ``format`` and hands an evidence bundle here; the
single-reading proof bundle stays with :mod:`ledger_service._cli`. Files ending in
``.gz`` (or starting with gzip's magic bytes) are decompressed first.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from carbon_protocol.errors import ProtocolError

from .errors import LedgerError

__all__ = ["export_evidence_command", "read_bundle_file", "verify_evidence_file"]

console = Console(stderr=True, soft_wrap=True)
_STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]",
          "not-checked": "[yellow]not checked[/]"}


def _fail(code: str, message: str, exit_code: int = 1) -> None:
    console.print(f"[bold red]error[/] {escape(f'[{code}]')} {escape(message)}")
    raise typer.Exit(exit_code)


def read_bundle_file(path: Path) -> tuple[bytes, Any]:
    """The file's JSON bytes (gunzipped if need be) and its ``format`` field."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail("unreadable", f"cannot read {path}: {exc}", 2)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            _fail("malformed_bundle", f"step 0 (parse) failed: {path} is damaged gzip: {exc}")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        _fail("malformed_bundle", f"step 0 (parse) failed: not JSON: {exc}")
    return data, doc.get("format") if isinstance(doc, dict) else None


def export_evidence_command(
    enterprise: Annotated[str, typer.Option(help="the enterprise's identifier")],
    period: Annotated[str, typer.Option(help="2026, 2026-Q1, 2026-01 or 2026-01-05 (UTC)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write (.json or .json.gz)")],
) -> None:
    """Write the offline evidence bundle of an enterprise for a period (everything from
    its readings to its reports, records and anchors, with every proof)."""
    from .evidence import export_evidence, write_evidence
    from .ledger import Ledger

    try:
        bundle = export_evidence(Ledger.open(rules=True), enterprise, period)
    except (LedgerError, ProtocolError) as exc:
        diag = exc.diagnostics()
        _fail(str(diag.get("code")), str(diag.get("message")))
    size = write_evidence(bundle, out)
    console.print(f"wrote {out} ({size:,} bytes): {len(bundle.readings.indices):,} readings, "
                  f"{len(bundle.inventories)} inventories, {len(bundle.reports)} reports, "
                  f"{len(bundle.records)} log records, {len(bundle.heads)} anchored heads",
                  highlight=False)


def verify_evidence_file(data: bytes, rpc: str | None, min_confirmations: int) -> None:
    """Verify an evidence bundle's bytes, print the step table, exit 1 on a failure."""
    from carbon_protocol.chain_view import JsonRpcChainView
    from carbon_protocol.evidence import EVIDENCE_STEPS, EvidenceBundle, verify_evidence
    from carbon_rules.evidence_check import RulesRecomputer, registry_over_rpc

    try:
        bundle = EvidenceBundle.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        _fail("malformed_bundle", f"step 0 (parse) failed: {loc}: {first['msg']}")
    with console.status("verifying") as status:
        report = verify_evidence(
            bundle, chain=JsonRpcChainView(rpc) if rpc else None,
            recomputer=RulesRecomputer(registry_over_rpc(rpc) if rpc else None),
            min_confirmations=min_confirmations,
            on_step=lambda number, name: status.update(
                f"step {number} of {len(EVIDENCE_STEPS)}: {name} "
                f"({len(bundle.readings.indices):,} readings)"))
    table = Table(title=f"evidence of {bundle.enterprise} for {bundle.period.label}")
    for column in ("step", "check", "result", "detail"):
        table.add_column(column)
    for s in report.steps:
        detail = s.detail + (f" (expected {s.expected}, found {s.found})"
                             if s.expected is not None or s.found is not None else "")
        table.add_row(str(s.number), s.name, _STYLE[s.status], escape(detail))
    console.print(table)
    for note in report.notes:
        console.print(f"  note: {escape(note)}")
    failure = report.first_failure
    if failure is not None:
        _fail("bundle_verification_failed", report.summary())
    console.print(f"[bold green]{escape(report.summary())}[/]: "
                  f"{len(bundle.readings.indices):,} readings, {len(bundle.inventories)} "
                  f"inventories, {len(bundle.reports)} reports, {len(bundle.records)} records "
                  f"against tree size {bundle.heads[-1].anchor.tree_size} anchored in block "
                  f"{bundle.heads[-1].anchor.block_number}")
