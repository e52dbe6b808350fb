"""Custody walks: down to what a thing is made of, up to what it belongs to or feeds."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from resolver_support import P, World
from rich.console import Console

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.custody import (
    reading_count,
    render_png,
    render_svg,
    render_tree,
    walk,
)
from identifier_resolver.errors import DeactivatedError, InvalidRequestError, NotFoundError
from identifier_resolver.models import CustodyGraph
from identifier_resolver.resolver import Resolver


def _walk(world: World, ident: str, direction: str, depth: int) -> CustodyGraph:
    graph = world.resolver.custody(ident, direction, depth)  # type: ignore[arg-type]
    assert isinstance(graph, CustodyGraph)
    return graph


def _by_depth(graph: CustodyGraph) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for node in graph.nodes:
        out.setdefault(node.depth, set()).add(node.id)
    return out


def test_down_from_enterprise_reaches_sites_devices_and_readings(world: World) -> None:
    graph = _walk(world, f"{P}/ent.steel", "down", 4)
    levels = _by_depth(graph)
    assert levels[1] == {f"{P}/site.a", f"{P}/site.b", f"{P}/gw.edge1"}
    assert levels[2] == {f"{P}/dev.m1", f"{P}/dev.m2", f"{P}/dev.m3"}
    assert {n.type for n in graph.nodes if n.depth == 3} == {
        "reading_range", "maintenance", "calibration"}
    assert reading_count(graph) == 2 * (10 + 11 + 12)
    assert not graph.truncated  # reading ranges are the bottom of the graph
    assert all(n.state == "present" for n in graph.nodes)


def test_down_from_report_reaches_all_its_readings(world: World) -> None:
    graph = _walk(world, f"{P}/rep.2026-01", "down", 5)
    types = {n.type for n in graph.nodes}
    assert types == {"report", "inventory", "reading_range"}
    assert reading_count(graph) == 66
    assert {(e.rel) for e in graph.edges} == {"summarises", "computed_from"}


def test_up_from_a_reading_range(world: World) -> None:
    rr = f"{P}/rr.dev.m1.0-100"
    graph = _walk(world, rr, "up", 6)
    levels = _by_depth(graph)
    assert levels[1] == {f"{P}/dev.m1", f"{P}/th.log.main.100", f"{P}/inv.2026-01"}
    assert levels[2] == {f"{P}/site.a", f"{P}/gw.edge1", f"{P}/anchor.log.main.100",
                         f"{P}/rep.2026-01"}
    assert levels[3] == {f"{P}/ent.steel", f"{P}/att.1", f"{P}/grant.1"}
    # Walking up never comes back down to the readings of other meters.
    assert not any(n.type == "reading_range" for n in graph.nodes if n.id != rr)


def test_up_from_an_anchor_is_empty_and_down_reaches_its_readings(world: World) -> None:
    anchor = f"{P}/anchor.log.main.200"
    assert [n.id for n in _walk(world, anchor, "up", 3).nodes] == [anchor]
    down = _walk(world, anchor, "down", 2)
    assert reading_count(down) == 10 + 11 + 12


def test_depth_limits_and_truncation(world: World) -> None:
    one = _walk(world, f"{P}/ent.steel", "down", 1)
    assert max(n.depth for n in one.nodes) == 1 and one.truncated
    zero = _walk(world, f"{P}/ent.steel", "down", 0)
    assert [n.id for n in zero.nodes] == [f"{P}/ent.steel"] and zero.truncated
    assert zero.edges == []
    small = walk(world.resolver, f"{P}/ent.steel", "down", 4, max_nodes=10)
    assert small.truncated and len(small.nodes) <= 20
    with pytest.raises(InvalidRequestError, match="depth"):
        walk(world.resolver, f"{P}/ent.steel", "down", 10_000)
    with pytest.raises(InvalidRequestError, match="direction"):
        walk(world.resolver, f"{P}/ent.steel", "sideways", 2)  # type: ignore[arg-type]


def test_missing_external_and_deactivated_nodes(root: Resolver, owner: PrivateKey) -> None:
    inv = f"{P}/inv.x"
    rr = f"{P}/rr.old"
    v1 = R.new_record(rr, "reading_range", f"{P}/ent.a", owner)
    root.submit([v1, R.deactivation(v1, owner, "superseded by a re-anchored window")])
    root.submit([R.new_record(inv, "inventory", f"{P}/ent.a", owner, links=[
        ("computed_from", f"{P}/rr.never"), ("computed_from", "86.7000/rr.elsewhere"),
        ("computed_from", rr)])])
    graph = _walk_on(root, inv)
    state = {n.id: (n.state, n.status) for n in graph.nodes}
    assert state[f"{P}/rr.never"] == ("missing", None)
    assert state["86.7000/rr.elsewhere"] == ("external", None)
    assert state[rr] == ("present", "deactivated")
    with pytest.raises(DeactivatedError, match="superseded"):
        root.custody(rr, "up", 2)
    with pytest.raises(NotFoundError):
        root.custody(f"{P}/rr.never", "up", 2)


def _walk_on(resolver: Resolver, ident: str) -> CustodyGraph:
    graph = resolver.custody(ident, "down", 2)
    assert isinstance(graph, CustodyGraph)
    return graph


def test_walk_stops_at_cycles(root: Resolver, owner: PrivateKey) -> None:
    a, b = f"{P}/rep.a", f"{P}/rep.b"
    root.submit([R.new_record(a, "report", f"{P}/ent.a", owner, links=[("derived_from", b)]),
                 R.new_record(b, "report", f"{P}/ent.a", owner, links=[("derived_from", a)])])
    graph = _walk_on(root, a)
    assert {n.id for n in graph.nodes} == {a, b} and len(graph.edges) == 2


def test_rich_tree_and_svg(world: World) -> None:
    graph = _walk(world, f"{P}/ent.steel", "down", 4)
    console = Console(record=True, width=160)
    console.print(render_tree(graph))
    text = console.export_text()
    assert "enterprise 86.1000.1/ent.steel" in text and "reading_range" in text
    assert text.count("86.1000.1/dev.m1") == 1  # each node drawn once
    svg = render_svg(graph)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert svg.count("<rect") == len(graph.nodes) + 1  # + the background
    crowded = render_svg(graph, max_per_layer=2)
    assert "more reading_range" in crowded
    ET.fromstring(crowded)


def test_png_draws_the_same_layout(world: World) -> None:
    from io import BytesIO

    from PIL import Image

    graph = _walk(world, f"{P}/ent.steel", "down", 4)
    svg = ET.fromstring(render_svg(graph))
    image = Image.open(BytesIO(render_png(graph)))
    assert image.format == "PNG"
    assert image.size == (int(svg.attrib["width"]), int(svg.attrib["height"]))
    # Boxes are drawn in their type's colour: the enterprise box's outline is there.
    colours = {c for _, c in image.getcolors(maxcolors=1 << 16) or []}
    assert (0x1F, 0x6F, 0x8B) in colours
