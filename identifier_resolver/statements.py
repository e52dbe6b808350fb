"""Reports, attestations and data grants as custody records (what the ledger said of its data).

The bridge (:mod:`identifier_resolver.bridge`) scans the ledger's log window by window;
for each window ``[start, end)`` this module turns the statements whose leaf lies in it
into record specs, so a regulator walking custody from a meter's readings up meets
everything that was built on them, and walking down from a report reaches the readings:

===========  ===============================  ============================================
type         identifier                       links (hash, data)
===========  ===============================  ============================================
report       the report id (``<p>/rpt.…``)    summarises → each inventory the report names
                                              (hash: the report's hash; period, total)
attestation  ``<p>/att.<verification sfx>``   attests → the attested inventory
                                              (hash: the record's leaf hash; verdict,
                                              verifier, verification id, log record id)
grant        the grant id (``<p>/dg.…``)      grants_access_to → the reading ranges of the
                                              dataset's readings (hash: the leaf hash;
                                              buyer, purpose hash, expiry, kind)
===========  ===============================  ============================================

A ``data_revocation`` in the window is returned as a :class:`Revocation`; the bridge
makes it the grant record's final version (status ``deactivated``, the revocation in
its data and reason), so resolving a revoked grant answers 410 with its history.

Documents are read as JSON, field by field, never through a model: the record *kind*
and the fields every version of a document carries are all that is relied on, so a
document format that gains a field (or changes its ``type`` tag for ``format``) is still
registered. A document too damaged to name what it links to is left out and named in
:attr:`WindowStatements.unreadable`.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from carbon_protocol.identifiers import is_identifier
from carbon_protocol.suites import SuiteName

from ._internal.specs import Spec, hash_alg, suffixed
from .models import HashRef, Link

__all__ = ["Revocation", "WindowStatements", "window_statements", "attestation_id",
           "range_id"]

MAX_LINKS = 50_000
"""A record's link limit (``models.Record``): past it, a grant links the meters instead."""

_TEXT = 4096


def range_id(log_id: str, device_id: str, start: int, end: int) -> str:
    """The identifier of a device's readings with leaf index in ``[start, end)``."""
    return suffixed(log_id.partition("/")[0], "rr", device_id.partition("/")[2],
                    f".{start}-{end}")


def attestation_id(verification_id: str) -> str:
    """The identifier of a verification's attestation: ``<prefix>/att.<its suffix>``.

    The ledger's log record id (``<verification id>/attestation``) has a second ``/``,
    which the identifier grammar does not allow; the record keeps it in ``data``."""
    prefix, _, suffix = verification_id.partition("/")
    return suffixed(prefix, "att", suffix)


@dataclass(frozen=True)
class Revocation:
    """A ``data_revocation`` logged in the window: which grant, when, why."""

    grant: str
    record_id: str
    revoked_at: str | None
    reason: str
    leaf_index: int
    leaf_hash: str


@dataclass
class WindowStatements:
    """What one window's statements call for, in registration order."""

    specs: list[Spec] = field(default_factory=list)
    """Reports, then attestations, then grants."""
    revocations: list[Revocation] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """Ids of statements whose document does not say what they link to."""


def _text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value[:_TEXT] if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _data(**values: Any) -> dict[str, Any]:
    """Record data without the values a document did not carry."""
    return {k: v for k, v in values.items() if v is not None}


def _loads(raw: Any) -> dict[str, Any] | None:
    try:
        doc = json.loads(bytes(raw))
    except (ValueError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def window_statements(conn: Any, tables: Any, *, log_id: str, suite: SuiteName, start: int,
                      end: int, windows: Sequence[tuple[int, int]]) -> WindowStatements:
    """The records for the reports, attestations and grants logged at leaves
    ``[start, end)``, and the revocations logged there; ``windows`` are every window
    ``[a, b)`` of the log known so far (a grant links the reading ranges of all of them
    that hold its dataset's readings)."""
    out = WindowStatements()
    _reports(conn, tables, out, log_id, suite, start, end)
    records = tables.log_records
    rows = conn.execute(select(records).where(
        records.c.leaf_index >= start, records.c.leaf_index < end,
        records.c.kind.in_(("attestation", "data_grant", "data_revocation")))
        .order_by(records.c.leaf_index)).mappings().all()
    for kind in ("attestation", "data_grant", "data_revocation"):
        for row in rows:
            if row["kind"] != kind:
                continue
            doc = _loads(row["leaf_data"])
            base = {"log_id": log_id, "leaf_index": int(row["leaf_index"]),
                    "record_id": str(row["id"])[:_TEXT]}
            if kind == "attestation":
                spec = None if doc is None else _attestation(row, doc, base, suite)
            elif kind == "data_grant":
                spec = None if doc is None else _grant(conn, tables, row, doc, base, suite,
                                                       log_id, windows)
            else:
                grant = None if doc is None else _text(doc, "grant")
                if doc is not None and grant is not None and is_identifier(grant):
                    out.revocations.append(Revocation(
                        grant=grant, record_id=str(row["id"]),
                        revoked_at=_text(doc, "revoked_at"),
                        reason=_text(doc, "reason") or "", leaf_index=int(row["leaf_index"]),
                        leaf_hash=bytes(row["leaf_hash"]).hex()))
                    continue
                spec = None
            if spec is None:
                out.unreadable.append(str(row["id"]))
            else:
                out.specs.append(spec)
    return out


def _reports(conn: Any, tables: Any, out: WindowStatements, log_id: str, suite: SuiteName,
             start: int, end: int) -> None:
    rep = tables.reports
    for row in conn.execute(select(rep).where(rep.c.leaf_index >= start, rep.c.leaf_index < end)
                            .order_by(rep.c.leaf_index)).mappings():
        doc = _loads(row["leaf_data"])
        named = doc.get("anchors") if doc is not None else None
        inventories = [str(a["inventory"]) for a in named or ()
                       if isinstance(a, dict) and isinstance(a.get("inventory"), str)
                       and is_identifier(a["inventory"])] if isinstance(named, list) else []
        if doc is None or not inventories or not is_identifier(str(row["id"])):
            out.unreadable.append(str(row["id"]))
            continue
        period = doc.get("reporting_period")
        period = period if isinstance(period, dict) else {}
        emissions = doc.get("emissions")
        scopes = emissions.get("by_scope") if isinstance(emissions, dict) else None
        out.specs.append(Spec(
            str(row["id"]), "report", str(row["enterprise_id"]),
            hash=HashRef(alg=hash_alg(suite), value=bytes(row["report_hash"]).hex()),
            links=[Link(rel="summarises", target=i) for i in dict.fromkeys(inventories)],
            data=_data(format=_text(doc, "format"), enterprise=str(row["enterprise_id"]),
                       period=str(row["period_label"]), period_start=_text(period, "start"),
                       period_end=_text(period, "end"),
                       total=_text(scopes, "total") if isinstance(scopes, dict) else None,
                       inventories=len(dict.fromkeys(inventories)),
                       prepared_by=_text(doc, "prepared_by"), log_id=log_id,
                       leaf_index=int(row["leaf_index"]),
                       leaf_hash=bytes(row["leaf_hash"]).hex())))


def _attestation(row: Mapping[str, Any], doc: Mapping[str, Any], base: dict[str, Any],
                 suite: SuiteName) -> Spec | None:
    att = doc.get("attestation")
    if not isinstance(att, dict):
        return None
    vid, verifier = _text(att, "verification_id"), _text(att, "verifier")
    inventory = _text(att, "inventory_id")
    if not (vid and verifier and inventory and is_identifier(vid) and is_identifier(verifier)
            and is_identifier(inventory)):
        return None
    period = att.get("period")
    sampled = att.get("sampled_leaves")
    findings = att.get("findings")
    return Spec(
        attestation_id(vid), "attestation", verifier,
        hash=HashRef(alg=hash_alg(suite), value=bytes(row["leaf_hash"]).hex()),
        links=[Link(rel="attests", target=inventory)],
        data=_data(verdict=_text(att, "verdict"), verifier=verifier, verification=vid,
                   enterprise=_text(att, "enterprise"), inventory=inventory,
                   inventory_leaf_hash=_text(att, "inventory_leaf_hash"),
                   period=_text(period, "label") if isinstance(period, dict) else None,
                   key_id=_text(att, "key_id"), suite=_text(att, "suite"),
                   sampled=len(sampled) if isinstance(sampled, list) else None,
                   findings=len(findings) if isinstance(findings, list) else None, **base))


def _grant(conn: Any, tables: Any, row: Mapping[str, Any], doc: Mapping[str, Any],
           base: dict[str, Any], suite: SuiteName, log_id: str,
           windows: Sequence[tuple[int, int]]) -> Spec | None:
    grant, dataset = _text(doc, "grant") or str(row["id"]), _text(doc, "dataset")
    if not is_identifier(grant) or not dataset:
        return None
    targets = _dataset_ranges(conn, tables, dataset, log_id, windows)
    if targets is None:
        return None
    owner = _text(doc, "owner") or str(row["enterprise_id"])
    return Spec(
        grant, "grant", owner if is_identifier(owner) else str(row["enterprise_id"]),
        hash=HashRef(alg=hash_alg(suite), value=bytes(row["leaf_hash"]).hex()),
        links=[Link(rel="grants_access_to", target=t) for t in targets],
        data=_data(state="granted", dataset=dataset, request=_text(doc, "request"),
                   buyer=_text(doc, "buyer"), purpose_hash=_text(doc, "purpose_hash"),
                   kind=_text(doc, "kind"), expires_at=_text(doc, "expires_at"),
                   granted_at=_text(doc, "granted_at"), **base))


def _dataset_ranges(conn: Any, tables: Any, dataset: str, log_id: str,
                    windows: Sequence[tuple[int, int]]) -> list[str] | None:
    """The reading ranges holding the readings of ``dataset`` (its listing's selection:
    devices, measuring period, tree size), or its meters if they are too many; ``None``
    if the listing is missing or does not say what it selects."""
    records = tables.log_records
    listing = conn.execute(select(records.c.leaf_data).where(
        records.c.id == dataset, records.c.kind == "data_listing")).first()
    doc = None if listing is None else _loads(listing.leaf_data)
    sel = None if doc is None else doc.get("selection")
    if not isinstance(sel, dict):
        return None
    devices = sel.get("devices")
    period_from, period_to = _text(sel, "period_from"), _text(sel, "period_to")
    tree_size = _int(sel.get("tree_size"))
    if not (isinstance(devices, list) and devices and period_from and period_to
            and tree_size is not None and all(isinstance(d, str) and is_identifier(d)
                                              for d in devices)):
        return None
    readings = tables.readings
    ends = [b for _, b in windows]
    found: dict[str, None] = {}
    for device_id, leaf in conn.execute(
            select(readings.c.device_id, readings.c.leaf_index).where(
                readings.c.device_id.in_(devices), readings.c.measured_at > period_from,
                readings.c.measured_at <= period_to, readings.c.leaf_index < tree_size)
            .order_by(readings.c.leaf_index)):
        at = bisect_right(ends, int(leaf))
        if at < len(windows):
            a, b = windows[at]
            found[range_id(log_id, str(device_id), a, b)] = None
    if len(found) > MAX_LINKS:
        return sorted(set(devices))
    return list(found)
