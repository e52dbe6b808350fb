"""Run the benchmarks; print one JSON object per result line on stdout.

    .venv/bin/python -m benchmarks.run                  # everything, full sizes
    .venv/bin/python -m benchmarks.run --quick          # smaller sizes, a smoke run
    .venv/bin/python -m benchmarks.run --only ingest,anchor --suites intl

Progress and notes go to stderr. Any result that is not real (a reading refused, a
proof or bundle that does not verify) stops the run with a non-zero exit status.
See ``benchmarks/README.md`` for what each metric means.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    access_check,
    anchor,
    anchor_latency,
    burst,
    evidence_bundle,
    ingest,
    ingest_postgres,
    inventory_scale,
    market_delivery,
    market_gas,
    proofs,
    resolver,
    rule_gas,
)
from benchmarks._common import BenchmarkFailure, log

BENCHMARKS: dict[str, Callable[[list[str], bool], None]] = {
    "ingest": ingest.run,  # verify_per_s, ingest_readings_per_s, ratio, peak RSS
    "anchor": anchor.run,  # anchor_gas, anchor_gas_first, anchor_gas_per_reading
    "proofs": proofs.run,  # build_seconds, inclusion_proof_ms, export/verify_bundle_ms
    "resolver": resolver.run,  # resolutions_per_s (in-process, HTTP), custody_walk_s
    "rule_gas": rule_gas.run,  # rule_gas_<formula>[_per_line], publish and deploy gas
    "market_gas": market_gas.run,  # market_gas_{deploy,list,grant,sale,revoke}
    "market_delivery": market_delivery.run,  # market_delivery_{build,open}_seconds, _bytes, MiB
    "anchor_latency": anchor_latency.run,  # anchor_latency_s p50/p99 on anvil (block time 1)
    "ingest_pg": ingest_postgres.run,  # ingest_readings_per_s, 1 and 2 processes, scaling
    "burst": burst.run,  # burst_latency_ms p50/p99, 10,000 single-reading POSTs, 200 in flight
    "inventory_scale": inventory_scale.run,  # inventory_35m_seconds, _peak_rss_mib (35M readings)
    "evidence": evidence_bundle.run,  # evidence_{export,parse,verify}_seconds, _json/_gzip_bytes
    "access_check": access_check.run,  # access_check_{single,unscoped}_us, _batch_ms (500 devices)
}
SUITES = ("sm", "intl")


def _names(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=lambda t: _names(t, tuple(BENCHMARKS), "benchmark"),
                        default=list(BENCHMARKS),
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--suites", type=lambda t: _names(t, SUITES, "suite"),
                        default=list(SUITES), help="comma-separated subset of: sm, intl")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (5,000 readings, 100,000 leaves) for a smoke run")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        for name in args.only:
            BENCHMARKS[name](args.suites, args.quick)
    except BenchmarkFailure as exc:
        log(f"FAILED: {exc}")
        return 1
    log(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
