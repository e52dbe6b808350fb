"""Prometheus metrics of the ledger service, in one registry.

Counters and histograms are module-level so any part of the service can record
without passing objects around; ``/metrics`` exposes :data:`REGISTRY`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["REGISTRY", "READINGS", "INGEST_SECONDS", "ANCHOR_LATENCY", "RPC_ERRORS"]

REGISTRY = CollectorRegistry(auto_describe=True)

READINGS = Counter(
    "carbon_ledger_readings", "Readings by ingest outcome", ["status"], registry=REGISTRY)
INGEST_SECONDS = Histogram(
    "carbon_ledger_ingest_batch_seconds", "Time to ingest one batch", registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ANCHOR_LATENCY = Histogram(
    "carbon_ledger_anchor_latency_seconds",
    "From signing an anchor transaction to the anchor becoming final", registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
RPC_ERRORS = Counter(
    "carbon_ledger_rpc_errors", "Chain JSON-RPC calls that failed", ["action"],
    registry=REGISTRY)
