"""Gateway facade and CLI against a real ledger: provisioning, rotation, the commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from gw_support import JAN6, ORG, LiveLedger, fleet
from typer.testing import CliRunner

from node_gateway._cli import app
from node_gateway.errors import RegistrationError
from node_gateway.gateway import DeviceSpec, Gateway
from node_gateway.settings import GatewaySettings

GatewayFactory = Callable[..., Gateway]


def test_provisioning_registers_device_and_key(online_gateway: GatewayFactory,
                                               live_ledger: LiveLedger) -> None:
    gw = online_gateway()
    for d in gw.outbox.devices():
        pub = gw.keystore.public(d.device)
        public = live_ledger.ledger.call(
            __import__("ledger_service.registry", fromlist=["get_device"]).get_device, d.device)
        assert [k.key_id for k in public.keys] == [pub.key_id]
        assert public.gateway_id == ORG.gateway_id
        assert (public.quantity, public.unit) == (d.quantity, d.unit)
    assert gw.outbox.domain() == live_ledger.ledger.domain


def test_provisioning_again_is_idempotent(online_gateway: GatewayFactory,
                                          live_ledger: LiveLedger) -> None:
    gw = online_gateway()
    before = {d.device: gw.keystore.public(d.device) for d in gw.outbox.devices()}
    gw.ensure_organisation(ORG)
    for d in gw.outbox.devices():
        spec = DeviceSpec(d.device, d.quantity, d.unit,  # type: ignore[arg-type]
                          "serial", ORG.site_id)
        assert gw.provision(spec) == before[d.device]
    assert {d.device: gw.keystore.public(d.device) for d in gw.outbox.devices()} == before


def test_provisioning_a_device_registered_for_another_quantity_fails(
    online_gateway: GatewayFactory
) -> None:
    gw = online_gateway()
    elec = gw.outbox.devices()[0]
    assert elec.quantity == "active_energy"
    with pytest.raises(RegistrationError, match="is registered for active_energy in kWh"):
        gw.provision(DeviceSpec(elec.device, "gas_volume", "m3", "x", ORG.site_id))


def test_a_rotated_key_is_registered_and_both_keys_verify(
    online_gateway: GatewayFactory, live_ledger: LiveLedger
) -> None:
    gw = online_gateway()
    device = gw.outbox.devices()[0].device
    sim = gw.simulator(seed=3)
    gw.record(sim.readings(JAN6, JAN6 + timedelta(hours=1)))
    old = gw.keystore.public(device)
    new = gw.rotate_key(device)
    gw.record(sim.readings(JAN6 + timedelta(hours=1), JAN6 + timedelta(hours=2)))
    report = gw.flush()
    assert report.rejected == 0
    key_ids = {e.signed_reading().reading.key_id for e in gw.outbox.entries(device)}
    assert key_ids == {old.key_id, new.key_id}
    rep = live_ledger.ledger.sequence_report(device)
    assert (rep.count, rep.missing) == (8, [])


def test_a_device_without_site_is_refused_with_the_ledgers_reason(
    online_gateway: GatewayFactory
) -> None:
    gw = online_gateway(provision=False)
    gw.connect()
    spec = fleet("nosite")[0]
    bad = DeviceSpec(spec.device_id, spec.quantity, spec.unit, "s", "86.1000.1/site.nowhere")
    with pytest.raises(RegistrationError, match="404 not_found: site 86.1000.1/site.nowhere"):
        gw.provision(bad)
    assert gw.outbox.devices() == []


def test_settings_refuse_to_start_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LEDGER_URL", "ftp://ledger")
    with pytest.raises(ValueError, match="must start with http"):
        GatewaySettings()
    monkeypatch.setenv("GATEWAY_LEDGER_URL", "http://ledger/")
    monkeypatch.setenv("GATEWAY_SITE_ID", "99.1/site.x")
    with pytest.raises(ValueError, match="not under prefix"):
        GatewaySettings()
    monkeypatch.delenv("GATEWAY_SITE_ID")
    assert GatewaySettings().ledger_url == "http://ledger"


# -- the CLI ------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, live_ledger: LiveLedger) -> Callable[..., tuple[int, str, str]]:
    runner = CliRunner()
    tag = tmp_path.name[-8:]
    env = {
        "GATEWAY_DATA_DIR": str(tmp_path / "gw"),
        "GATEWAY_LEDGER_URL": live_ledger.url,
        "GATEWAY_ENTERPRISE_ID": f"86.1000.1/ent.cli-{tag}",
        "GATEWAY_SITE_ID": f"86.1000.1/site.cli-{tag}",
        "GATEWAY_GATEWAY_ID": f"86.1000.1/gw.cli-{tag}",
        "GATEWAY_SUITE": "intl",
        "GATEWAY_BASE_DELAY": "0.01",
        "GATEWAY_MAX_DELAY": "0.02",
    }

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env=env)
        return result.exit_code, result.stdout, result.stderr

    return run


def test_cli_end_to_end(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    tag = tmp_path.name[-8:]
    meters = ["--meter", f"electricity=86.1000.1/dev.cli-e-{tag}",
              "--meter", f"heat=86.1000.1/dev.cli-h-{tag}"]
    code, _, err = cli("provision", *meters)
    assert code == 0, err
    assert "key intl:" in err
    assert cli("provision", *meters)[0] == 0  # idempotent
    code, _, err = cli("simulate", "--days", "0.25", "--start", "2025-01-06")
    assert code == 0, err
    assert "recorded 48 new readings" in err
    code, _, err = cli("simulate", "--days", "0.25", "--start", "2025-01-06")
    assert "recorded 0 new readings, 48 already recorded" in err
    code, out, _ = cli("status", "--json")
    status = json.loads(out)
    assert status["counts"] == {"pending": 48, "acked": 0, "rejected": 0}
    assert {d["next_seq"] for d in status["devices"]} == {25}
    code, _, err = cli("flush")
    assert code == 0, err
    assert "accepted 48, duplicates 0, rejected 0" in err
    code, out, _ = cli("status", "--json")
    assert json.loads(out)["counts"] == {"pending": 0, "acked": 48, "rejected": 0}
    bad = tmp_path / "bad.csv"
    bad.write_text("device,measured_at,quantity,unit,value,cumulative,quality\n"
                   f"86.1000.1/dev.cli-e-{tag},2025-01-07T00:15:00Z,active_energy,kWh,1,,ok\n")
    code, _, err = cli("import-csv", str(bad))
    assert code == 1
    assert "bad.csv:2: quality:" in err and "nothing imported" in err
    code, _, err = cli("rotate-key", f"86.1000.1/dev.cli-e-{tag}")
    assert code == 0, err and "new key intl:" in err


def test_cli_reports_an_unreachable_ledger_with_exit_code_3(
    cli: Callable[..., tuple[int, str, str]], live_ledger: LiveLedger
) -> None:
    assert cli("provision")[0] == 0
    assert cli("simulate", "--days", "0.05")[0] == 0
    live_ledger.server.fail(50, "503", path="/")
    code, _, err = cli("flush")
    live_ledger.server._plan.clear()
    assert code == 3
    assert "[ledger_unavailable]" in err
