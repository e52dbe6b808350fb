"""Size and time of one enterprise's evidence bundle for the demo month.

The demo's month (``carbon-ledger demo``: 3 gateways, 24 meters, 31 days of 15-minute
readings, three gateway-signed inventories, the month's report, every leaf anchored on
the in-process EVM) is what a regulator would export for January. Measured here:

* ``evidence_export_seconds``: :func:`ledger_service.evidence.export_evidence` against
  the latest final anchor (readings and their leaf-set proof, inventories, report,
  records, heads and consistency proofs), on SQLite;
* ``evidence_json_bytes`` / ``evidence_gzip_bytes``: the file as ``export-evidence``
  writes it, compact JSON and ``.json.gz``;
* ``evidence_verify_seconds``: :func:`carbon_protocol.evidence.verify_evidence` with
  the rules recomputer (every reading's signature, SM2 for two gateways and Ed25519 for
  one, the leaf-set proof, each inventory recomputed, the report rebuilt), no chain
  look-up; the bundle must verify.

The demo ends by changing one byte of a stored reading (to show a failing proof); the
benchmark puts the byte back first, finding it by the leaf hash the log still holds, so
the bundle is the month as it was anchored. The demo itself (about two minutes here) is
set-up and is not measured.

Run: ``python -m benchmarks.evidence_bundle [DAYS]`` (default 31), or
``python -m benchmarks.run --only evidence`` (``--quick``: 2 days); JSON lines on stdout.

Measured on this 2-core machine (2026-11-24), the 31-day demo month: 68,448 readings in
the bundle (the 23 meters the inventories use; the heat plant's one raw m3 gas meter is
left out), 3 inventories, 1 report, 17 log records, 25 anchored heads, 2,977 leaf-set
proof hashes; export 2.4 s, 40.9 MB of JSON (8.5 MB gzipped), parse 2.9 s, verify 15.2 s
(two thirds of the signatures SM2), peak RSS 911 MiB.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select, update

from benchmarks._common import check, emit, log, peak_rss_mb
from carbon_protocol.evidence import EvidenceBundle, verify_evidence
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.suites import hash_fn
from carbon_rules.evidence_check import RulesRecomputer
from ledger_service._internal.db import readings
from ledger_service.demo import ENTERPRISE, run_demo
from ledger_service.evidence import export_evidence, write_evidence
from ledger_service.ledger import Ledger

SUITE = "sm"


def _restore_tampered(ledger: Ledger) -> int:
    """Put back the one byte the demo changed; return how many readings were fixed."""
    h = hash_fn(SUITE)
    fixed = 0
    with ledger.engine.begin() as conn:
        for row in conn.execute(select(readings.c.id, readings.c.leaf_data, readings.c.leaf_hash)):
            data = bytes(row.leaf_data)
            if leaf_hash(h, data) == bytes(row.leaf_hash):
                continue
            at = data.index(b'"value":"') + len(b'"value":"')
            for digit in b"0123456789":
                candidate = data[:at] + bytes([digit]) + data[at + 1:]
                if leaf_hash(h, candidate) == bytes(row.leaf_hash):
                    conn.execute(update(readings).where(readings.c.id == row.id)
                                 .values(leaf_data=candidate))
                    fixed += 1
                    break
    return fixed


def _demo_ledger(data_dir: Path, days: int) -> Ledger:
    """Run the demo and keep its ledger: its chain is the in-process EVM, which lives as
    long as the ledger object (a ledger reopened on the same files would get a new chain
    without the anchors). The demo disposes of the engine's pool at the end, which only
    closes pooled connections; the engine opens new ones on use."""
    opened: list[Ledger] = []
    original = Ledger.__dict__["open"]

    def keep(cls: type[Ledger], *args: Any, **kwargs: Any) -> Ledger:
        led: Ledger = original.__func__(cls, *args, **kwargs)
        opened.append(led)
        return led

    Ledger.open = classmethod(keep)  # type: ignore[method-assign, assignment]
    try:
        run_demo(data_dir, days=days, console=Console(stderr=True, quiet=True))
    finally:
        Ledger.open = original  # type: ignore[method-assign]
    check(len(opened) == 1, f"the demo opened {len(opened)} ledgers")
    return opened[0]


def main(days: int = 31) -> None:
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as tmp:
        data_dir = Path(tmp) / "demo"
        began = time.perf_counter()
        ledger = _demo_ledger(data_dir, days)
        log(f"demo month set up in {time.perf_counter() - began:.0f} s")
        try:
            check(_restore_tampered(ledger) == 1, "the demo's tampered reading was not found")
            t0 = time.perf_counter()
            bundle = export_evidence(ledger, ENTERPRISE, "2026-01")
            export_s = time.perf_counter() - t0
            context = {"days": days, "readings": len(bundle.readings.indices),
                       "inventories": len(bundle.inventories), "reports": len(bundle.reports),
                       "records": len(bundle.records), "heads": len(bundle.heads),
                       "proof_hashes": len(bundle.readings.proof)}
            plain, packed = Path(tmp) / "evidence.json", Path(tmp) / "evidence.json.gz"
            t0 = time.perf_counter()
            json_bytes = write_evidence(bundle, plain)
            write_s = time.perf_counter() - t0
            gzip_bytes = write_evidence(bundle, packed)
            t0 = time.perf_counter()
            parsed = EvidenceBundle.model_validate_json(gzip.decompress(packed.read_bytes()))
            parse_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = verify_evidence(parsed, recomputer=RulesRecomputer())
            verify_s = time.perf_counter() - t0
            check(report.ok and report.steps[12].status == "pass", report.summary())
            check(context["readings"] > 50_000 or days < 31, f"only {context['readings']} "
                  "readings in the month's bundle")
        finally:
            ledger.engine.dispose()
    emit("evidence_export_seconds", SUITE, export_s, "s", **context)
    emit("evidence_json_bytes", SUITE, json_bytes, "B", write_seconds=round(write_s, 2),
         **context)
    emit("evidence_gzip_bytes", SUITE, gzip_bytes, "B", **context)
    emit("evidence_parse_seconds", SUITE, parse_s, "s", **context)
    emit("evidence_verify_seconds", SUITE, verify_s, "s", **context)
    emit("evidence_peak_rss_mb", SUITE, peak_rss_mb(), "MiB", **context)


def run(suites: list[str], quick: bool) -> None:
    """Entry point for :mod:`benchmarks.run` (the demo's log is ``sm``)."""
    if "sm" in suites:
        main(2 if quick else 31)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 31)
