"""Helpers shared by the resolver's tests (imported by ``conftest.py`` and test modules)."""

from __future__ import annotations

from dataclasses import dataclass, field

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.models import SignedRecord
from identifier_resolver.resolver import Resolver

P = "86.1000.1"
ROOT_URL = "http://root.test"


@dataclass
class World:
    """A small custody graph and the ids in it."""

    resolver: Resolver
    key: PrivateKey
    records: dict[str, SignedRecord] = field(default_factory=dict)

    def add(self, *signed: SignedRecord) -> None:
        self.resolver.submit(list(signed))
        for s in signed:
            self.records[s.record.id] = s


def build_world(resolver: Resolver, key: PrivateKey, *, prefix: str = P) -> World:
    """enterprise → 2 sites → 3 devices (one behind a gateway) → reading ranges → tree
    heads → anchors; inventory → report → attestation and grant; maintenance and
    calibration of a device."""
    w = World(resolver, key)
    ent, gw = f"{prefix}/ent.steel", f"{prefix}/gw.edge1"
    sites = [f"{prefix}/site.a", f"{prefix}/site.b"]
    devs = [f"{prefix}/dev.m1", f"{prefix}/dev.m2", f"{prefix}/dev.m3"]
    w.add(R.new_record(ent, "enterprise", ent, key, data={"name": "Steel"}))
    w.add(*(R.new_record(s, "site", ent, key, links=[("part_of", ent)]) for s in sites))
    w.add(R.new_record(gw, "gateway", ent, key, links=[("part_of", ent)]))
    dev_key = PrivateKey.generate("sm").public_key()
    w.add(R.new_record(devs[0], "device", ent, key, keys=[R.key_entry(dev_key, "device")],
                       links=[("part_of", sites[0]), ("connected_via", gw)]),
          R.new_record(devs[1], "device", ent, key, links=[("part_of", sites[0])]),
          R.new_record(devs[2], "device", ent, key, links=[("part_of", sites[1])]))
    heads = [f"{prefix}/th.log.main.{n}" for n in (100, 200)]
    w.add(*(R.new_record(h, "tree_head", f"{prefix}/log.main", key,
                         data={"tree_size": (i + 1) * 100}) for i, h in enumerate(heads)))
    w.add(*(R.new_record(f"{prefix}/anchor.log.main.{(i + 1) * 100}", "anchor",
                         f"{prefix}/log.main", key, links=[("anchors", h)])
            for i, h in enumerate(heads)))
    ranges = []
    for i, d in enumerate(devs):
        for j, h in enumerate(heads):
            rid = f"{prefix}/rr.{d.partition('/')[2]}.{j * 100}-{(j + 1) * 100}"
            ranges.append(rid)
            w.add(R.new_record(rid, "reading_range", ent, key,
                               links=[("measured_by", d), ("logged_in", h)],
                               data={"count": 10 + i, "device": d}))
    inv, rep = f"{prefix}/inv.2026-01", f"{prefix}/rep.2026-01"
    w.add(R.new_record(inv, "inventory", ent, key,
                       links=[("computed_from", r) for r in ranges]))
    w.add(R.new_record(rep, "report", ent, key, links=[("summarises", inv)],
                       data={"period": "2026-01"}))
    w.add(R.new_record(f"{prefix}/att.1", "attestation", f"{prefix}/ent.verifier", key,
                       links=[("attests", rep)]))
    w.add(R.new_record(f"{prefix}/grant.1", "grant", ent, key,
                       links=[("grants_access_to", rep)], data={"grantee": f"{prefix}/bank.1"}))
    w.add(R.maintenance(f"{prefix}/mnt.1", devs[0], ent, key, performed_at="2026-01-05T08:00:00Z",
                        kind="seal replaced", description="seal 44 replaced by 45"))
    w.add(R.calibration(f"{prefix}/cal.1", devs[0], ent, key,
                        calibrated_at="2025-12-01T00:00:00Z", laboratory="NIM",
                        certificate="CAL-2025-0042"))
    return w
