"""Inventory reports in the structure of GB/T 32151 and ISO 14064-1: canonical JSON
(:mod:`.structure`, whose hash is anchored) and a PDF with charts and a proof QR code
(:mod:`.pdf`, :mod:`.charts`), and the stranger's check that a report rebuilds from
its inventories' proofs (:mod:`.verify`)."""

from __future__ import annotations

from .structure import (
    REPORT_FORMAT,
    Boundary,
    EnterpriseInfo,
    InventoryReport,
    LoggedInventory,
    ReportInput,
    SiteInfo,
    build_report,
    proof_link,
    report_bytes,
    report_hash,
    report_id,
)

__all__ = [
    "REPORT_FORMAT",
    "Boundary",
    "EnterpriseInfo",
    "InventoryReport",
    "LoggedInventory",
    "ReportInput",
    "SiteInfo",
    "build_report",
    "proof_link",
    "report_bytes",
    "report_hash",
    "report_id",
]
