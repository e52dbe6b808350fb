"""Export one enterprise's evidence for a period as one offline file (issue 6, item 5).

:func:`export_evidence` gathers, against the latest final anchor, everything a
regulator or a bank needs to check that enterprise's figures for the period without
asking the ledger again (:class:`carbon_protocol.evidence.EvidenceBundle`,
``docs/evidence-bundle.md``):

* the inventories of the enterprise's gateways whose period overlaps the one asked
  for, with their gateway keys; the readings they name (every one, no other), their
  device keys, and one leaf-set proof for all the readings;
* the methodology each inventory names, every published version of it, so the
  inventory is recomputed offline;
* the reports built for the enterprise that name one of those inventories, and the
  other inventories those reports name (a quarter's report beside its January);
* the enterprise's log records appended since the period began (attestations,
  verification findings, financing codes, grants...): records about a period are made
  during or after it; and, however old, the records step 17 checks them against (a
  read's grant, request and listing, a grant's revocation, a verifier key and its
  revocation);
* the tree heads: every final anchor from the first one covering a leaf of the bundle
  up to the latest, with the consistency proof between each two consecutive ones.

Why every anchor in between rather than only the latest: the verifier must know the
*first* anchor that covered a leaf (a device key must have been valid then; a report
cites it), and the consistency chain shows the heads are one append-only log. A head
is ~0.6 KB and a consistency proof ~1 KB, against ~0.7 KB per reading, so this costs
little beside the readings.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, select

from carbon_protocol.chain_view import log_key
from carbon_protocol.evidence import (
    AnchoredHead,
    EvidenceBundle,
    EvidenceReadings,
    InventoryItem,
    MethodologyDoc,
    RecordItem,
    ReportItem,
)
from carbon_protocol.inventory import Period, SignedInventory
from carbon_protocol.market_records import MARKET_FORMATS, id_token
from carbon_protocol.models import AnchorRef, PublicKeyInfo, SignedReading
from carbon_rules.errors import RulesError
from carbon_rules.inventory import period_from_label
from carbon_rules.inventory_rules import methodology_to_json

from ._internal.clock import utc_text
from ._internal.db import (
    anchors,
    enterprises,
    gateway_keys,
    gateways,
    inventories,
    log_records,
    readings,
    reports,
)
from .errors import InvalidInputError, LedgerError, NotFoundError
from .ledger import Ledger
from .registry import device_key_info

__all__ = ["PERIOD_PATTERN", "EvidenceTooLargeError", "export_evidence", "parse_period",
           "write_evidence"]

_CHUNK = 500
"""Leaf indices per ``IN (...)`` query (SQLite allows 999 parameters by default)."""


PERIOD_PATTERN = r"^[0-9]{4}(-Q[1-4]|-[0-9]{2}(-[0-9]{2})?)?$"
"""A period label: year ``2026``, quarter ``2026-Q1``, month ``2026-01``, day ``2026-01-05``."""


def parse_period(label: str) -> Period:
    """The UTC period a label names (:class:`InvalidInputError` if it names none)."""
    if not re.fullmatch(PERIOD_PATTERN, label):
        raise InvalidInputError(f"period {label!r} is not a year (2026), quarter (2026-Q1), "
                                "month (2026-01) or day (2026-01-05)", period=label)
    try:
        return period_from_label(label)
    except (RulesError, ValueError) as exc:
        raise InvalidInputError(f"period {label!r} is not a year, quarter, month or day: "
                                f"{exc}", period=label) from exc


def _anchor_ref(ledger: Ledger, row: Mapping[Any, Any]) -> AnchorRef:
    return AnchorRef(
        chain_id=ledger.domain.chain_id, contract=ledger.domain.contract,
        log_key=log_key(ledger.settings.log_id).hex(), tree_size=int(row["tree_size"]),
        root_hash=bytes(row["root_hash"]).hex(), tx_hash=row["tx_hash"],
        block_number=row["block_number"], block_hash=row["block_hash"],
        block_timestamp=row["block_timestamp"], submitter=row["submitter"])


def _final_anchors(conn: Connection) -> list[Mapping[Any, Any]]:
    """One final anchor per tree size (the latest row if a size was re-anchored)."""
    by_size: dict[int, Mapping[Any, Any]] = {}
    row: Mapping[Any, Any]
    for row in conn.execute(select(anchors).where(anchors.c.status == "final")
                            .order_by(anchors.c.tree_size, anchors.c.id)).mappings():
        by_size[int(row["tree_size"])] = row
    return [by_size[s] for s in sorted(by_size)]


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _inventories(conn: Connection, enterprise_id: str, period: Period,
                 size: int) -> list[Mapping[Any, Any]]:
    owned = select(gateways.c.id).where(gateways.c.enterprise_id == enterprise_id)
    return list(conn.execute(select(inventories).where(and_(
        inventories.c.gateway_id.in_(owned), inventories.c.period_start < period.end,
        inventories.c.period_end > period.start, inventories.c.leaf_index < size))
        .order_by(inventories.c.leaf_index)).mappings())


def _reports(conn: Connection, enterprise_id: str, inventory_ids: set[str], size: int
             ) -> tuple[list[Mapping[Any, Any]], list[Mapping[Any, Any]]]:
    """The enterprise's reports naming one of ``inventory_ids``, and the inventories
    they name beside those (a quarter's report exported with its January: the report
    is checked against all its inventories, so the bundle carries them all)."""
    chosen: list[Mapping[Any, Any]] = []
    named: set[str] = set()
    for row in conn.execute(select(reports).where(and_(
            reports.c.enterprise_id == enterprise_id, reports.c.leaf_index < size))
            .order_by(reports.c.leaf_index)).mappings():
        ids = {str(a.get("inventory")) for a in json.loads(bytes(row["leaf_data"]))
               .get("anchors", [])}
        if ids & inventory_ids:
            chosen.append(row)
            named |= ids
    more: list[Mapping[Any, Any]] = list(conn.execute(select(inventories).where(and_(
        inventories.c.id.in_(sorted(named - inventory_ids)),
        inventories.c.leaf_index < size))).mappings()) if named - inventory_ids else []
    return chosen, more


def _reading_data(conn: Connection, indices: Sequence[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for chunk in _chunks(indices):
        out.update((int(r.leaf_index), bytes(r.leaf_data)) for r in conn.execute(
            select(readings.c.leaf_index, readings.c.leaf_data)
            .where(readings.c.leaf_index.in_(chunk))))
    return out


def _verifier_keys(ledger: Ledger, rows: Sequence[Mapping[Any, Any]],
                   size: int) -> list[Mapping[Any, Any]]:
    """The ``verifier_key`` records (``<verifier>/key.<key_id>``, logged under the
    verifier, not the enterprise) that the attestations among ``rows`` are signed with:
    a stranger checks an attestation against a key the log proves was registered."""
    have = {row["id"] for row in rows}
    wanted: set[str] = set()
    for row in rows:
        signed = json.loads(bytes(row["leaf_data"]))
        att = signed.get("attestation") if isinstance(signed, dict) else None
        if isinstance(att, dict) and att.get("format") == "carbon-ledger/attestation/v1":
            wanted.add(f"{att.get('verifier')}/key.{att.get('key_id')}")
    if not wanted - have:
        return []
    with ledger.reader.connect() as conn:
        return list(conn.execute(select(log_records).where(and_(
            log_records.c.id.in_(sorted(wanted - have)), log_records.c.kind == "verifier_key",
            log_records.c.leaf_index < size)).order_by(log_records.c.leaf_index)).mappings())


def _records_by_id(ledger: Ledger, ids: Iterable[str], kinds: Sequence[str],
                   size: int) -> list[Mapping[Any, Any]]:
    with ledger.reader.connect() as conn:
        return list(conn.execute(select(log_records).where(and_(
            log_records.c.id.in_(sorted(ids)), log_records.c.kind.in_(kinds),
            log_records.c.leaf_index < size))).mappings())


def _referenced(ledger: Ledger, rows: Sequence[Mapping[Any, Any]],
                size: int) -> list[Mapping[Any, Any]]:
    """The records that the records in ``rows`` rest on, logged before the period: a
    market record's grant, request and listing, every grant's revocation, a verifier
    key's revocation. Step 17 checks a read against its grant and that grant's
    revocation, a grant against its request and listing, an attestation against its
    key's revocation; a listing made last month must come with this month's read."""
    have = {str(row["id"]) for row in rows}
    out: list[Mapping[Any, Any]] = []
    todo = list(rows)
    while todo:
        wanted: set[str] = set()
        for row in todo:
            doc = json.loads(bytes(row["leaf_data"]))
            if not isinstance(doc, dict):
                continue
            if row["kind"] in MARKET_FORMATS:
                wanted |= {str(doc[k]) for k in ("dataset", "request", "grant")
                           if isinstance(doc.get(k), str)}
                if row["kind"] == "data_grant":
                    wanted.add(f"{str(row['id']).split('/', 1)[0]}/drev."
                               f"{id_token(str(row['id']))}")
            elif row["kind"] == "verifier_key":
                wanted.add(f"{row['id']}/revoked")
        todo = _records_by_id(ledger, wanted - have, (*MARKET_FORMATS, "verifier_key_revocation"),
                              size) if wanted - have else []
        have |= {str(row["id"]) for row in todo}
        out += todo
    return out


def _path(ledger: Ledger, index: int, size: int) -> list[str]:
    return [p.hex() for p in ledger.inclusion_proof(index, size)]


def export_evidence(ledger: Ledger, enterprise_id: str, period: Period | str) -> EvidenceBundle:
    """The evidence bundle of ``enterprise_id`` for ``period`` (module docstring),
    proven against the latest final anchor (:class:`NotFoundError` if the enterprise is
    unknown or nothing is anchored yet)."""
    span = parse_period(period) if isinstance(period, str) else period
    with ledger.reader.connect() as conn:
        if conn.execute(select(enterprises.c.id).where(
                enterprises.c.id == enterprise_id)).first() is None:
            raise NotFoundError(f"enterprise {enterprise_id} is not registered",
                                id=enterprise_id)
        final = _final_anchors(conn)
        if not final:
            raise NotFoundError("nothing is anchored (final) yet; try after the next anchor")
        size = int(final[-1]["tree_size"])
        inv_rows = _inventories(conn, enterprise_id, span, size)
        report_rows, more = _reports(conn, enterprise_id, {r["id"] for r in inv_rows}, size)
        inv_rows = sorted([*inv_rows, *more], key=lambda r: int(r["leaf_index"]))
        signed = [SignedInventory.model_validate_json(bytes(r["leaf_data"])) for r in inv_rows]
        key_rows = {row["key_id"]: row for row in conn.execute(select(gateway_keys).where(
            gateway_keys.c.key_id.in_({s.inventory.key_id for s in signed}))).mappings()}
        indices = sorted({i for s in signed for line in s.inventory.lines
                          for i in line.readings.leaf_indices()})
        limit = ledger.settings.max_evidence_readings
        if len(indices) > limit:
            raise EvidenceTooLargeError(
                f"the evidence of {enterprise_id} for {span.label} holds {len(indices):,} "
                f"readings, more than the {limit:,} one bundle may carry "
                "(LEDGER_MAX_EVIDENCE_READINGS): export shorter periods",
                readings=len(indices), limit=limit)
        data = _reading_data(conn, indices)
        missing = [i for i in indices if i not in data]
        if missing:  # the ledger checked them on receipt: this is a damaged store
            raise NotFoundError(f"leaf {missing[0]} named by an inventory holds no reading",
                                leaf_index=missing[0])
        used = [SignedReading.model_validate_json(data[i]) for i in indices]
        proof = [h.hex() for h in ledger.log.leaf_set_proof(conn, indices, size)]
        device_keys = [device_key_info(conn, k)
                       for k in sorted({u.reading.key_id for u in used})]
        record_rows: list[Mapping[Any, Any]] = list(conn.execute(select(log_records).where(and_(
            log_records.c.enterprise_id == enterprise_id, log_records.c.leaf_index < size,
            log_records.c.created_at >= span.start)).order_by(log_records.c.leaf_index))
            .mappings())
    report_items = [ReportItem(
        report_id=row["id"], report=json.loads(bytes(row["leaf_data"])),
        leaf_index=int(row["leaf_index"]),
        inclusion_proof=_path(ledger, int(row["leaf_index"]), size)) for row in report_rows]
    inventory_items = [InventoryItem(
        inventory_id=row["id"], signed_inventory=s,
        gateway_key=PublicKeyInfo(suite=key_rows[s.inventory.key_id]["suite"],
                                  public_key=key_rows[s.inventory.key_id]["public_key"],
                                  key_id=s.inventory.key_id),
        leaf_index=int(row["leaf_index"]),
        inclusion_proof=_path(ledger, int(row["leaf_index"]), size))
        for row, s in zip(inv_rows, signed, strict=True)]
    record_rows += _verifier_keys(ledger, record_rows, size)
    record_rows = sorted([*record_rows, *_referenced(ledger, record_rows, size)],
                         key=lambda r: int(r["leaf_index"]))
    record_items = [RecordItem(
        record_id=row["id"], kind=row["kind"], leaf_index=int(row["leaf_index"]),
        document=json.loads(bytes(row["leaf_data"])),
        inclusion_proof=_path(ledger, int(row["leaf_index"]), size)) for row in record_rows]
    rules = [MethodologyDoc.model_validate(methodology_to_json(ledger.methodology(m)))
             for m in sorted({s.inventory.rule.methodology_id for s in signed})]
    leaves = indices + [i.leaf_index for i in inventory_items] + [
        i.leaf_index for i in report_items] + [i.leaf_index for i in record_items]
    first = min(leaves, default=size - 1)
    chosen = [row for row in final if int(row["tree_size"]) > first]
    heads = []
    for anchor_row in chosen:
        sth = ledger.tree_head(int(anchor_row["tree_size"]))
        assert sth is not None
        heads.append(AnchoredHead(signed_tree_head=sth, anchor=_anchor_ref(ledger, anchor_row)))
    sizes = [h.anchor.tree_size for h in heads]
    consistency = [[p.hex() for p in ledger.consistency_proof(a, b)]
                   for a, b in zip(sizes, sizes[1:], strict=False)]
    return EvidenceBundle(
        enterprise=enterprise_id, period=span, exported_at=utc_text(),
        log_key=ledger.log_key_info(), heads=heads, consistency=consistency,
        device_keys=device_keys,
        readings=EvidenceReadings(indices=indices, readings=used, proof=proof),
        rules=rules, inventories=inventory_items, reports=report_items, records=record_items)


def write_evidence(bundle: EvidenceBundle, path: Path) -> int:
    """Write ``bundle`` as compact JSON, gzip-compressed when ``path`` ends in ``.gz``;
    return the bytes written."""
    data = bundle.model_dump_json().encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
    return len(data)


class EvidenceTooLargeError(LedgerError):
    """The bundle asked for would carry more readings than the service builds at once."""

    code = "evidence_too_large"
    http_status = 413
