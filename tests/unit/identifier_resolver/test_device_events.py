"""Maintenance and calibration identifiers from the gateway: signed, spooled before they
are sent, sent to the resolver over real HTTP (``carbon-gateway maintenance`` against a
uvicorn server in this process), kept while the node is unreachable (a closed port),
moved aside when the node refuses them, and linked into the custody graph."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.worlds import served as serve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolver_support import ROOT_URL, P, World  # noqa: E402

from carbon_protocol.suites import PrivateKey  # noqa: E402
from identifier_resolver.api import create_app  # noqa: E402
from identifier_resolver.device_events import (  # noqa: E402
    EventSpool,
    event_id,
    new_event,
    send_spooled,
)
from identifier_resolver.errors import InvalidRequestError, NodeUnavailableError  # noqa: E402
from identifier_resolver.models import CustodyGraph  # noqa: E402
from node_gateway._cli import app as gateway_app  # noqa: E402

DEV = f"{P}/dev.m2"
ENT = f"{P}/ent.steel"


def test_event_ids_are_per_device_and_moment() -> None:
    assert event_id("maintenance", DEV, "2026-01-05T16:00:00+08:00") == (
        f"{P}/mnt.dev.m2.20260105T080000Z")
    assert event_id("calibration", DEV, "2026-01-05T08:00:00Z") == (
        f"{P}/cal.dev.m2.20260105T080000Z")
    with pytest.raises(InvalidRequestError, match="time zone"):
        event_id("maintenance", DEV, "2026-01-05T08:00:00")
    with pytest.raises(InvalidRequestError, match="laboratory"):
        new_event("calibration", DEV, ENT, PrivateKey.generate("intl"),
                  at="2026-01-05T08:00:00Z")


def test_spooled_events_are_sent_kept_or_refused(world: World, tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool")
    mnt = new_event("maintenance", DEV, ENT, world.key, at="2026-02-01T09:30:00Z",
                    maintenance_kind="CT replaced", description="CT 200/5 replaced",
                    document=b"work order 17")
    cal = new_event("calibration", DEV, ENT, world.key, at="2026-02-02T00:00:00Z",
                    laboratory="NIM", certificate="CAL-2026-7", next_due="2027-02-02")
    unknown = new_event("maintenance", f"{P}/dev.nowhere", ENT, world.key,
                        at="2026-02-03T00:00:00Z", maintenance_kind="x", description="y")
    for event in (mnt, cal, unknown):
        spool.put(event)

    with pytest.raises(NodeUnavailableError):
        send_spooled(spool, "http://127.0.0.1:9", timeout=2)  # nothing listens there
    assert len(spool.pending()) == 3

    with TestClient(create_app(world.resolver), base_url=ROOT_URL) as http:
        report = send_spooled(spool, ROOT_URL, http=http)
        assert report.sent == [mnt.record.id, cal.record.id]
        assert list(report.refused) == [unknown.record.id]
        assert report.refused[unknown.record.id]["status"] == 404
        assert spool.pending() == [] and len(list(spool.refused_dir.glob("*.problem.json"))) == 1
        spool.put(mnt)  # sent twice (an answer lost on the way): the node's receipt again
        assert send_spooled(spool, ROOT_URL, http=http).sent == [mnt.record.id]

    record = world.resolver.resolve(mnt.record.id).record.record
    assert record.data["kind"] == "CT replaced" and record.hash is not None
    down = world.resolver.custody(DEV, "down", 1)
    assert isinstance(down, CustodyGraph)
    assert {mnt.record.id, cal.record.id} <= {n.id for n in down.nodes}


@pytest.fixture
def served(world: World) -> Iterator[str]:
    """The world's node served by uvicorn on a free local port."""
    with serve(create_app(world.resolver)) as url:
        yield url


def test_gateway_commands(world: World, served: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "owner.pem"
    key_file.write_bytes(world.key.to_pem())
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "gw"))
    monkeypatch.setenv("GATEWAY_ENTERPRISE_ID", ENT)
    monkeypatch.setenv("GATEWAY_RESOLVER_OWNER_KEY_FILE", str(key_file))
    runner = CliRunner()

    monkeypatch.setenv("GATEWAY_RESOLVER_URL", "http://127.0.0.1:9")
    result = runner.invoke(gateway_app, [
        "calibration", DEV, "--laboratory", "NIM", "--certificate", "CAL-9",
        "--at", "2026-03-01T00:00:00Z"])
    assert result.exit_code == 3, result.output  # unreachable: kept in the spool

    monkeypatch.setenv("GATEWAY_RESOLVER_URL", served)
    result = runner.invoke(gateway_app, [
        "maintenance", DEV, "--kind", "seal replaced", "--description", "seal 7 -> 8",
        "--at", "2026-03-02T10:00:00Z", "--performed-by", "technician 12"])
    assert result.exit_code == 0, result.output
    cal_id = event_id("calibration", DEV, "2026-03-01T00:00:00Z")
    mnt_id = event_id("maintenance", DEV, "2026-03-02T10:00:00Z")
    assert world.resolver.resolve(cal_id).record.record.data["certificate"] == "CAL-9"
    assert world.resolver.resolve(mnt_id).record.record.data["performed_by"] == "technician 12"

    monkeypatch.delenv("GATEWAY_RESOLVER_OWNER_KEY_FILE")
    result = runner.invoke(gateway_app, ["maintenance", DEV, "--kind", "k",
                                         "--description", "d"])
    assert result.exit_code == 2 and "GATEWAY_RESOLVER_OWNER_KEY_FILE" in result.output
