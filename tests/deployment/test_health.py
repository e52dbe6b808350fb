"""``/health`` and ``/metrics`` on real ledgers: the embedded chain, and an anvil node that
answers, lags, or has gone away."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ledger_service._internal.clock import utc_now
from ledger_service._internal.metrics import RPC_ERRORS
from ledger_service.api import create_app
from ledger_service.api.health import HealthSettings


def post(client: TestClient, body: str, path: str = "/v1/readings") -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, keyed by name and sorted labels."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


# -- the embedded chain -------------------------------------------------------------------


def test_healthy_ledger_reports_every_component(client: TestClient, ledger: Any,
                                                make_device: Any) -> None:
    assert post(client, make_device().signed().model_dump_json()).status_code == 201

    r = client.get("/health")

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["tree_size"] == 1
    db, chain, anchoring = (body["components"][k] for k in ("database", "chain", "anchoring"))
    assert db["status"] == "ok" and db["latency_ms"] >= 0
    assert chain["status"] == "ok" and chain["kind"] == "embedded"
    assert chain["head_block"] == ledger.chain.block_number()
    assert chain["lag_seconds"] >= 0 and chain["rpc_errors_in_window"] == 0
    assert anchoring == {"status": "ok", "tree_size": 1, "anchored_tree_size": 0,
                         "unanchored_leaves": 1,
                         "oldest_unanchored_age_seconds": body["oldest_unanchored_age_seconds"]}
    assert 0 <= body["oldest_unanchored_age_seconds"] < 60


def test_a_final_anchor_clears_the_unanchored_age(client: TestClient, ledger: Any,
                                                  make_device: Any) -> None:
    assert post(client, make_device().signed().model_dump_json()).status_code == 201
    ledger.anchor_tick(force=True)

    body = client.get("/health").json()

    assert body["oldest_unanchored_age_seconds"] is None
    assert body["components"]["anchoring"]["anchored_tree_size"] == 1


def test_a_reading_waiting_too_long_for_an_anchor_degrades(ledger: Any,
                                                           make_device: Any) -> None:
    dev = make_device()
    ledger.ingest([dev.signed()], now=utc_now() - timedelta(hours=2))
    app = create_app(ledger, health=HealthSettings(max_unanchored_age_seconds=3600))

    with TestClient(app) as c:
        r = c.get("/health")

    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "degraded"
    anchoring = body["components"]["anchoring"]
    assert anchoring["status"] == "degraded"
    assert 7190 < anchoring["oldest_unanchored_age_seconds"] < 7300
    assert "oldest unanchored reading waited" in anchoring["problems"][0]
    assert body["components"]["database"]["status"] == "ok"


def test_chain_rpc_errors_over_the_limit_degrade(ledger: Any) -> None:
    app = create_app(ledger, health=HealthSettings(max_rpc_errors=3))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        RPC_ERRORS.labels(action="test").inc(4)  # as the anchoring loop would record them
        r = c.get("/health")

    assert r.status_code == 503
    chain = r.json()["components"]["chain"]
    assert chain["status"] == "degraded" and chain["rpc_errors_in_window"] == 4
    assert "4 chain RPC errors" in chain["problems"][0]


def test_an_unexpected_chain_error_is_reported_not_raised(
        ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # No real chain raises outside the client's error family, so this one is patched in.
    def broken() -> int:
        raise RuntimeError("provider exploded")

    monkeypatch.setattr(ledger.chain, "block_number", broken)
    with TestClient(create_app(ledger)) as c:
        r = c.get("/health")

    assert r.status_code == 503
    chain = r.json()["components"]["chain"]
    assert chain["status"] == "down" and chain["error"] == "RuntimeError: provider exploded"


def test_unreachable_database_is_down(ledger: Any) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from ledger_service._internal.db import reader

    app = create_app(ledger)
    # A database that cannot be opened: a SQLite file under a path that is a regular file.
    blocker = Path(ledger.settings.data_dir) / "not-a-dir"
    blocker.write_text("")
    ledger.reader = reader(create_engine(f"sqlite:///{blocker}/db.sqlite", poolclass=NullPool))
    with TestClient(app) as c:
        r = c.get("/health")
        m = samples(c)

    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "down" and body["tree_size"] is None
    assert body["components"]["database"]["status"] == "down"
    assert "OperationalError" in body["components"]["database"]["error"]
    assert m[("carbon_ledger_database_up", ())] == 0


# -- metrics ------------------------------------------------------------------------------


def test_metrics_count_ingest_outcomes_and_expose_log_gauges(client: TestClient,
                                                             make_device: Any) -> None:
    dev = make_device()
    before = samples(client)
    first = dev.signed()
    assert post(client, first.model_dump_json()).status_code == 201
    assert post(client, first.model_dump_json()).status_code == 200      # duplicate
    assert post(client, dev.signed(device="86.1000.1/dev.ghost").model_dump_json()
                ).status_code == 422                                       # rejected
    batch = f'{{"readings": [{dev.signed().model_dump_json()}, {first.model_dump_json()}]}}'
    assert post(client, batch, "/v1/readings/batch").status_code == 200   # 1 new, 1 duplicate

    after = samples(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("carbon_ledger_readings_total", status="accepted") == 2
    assert delta("carbon_ledger_readings_total", status="duplicate") == 2
    assert delta("carbon_ledger_readings_total", status="rejected") == 1
    assert delta("carbon_ledger_ingest_batch_seconds_count") == 4
    assert delta("carbon_ledger_ingest_batch_seconds_sum") > 0
    assert after[("carbon_ledger_tree_size", ())] == 2
    assert after[("carbon_ledger_unanchored_leaves", ())] == 2
    assert after[("carbon_ledger_anchored_tree_size", ())] == 0
    assert 0 <= after[("carbon_ledger_oldest_unanchored_age_seconds", ())] < 60
    assert after[("carbon_ledger_database_up", ())] == 1
    # The shared registry's other series are there too.
    assert any(name == "carbon_ledger_anchor_latency_seconds_count" for name, _ in after)


def test_health_and_metrics_are_not_counted_as_ingest(client: TestClient) -> None:
    before = samples(client)
    client.get("/health")
    client.post("/v1/enterprises", json={"id": "86.1000.1/ent.other", "name": "Other"})
    after = samples(client)
    key = ("carbon_ledger_ingest_batch_seconds_count", ())
    assert after[key] == before[key]


# -- a real node --------------------------------------------------------------------------


@pytest.fixture
def anvil_ledger(tmp_path: Path,
                 ledger_factory: Callable[..., Any]) -> Iterator[tuple[Any, Any]]:
    """A ledger anchoring on its own anvil node, and that node."""
    from ledger_service._internal.chain import ChainClient
    from ledger_service.devchain import DEV_KEYS, start_node

    with start_node("anvil", tmp_path / "anvil") as node:
        contract = ChainClient.deploy(node.url, DEV_KEYS[0])
        ledger = ledger_factory(chain="rpc", rpc_url=node.url, chain_id=node.chain_id,
                                anchor_private_key=DEV_KEYS[0], contract_address=contract)
        yield ledger, node


@pytest.mark.chain
def test_anvil_healthy_then_stopped_is_degraded(anvil_ledger: tuple[Any, Any]) -> None:
    ledger, node = anvil_ledger
    app = create_app(ledger, health=HealthSettings(chain_timeout_seconds=5))
    with TestClient(app) as c:
        ok = c.get("/health")
        node.stop()
        started = time.monotonic()
        gone = c.get("/health")
        elapsed = time.monotonic() - started

    assert ok.status_code == 200, ok.text
    chain = ok.json()["components"]["chain"]
    assert chain["status"] == "ok" and chain["kind"] == "rpc" and chain["chain_id"] == 31337
    assert chain["head_block"] >= 1

    assert gone.status_code == 503
    body = gone.json()
    assert body["status"] == "degraded"  # ingest still works; anchoring waits for the chain
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["chain"]["status"] == "down"
    assert "unavailable" in body["components"]["chain"]["error"]
    assert elapsed < 6


@pytest.mark.chain
def test_anvil_head_older_than_the_limit_degrades(anvil_ledger: tuple[Any, Any]) -> None:
    ledger, _ = anvil_ledger
    head_time = ledger.chain.block(ledger.chain.block_number())[1]
    # anvil mines only on demand: its head ages while nothing is sent.
    while time.time() - head_time <= 1.5:
        time.sleep(0.1)
    app = create_app(ledger, health=HealthSettings(max_chain_lag_seconds=1))
    with TestClient(app) as c:
        r = c.get("/health")

    assert r.status_code == 503
    chain = r.json()["components"]["chain"]
    assert chain["status"] == "degraded" and chain["lag_seconds"] > 1
    assert "head block is" in chain["problems"][0]
