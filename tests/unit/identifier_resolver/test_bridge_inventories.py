"""Inventories reach the custody graph: a real gateway computes and signs a day's
inventory with the rules on the in-process chain, the ledger checks and logs it, and
after the next final anchor the bridge registers it with ``computed_from`` links to the
reading ranges of exactly the readings its lines used."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from carbon_protocol.suites import PrivateKey
from carbon_rules.inventory import period_from_label
from carbon_rules.inventory_rules import DEFAULT_METHODOLOGY
from identifier_resolver.bridge import sync_ledger
from identifier_resolver.custody import reading_count
from identifier_resolver.models import CustodyGraph, TrustRoot
from identifier_resolver.resolver import Resolver
from identifier_resolver.verify import verify_answer
from ledger_service.api import create_app
from ledger_service.auth import KeyCreate, Role, create_key
from ledger_service.ledger import Ledger
from ledger_service.settings import Settings
from node_gateway import inventory as gw_inventory
from node_gateway.gateway import DeviceSpec, Gateway, Organisation
from node_gateway.uploader import HttpTransport

PREFIX = "86.1000.1"
ENTERPRISE = f"{PREFIX}/ent.bridge-inv"
SITE = f"{PREFIX}/site.works"


def test_inventory_links_to_the_ranges_of_its_readings(
        tmp_path: Path, root: Resolver, owner: PrivateKey, trust: TrustRoot) -> None:
    ledger = Ledger.open(Settings(data_dir=tmp_path / "ledger", prefix=PREFIX,
                                  log_id=f"{PREFIX}/log.main", log_suite="sm"), rules=True)
    app = create_app(ledger)
    with ledger.engine.begin() as conn:
        key = create_key(conn, KeyCreate(role=Role.GATEWAY, enterprises=[ENTERPRISE])).api_key
    gw = Gateway(tmp_path / "gw", transport=HttpTransport.for_app(app, api_key=key),
                 suite="sm")
    try:
        gw.ensure_organisation(Organisation(ENTERPRISE, "Bridge Co.", SITE, "works",
                                            "Liaoning", f"{PREFIX}/gw.works", "works"))
        meters = [f"{PREFIX}/dev.works.elec-{n}" for n in (1, 2)]
        for meter in meters:
            gw.provision(DeviceSpec.for_kind(meter, "electricity", SITE))
        start = datetime(2026, 10, 5, tzinfo=UTC)
        gw.simulate(start, 0.5, seed=3)  # the first half of the day: one window
        gw.flush()
        ledger.anchor_tick(force=True)
        gw.simulate(start + (datetime(2026, 10, 5, 12, tzinfo=UTC) - start), 0.75, seed=4)
        gw.flush()
        ledger.anchor_tick(force=True)  # the rest of the day: a second window
        gw_inventory.ensure_gateway_key(gw)
        rules = gw_inventory.fetch_rules(gw, DEFAULT_METHODOLOGY)
        run = gw_inventory.compute(gw, period_from_label("2026-10-05"), rules)
        receipt = gw_inventory.submit(gw, run.signed)
        ledger.anchor_tick(force=True)

        report = sync_ledger(ledger, root, {PREFIX: owner})
        assert report.by_type["inventory"] == 1
        ident = receipt["inventory_id"]
        answer = root.resolve(ident)
        verify_answer(answer, trust, query=ident)
        record = answer.record.record
        assert record.hash is not None and record.hash.value == receipt["leaf_hash"]
        assert record.data["total"] == run.signed.inventory.totals.total
        targets = [link.target for link in record.links]
        assert {link.rel for link in record.links} == {"computed_from"}
        # Each meter's readings of the day lie in both windows: four reading ranges.
        assert len(targets) == 4 and all(root.resolve(t).record.record.type ==
                                         "reading_range" for t in targets)
        graph = root.custody(ident, "down", 1)
        assert isinstance(graph, CustodyGraph)
        used = sum(line.readings.count for line in run.signed.inventory.lines)
        assert reading_count(graph) >= used == 192  # 96 intervals a day per meter
        again = sync_ledger(ledger, root, {PREFIX: owner})
        assert again.registered == 0 and again.windows == 0
    finally:
        gw.close()
        ledger.engine.dispose()
