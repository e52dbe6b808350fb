"""Register identifiers for everything an existing ledger holds: idempotent, read-only.

:func:`sync_ledger` reads the ledger's tables (never writes them) and makes sure the
resolver holds a current record for each of:

==============  ==================================  =======================================
type            identifier                          links
==============  ==================================  =======================================
enterprise      the ledger's enterprise id          —
site            the ledger's site id                part_of → enterprise
gateway         the ledger's gateway id             part_of → enterprise
device          the ledger's device id (+ keys)     part_of → site, connected_via → gateway
calibration     ``<p>/cal.<device suffix>``         calibrates → device
tree_head       ``<log p>/th.<log suffix>.<size>``  —
anchor          ``<log p>/anchor.<log s>.<size>``   anchors → tree head
reading_range   ``<log p>/rr.<device s>.<a>-<b>``   measured_by → device, logged_in → tree head
inventory       the ledger's inventory id           computed_from → the reading ranges of
                                                    the readings its lines used
report          the report id                       summarises → the inventories it names
attestation     ``<p>/att.<verification suffix>``   attests → the attested inventory
grant           the grant id                        grants_access_to → the reading ranges
                                                    of the dataset it grants
==============  ==================================  =======================================

Reports, attestations and grants (:mod:`.statements`) are registered with the window
holding their leaf, after its inventories; a ``data_revocation`` in a window makes its
grant's record final (deactivated, with the revocation in its data).

Reading ranges: the log is cut at the sizes of its final anchors; window ``[a, b)``
holds, per device, the readings whose leaf index lies in it. A range record gives
their count, sequence and leaf bounds, and as ``hash`` the RFC 9162 Merkle tree hash
of that device's leaf hashes in leaf order (a holder of the readings recomputes it).
The anchor record of ``b`` is registered after everything else of ``[a, b)``,
so it marks the window done and later runs scan only new windows. Readings after the
last final anchor wait for the next one. An inventory (a leaf of the same log) links
``computed_from`` every reading range holding a leaf its lines name; its ``hash`` is its
leaf hash in the ledger's log, so its ledger proof and its record prove the same thing.

Idempotent: a record whose content already matches is left alone; one whose ledger
facts changed (a key revoked, a calibration renewed) gets a new version; an anchor the
ledger no longer counts as final is deactivated with a reason. Records are signed with
the owner key of their prefix from ``keyring``; identifiers under a prefix without a
key are reported in ``skipped``, not registered.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from carbon_protocol.canonical import canonical_json
from carbon_protocol.merkle import root_from_leaf_hashes
from carbon_protocol.suites import PrivateKey, SuiteName, hash_fn, parse_suite

from ._internal.specs import Spec as _Spec
from ._internal.specs import suffixed as _suffixed
from .models import HashRef, Link, RecordKey, RecordReceipt, SignedRecord
from .records import deactivation, hash_ref, new_record, next_version, same_content
from .resolver import ancestors
from .statements import MAX_LINKS as _MAX_LINKS
from .statements import Revocation, attestation_id, range_id, window_statements

__all__ = ["RecordSink", "BridgeReport", "sync_ledger", "range_id", "tree_head_id", "anchor_id",
           "attestation_id"]


class RecordSink(Protocol):
    """Where the bridge registers records: a :class:`~.resolver.Resolver` in-process, or
    :func:`~.client.remote_sink` for a node over HTTP."""

    def current_records(self, ids: Sequence[str]) -> dict[str, SignedRecord]: ...
    def submit(self, batch: Sequence[SignedRecord]) -> Sequence[RecordReceipt]: ...


@dataclass
class BridgeReport:
    """What one :func:`sync_ledger` run did."""

    registered: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    windows: int = 0
    """Reading windows (between consecutive final anchors) scanned in this run."""
    readings: int = 0
    """Readings covered by the reading ranges registered in this run."""
    skipped: list[str] = field(default_factory=list)
    """Identifiers not registered: no key for their prefix in the keyring (or, for a
    revocation, no record of the grant it revokes)."""
    unreadable: list[str] = field(default_factory=list)
    """Log statements (report, attestation, grant, revocation ids) whose document does
    not say what they link to; not registered."""
    by_type: Counter[str] = field(default_factory=Counter)


def tree_head_id(log_id: str, size: int) -> str:
    """The identifier of a ledger tree head."""
    prefix, _, suffix = log_id.partition("/")
    return _suffixed(prefix, "th", suffix, f".{size}")


def anchor_id(log_id: str, size: int) -> str:
    """The identifier of a ledger anchor (one per anchored tree size)."""
    prefix, _, suffix = log_id.partition("/")
    return _suffixed(prefix, "anchor", suffix, f".{size}")


def _key_for(keyring: Mapping[str, PrivateKey], ident: str) -> PrivateKey | None:
    for prefix in ancestors(ident.partition("/")[0]):
        key = keyring.get(prefix)
        if key is not None:
            return key
    return None


def _data_key(text: str) -> str:
    """A record data key (``[a-z][a-z0-9_]{0,63}``) for a free-form ledger key."""
    key = "".join(c if c.isascii() and c.isalnum() else "_" for c in text.lower())
    if not key[:1].isalpha():
        key = "x_" + key
    return key[:64]


def _facts_hash(suite: SuiteName, facts: Mapping[str, Any]) -> HashRef:
    return hash_ref(suite, canonical_json(dict(facts)))


def _registry_specs(conn: Any, tables: Any, suite: SuiteName) -> list[_Spec]:
    specs: list[_Spec] = []
    enterprise_of_site: dict[str, str] = {}
    for row in conn.execute(select(tables.enterprises).order_by(tables.enterprises.c.id)
                            ).mappings():
        facts = {"name": row["name"], "created_at": row["created_at"]}
        specs.append(_Spec(row["id"], "enterprise", row["id"], data=facts,
                           hash=_facts_hash(suite, {"id": row["id"], **facts})))
    for row in conn.execute(select(tables.sites).order_by(tables.sites.c.id)).mappings():
        enterprise_of_site[row["id"]] = row["enterprise_id"]
        facts = {"name": row["name"], "region": row["region"], "created_at": row["created_at"]}
        specs.append(_Spec(row["id"], "site", row["enterprise_id"], data=facts,
                           links=[Link(rel="part_of", target=row["enterprise_id"])],
                           hash=_facts_hash(suite, {"id": row["id"], **facts})))
    for row in conn.execute(select(tables.gateways).order_by(tables.gateways.c.id)).mappings():
        facts = {"name": row["name"], "created_at": row["created_at"]}
        specs.append(_Spec(row["id"], "gateway", row["enterprise_id"], data=facts,
                           links=[Link(rel="part_of", target=row["enterprise_id"])],
                           hash=_facts_hash(suite, {"id": row["id"], **facts})))
    keys: dict[str, list[RecordKey]] = defaultdict(list)
    for row in conn.execute(select(tables.device_keys).order_by(
            tables.device_keys.c.device_id, tables.device_keys.c.valid_from)).mappings():
        keys[row["device_id"]].append(RecordKey(
            role="device", suite=parse_suite(row["suite"]), public_key=row["public_key"],
            key_id=row["key_id"], valid_from=row["valid_from"], revoked_at=row["revoked_at"]))
    for row in conn.execute(select(tables.devices).order_by(tables.devices.c.id)).mappings():
        owner = enterprise_of_site.get(row["site_id"], row["site_id"])
        facts = {"quantity": row["quantity"], "unit": row["unit"], "serial": row["serial"],
                 "site": row["site_id"], "gateway": row["gateway_id"],
                 "created_at": row["created_at"]}
        links = [Link(rel="part_of", target=row["site_id"])]
        if row["gateway_id"]:
            links.append(Link(rel="connected_via", target=row["gateway_id"]))
        specs.append(_Spec(row["id"], "device", owner, keys=keys.get(row["id"], []),
                           links=links, data=facts,
                           hash=_facts_hash(suite, {"id": row["id"], **facts})))
        calibration = json.loads(row["calibration"] or "{}")
        if calibration:
            prefix, _, suffix = str(row["id"]).partition("/")
            data = {_data_key(k): str(v)[:4096] for k, v in sorted(calibration.items())[:60]}
            specs.append(_Spec(_suffixed(prefix, "cal", suffix), "calibration", owner,
                               links=[Link(rel="calibrates", target=row["id"])],
                               data={**data, "source": "ledger device registry"},
                               hash=_facts_hash(suite, calibration)))
    return specs


def sync_ledger(ledger: Any, sink: RecordSink, keyring: Mapping[str, PrivateKey], *,
                now: datetime | str | None = None, batch_size: int = 500,
                registry: bool = True, log: bool = True) -> BridgeReport:
    """Register (or update) records for what ``ledger`` holds; see the module docstring.

    ``ledger`` is a :class:`ledger_service.ledger.Ledger`, used read-only through its
    reader engine and tables. ``keyring`` maps prefixes to their owner keys.
    ``registry`` / ``log`` select the parts: the registry part reads every enterprise,
    site, gateway and device (call it when the registry changed); the log part scans
    only windows not registered yet (call it after every final anchor).
    """
    from ledger_service._internal import db as tables

    report = BridgeReport()
    log_id: str = ledger.settings.log_id
    log_suite: SuiteName = ledger.settings.log_suite
    h = hash_fn(log_suite)
    log_pub = ledger.log_key.public_key()
    log_key = RecordKey(role="signer", suite=log_pub.suite, public_key=log_pub.hex(),
                        key_id=log_pub.key_id)

    def submit(specs: Sequence[_Spec]) -> None:
        current = sink.current_records([s.id for s in specs])
        out: list[SignedRecord] = []
        for spec in specs:
            key = _key_for(keyring, spec.id)
            if key is None:
                report.skipped.append(spec.id)
                continue
            have = current.get(spec.id)
            if have is None:
                signed = new_record(spec.id, spec.type, spec.owner, key,  # type: ignore[arg-type]
                                    keys=spec.keys, hash=spec.hash, links=spec.links,
                                    data=spec.data, now=now)
                report.registered += 1
            elif have.record.status == "deactivated":
                report.unchanged += 1
                continue
            else:
                signed = next_version(have, key, keys=spec.keys, hash=spec.hash,
                                      links=spec.links, data=spec.data, owner=spec.owner,
                                      reason="ledger facts changed", now=now)
                if same_content(signed.record, have.record):
                    report.unchanged += 1
                    continue
                report.updated += 1
            report.by_type[spec.type] += 1
            out.append(signed)
        for start in range(0, len(out), batch_size):
            sink.submit(out[start:start + batch_size])

    def revoke(revocations: Sequence[Revocation]) -> None:
        """Make each revoked grant's record final: deactivated, the revocation in its
        data and reason (already deactivated: unchanged; never registered: skipped)."""
        current = sink.current_records([r.grant for r in revocations]) if revocations else {}
        out: list[SignedRecord] = []
        for rev in revocations:
            key, have = _key_for(keyring, rev.grant), current.get(rev.grant)
            if key is None or have is None:
                report.skipped.append(rev.grant)
                continue
            if have.record.status == "deactivated":
                report.unchanged += 1
                continue
            data = {**have.record.data, "state": "revoked", "revocation": rev.record_id,
                    "revocation_leaf_index": rev.leaf_index,
                    "revocation_leaf_hash": rev.leaf_hash}
            if rev.revoked_at is not None:
                data["revoked_at"] = rev.revoked_at
            why = f"revoked by the owner at {rev.revoked_at or 'an unstated time'}"
            reason = f"{why}: {rev.reason}" if rev.reason else why
            out.append(next_version(have, key, data=data, status="deactivated",
                                    reason=reason[:500], now=now))
            report.deactivated += 1
            current[rev.grant] = out[-1]
        for start in range(0, len(out), batch_size):
            sink.submit(out[start:start + batch_size])

    with ledger.reader.connect() as conn:
        if registry:
            submit(_registry_specs(conn, tables, log_suite))
        if not log:
            conn.rollback()
            return report
        enterprise_of: dict[str, str] = {
            row.id: row.enterprise_id for row in conn.execute(
                select(tables.devices.c.id, tables.sites.c.enterprise_id)
                .join(tables.sites, tables.sites.c.id == tables.devices.c.site_id))}
        enterprise_of_gateway: dict[str, str] = {
            row.id: row.enterprise_id for row in conn.execute(
                select(tables.gateways.c.id, tables.gateways.c.enterprise_id))}
        anchor_rows = conn.execute(select(tables.anchors).order_by(tables.anchors.c.id)
                                   ).mappings().all()
        final = {int(r["tree_size"]): r for r in anchor_rows if r["status"] == "final"}
        sizes = sorted({int(r["tree_size"]) for r in anchor_rows})
        existing = sink.current_records([anchor_id(log_id, s) for s in sizes])
        registered = {s for s in sizes if anchor_id(log_id, s) in existing}
        boundaries = sorted(set(final) | registered)
        heads = {int(r.tree_size): r.signed for r in conn.execute(
            select(tables.tree_heads.c.tree_size, tables.tree_heads.c.signed).where(
                tables.tree_heads.c.tree_size.in_(boundaries or [-1])))}
        start = 0
        for end in boundaries:
            if end in registered:
                start = end
                continue
            report.windows += 1
            head_specs = []
            if end in heads:
                sth = json.loads(heads[end])
                th = sth["tree_head"]
                head_specs.append(_Spec(
                    tree_head_id(log_id, end), "tree_head", log_id, keys=[log_key],
                    hash=HashRef(alg="sm3" if log_suite == "sm" else "sha256",
                                 value=th["root_hash"]),
                    data={"log_id": log_id, "tree_size": end, "timestamp": th["timestamp"],
                          "key_id": th["key_id"], "signature": sth["signature"]}))
            submit(head_specs)
            per_device: dict[str, list[Any]] = defaultdict(list)
            for row in conn.execute(select(
                    tables.readings.c.device_id, tables.readings.c.seq,
                    tables.readings.c.leaf_index, tables.readings.c.leaf_hash).where(
                    tables.readings.c.leaf_index >= start, tables.readings.c.leaf_index < end)
                    .order_by(tables.readings.c.leaf_index)):
                per_device[row.device_id].append(row)
            ranges = []
            for device_id in sorted(per_device):
                rows = per_device[device_id]
                seqs = [int(r.seq) for r in rows]
                ranges.append(_Spec(
                    range_id(log_id, device_id, start, end), "reading_range",
                    enterprise_of.get(device_id, device_id),
                    hash=HashRef(alg="sm3" if log_suite == "sm" else "sha256",
                                 value=root_from_leaf_hashes(
                                     h, [bytes(r.leaf_hash) for r in rows]).hex()),
                    links=[Link(rel="measured_by", target=device_id),
                           Link(rel="logged_in", target=tree_head_id(log_id, end))],
                    data={"device": device_id, "log_id": log_id, "leaf_start": start,
                          "leaf_end": end, "first_leaf": int(rows[0].leaf_index),
                          "last_leaf": int(rows[-1].leaf_index), "count": len(rows),
                          "first_seq": min(seqs), "last_seq": max(seqs)}))
                report.readings += len(rows)
            submit(ranges)
            submit(_inventory_specs(conn, tables, log_id, log_suite, start, end, boundaries,
                                    enterprise_of_gateway))
            said = window_statements(conn, tables, log_id=log_id, suite=log_suite,
                                     start=start, end=end, windows=_windows(boundaries))
            submit(said.specs)
            revoke(said.revocations)
            report.unreadable.extend(said.unreadable)
            row = final[end]
            submit([_Spec(
                anchor_id(log_id, end), "anchor", log_id,
                hash=HashRef(alg="sm3" if log_suite == "sm" else "sha256",
                             value=bytes(row["root_hash"]).hex()),
                links=[Link(rel="anchors", target=tree_head_id(log_id, end))],
                data={"chain_id": int(ledger.domain.chain_id),
                      "contract": str(ledger.domain.contract),
                      "log_key": _log_key_hex(log_id), "tree_size": end,
                      "tx_hash": row["tx_hash"], "block_number": row["block_number"],
                      "block_hash": row["block_hash"],
                      "block_timestamp": row["block_timestamp"],
                      "submitter": row["submitter"], "status": "final"})])
            start = end
        conn.rollback()
    withdrawn = [anchor_id(log_id, s) for s in sorted(registered - set(final))]
    out = []
    for ident, have in sink.current_records(withdrawn).items():
        key = _key_for(keyring, ident)
        if key is not None and have.record.status == "active":
            out.append(deactivation(have, key, "the ledger no longer counts this anchor as "
                                               "final (its transaction vanished from the chain)",
                                    now=now))
            report.deactivated += 1
    if out:
        sink.submit(out)
    return report


def _ranges_of(leaves: Sequence[Mapping[str, Any]], windows: Sequence[tuple[int, int]]
               ) -> list[tuple[int, int]]:
    """The windows holding at least one leaf of the progressions ``leaves``
    (``first, first + step, ..., last``)."""
    found: list[tuple[int, int]] = []
    for a, b in windows:
        for lr in leaves:
            first, last, step = int(lr["first"]), int(lr["last"]), int(lr.get("step", 1))
            if last < a or first >= b:
                continue
            k = 0 if first >= a else -(-(a - first) // step)
            if first + k * step <= last and first + k * step < b:
                found.append((a, b))
                break
    return found


def _windows(boundaries: Sequence[int]) -> list[tuple[int, int]]:
    """The log's windows ``[a, b)`` between consecutive boundaries (from leaf 0)."""
    return list(zip([0, *boundaries], boundaries, strict=False))


def _inventory_specs(conn: Any, tables: Any, log_id: str, suite: SuiteName, start: int,
                     end: int, boundaries: Sequence[int], enterprise_of_gateway: Mapping[str, str]
                     ) -> list[_Spec]:
    """Records of the inventories logged at leaves ``[start, end)``."""
    inv = tables.inventories
    spans = _windows(boundaries)
    specs = []
    for row in conn.execute(select(inv).where(inv.c.leaf_index >= start, inv.c.leaf_index < end)
                            .order_by(inv.c.leaf_index)).mappings():
        doc = json.loads(bytes(row["leaf_data"]))["inventory"]
        targets: list[str] = []
        devices: list[str] = []
        for line in doc["lines"]:
            device = str(line["readings"]["device"])
            devices.append(device)
            targets.extend(range_id(log_id, device, a, b)
                           for a, b in _ranges_of(line["readings"]["leaves"], spans))
        if len(targets) > _MAX_LINKS:  # too many windows: link the meters instead
            targets = devices
        specs.append(_Spec(
            row["id"], "inventory", enterprise_of_gateway.get(row["gateway_id"],
                                                              row["gateway_id"]),
            hash=HashRef(alg="sm3" if suite == "sm" else "sha256",
                         value=bytes(row["leaf_hash"]).hex()),
            links=[Link(rel="computed_from", target=t) for t in dict.fromkeys(targets)],
            data={"gateway": row["gateway_id"], "period": row["period_label"],
                  "period_start": row["period_start"], "period_end": row["period_end"],
                  "methodology": row["methodology_id"], "rule_version": int(row["rule_version"]),
                  "total": str(row["total"]), "lines": len(doc["lines"]), "log_id": log_id,
                  "leaf_index": int(row["leaf_index"])}))
    return specs


def _log_key_hex(log_id: str) -> str:
    from carbon_protocol.chain_view import log_key

    return log_key(log_id).hex()
