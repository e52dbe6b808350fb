"""The command line against a local node: resolve, custody as a tree and as SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from resolver_support import P, World
from typer.testing import CliRunner

from identifier_resolver import records as R
from identifier_resolver._cli import app, custody_command, resolve_command
from identifier_resolver.resolver import Resolver


@pytest.fixture
def env(world: World) -> dict[str, str]:
    s = world.resolver.settings
    return {"RESOLVER_DATA_DIR": str(s.data_dir), "RESOLVER_ROOT": "true",
            "RESOLVER_TRUST_ROOT_KEY": str(s.trust_root_key),
            "RESOLVER_LOG_PREFIX": str(s.log_prefix), "RESOLVER_LOG_SUITE": s.log_suite,
            "RESOLVER_NODE_ID": s.node_id}


def test_commands_are_importable_for_mounting() -> None:
    import typer

    host = typer.Typer()
    host.command("resolve")(resolve_command)
    host.command("custody")(custody_command)
    assert {c.name for c in host.registered_commands} == {"resolve", "custody"}


def test_resolve(env: dict[str, str]) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["resolve", f"{P}/dev.m1"], env=env)
    assert out.exit_code == 0, out.output
    assert "device" in out.output and "connected_via" in out.output
    as_json = runner.invoke(app, ["resolve", f"{P}/dev.m1", "--json"], env=env)
    assert json.loads(as_json.stdout)["record"]["record"]["id"] == f"{P}/dev.m1"
    missing = runner.invoke(app, ["resolve", f"{P}/dev.none"], env=env)
    assert missing.exit_code == 1 and "not_found" in missing.output
    bad = runner.invoke(app, ["resolve", "nonsense"], env=env)
    assert bad.exit_code == 1 and "invalid_identifier" in bad.output


def test_resolve_deactivated_prints_history(env: dict[str, str], world: World) -> None:
    world.add(R.deactivation(world.records[f"{P}/dev.m3"], world.key, "decommissioned"))
    out = CliRunner().invoke(app, ["resolve", f"{P}/dev.m3"], env=env)
    assert out.exit_code == 1
    assert "deactivated" in out.output and "history v1" in out.output


def test_custody_tree_and_svg(env: dict[str, str], tmp_path: Path, world: World) -> None:
    svg, png = tmp_path / "custody.svg", tmp_path / "custody.png"
    out = CliRunner().invoke(app, ["custody", f"{P}/rep.2026-01", "--direction", "down",
                                   "--depth", "3", "--svg", str(svg), "--png", str(png)],
                             env=env)
    assert out.exit_code == 0, out.output
    assert "report" in out.output and "reading_range" in out.output
    assert ET.fromstring(svg.read_text()).tag.endswith("svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    up = CliRunner().invoke(app, ["custody", f"{P}/dev.m1", "--direction", "up"], env=env)
    assert up.exit_code == 0 and "enterprise" in up.output
    wrong = CliRunner().invoke(app, ["custody", f"{P}/dev.m1", "--direction", "left"], env=env)
    assert wrong.exit_code == 1 and "invalid_request" in wrong.output


def test_trust_export(env: dict[str, str], root: Resolver) -> None:
    out = CliRunner().invoke(app, ["trust", "--url", "http://root.example:8100"], env=env)
    assert out.exit_code == 0, out.output
    pinned = json.loads(out.stdout)
    assert pinned["url"] == "http://root.example:8100"
    assert pinned["log_key"]["key_id"] == root.node_key.public_key().key_id
