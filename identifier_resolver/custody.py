"""The chain of custody: walking it, merging walks across nodes, drawing it.

The graph's edges are the typed links records declare (:data:`~.models.RELATIONS`
gives each relation's orientation). :func:`walk` goes breadth first from one
identifier, ``down`` (towards what it is made of: enterprise → sites → devices →
reading ranges; report → inventories → reading ranges) or ``up`` (towards what it
belongs to or feeds: reading range → device → site → enterprise, and → tree head →
anchor, and → inventory → report → attestation). Each level is one ``IN`` query for
links declared by the frontier and one for links pointing at it, so a walk costs
O(depth) queries per 900 identifiers, not one per edge.

Identifiers under a prefix another node is authoritative for are reported as
``external`` and not expanded; :func:`merge` lets a client splice in the walk the
other node returns. :func:`render_tree` draws a walk as a rich tree in the terminal,
:func:`render_svg` as a layered SVG graph (self-contained, no Graphviz needed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from xml.sax.saxutils import escape

from sqlalchemy import select

from ._internal.db import links, records
from .errors import DeactivatedError, InvalidRequestError, NotFoundError
from .models import (
    CustodyEdge,
    CustodyGraph,
    CustodyNode,
    Direction,
    HashRef,
    SignedRecord,
)

if TYPE_CHECKING:
    from rich.tree import Tree

    from .resolver import Resolver

__all__ = ["walk", "merge", "render_tree", "render_svg", "render_png", "reading_count"]

_CHUNK = 900


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def walk(resolver: Resolver, ident: str, direction: Direction = "down", depth: int = 3, *,
         proofs: bool = False, max_nodes: int | None = None) -> CustodyGraph:
    """Walk the custody graph from ``ident`` on ``resolver`` (which must be authoritative).

    ``depth`` hops at most (``0`` gives the node alone), at most ``max_nodes``
    identifiers (default: the node's setting); ``truncated`` says whether the walk
    stopped with more to see. With ``proofs``, present nodes carry their signed record
    and an inclusion proof against one tree head. Raises :class:`NotFoundError` if
    ``ident`` has no record and :class:`DeactivatedError` (with its history) if it was
    deactivated.
    """
    if direction not in ("up", "down"):
        raise InvalidRequestError(f"direction must be 'up' or 'down', got {direction!r}")
    limit = resolver.settings.max_depth
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= limit:
        raise InvalidRequestError(f"depth must be an integer from 0 to {limit}, got {depth!r}")
    max_nodes = max_nodes or resolver.settings.max_nodes
    opposite = "up" if direction == "down" else "down"
    with resolver.reader.connect() as conn:
        start = conn.execute(select(records.c.status).where(records.c.id == ident)).first()
        if start is None:
            conn.rollback()
            raise NotFoundError(f"{ident} is not registered", id=ident)
        if start.status == "deactivated":
            conn.rollback()
            resolver.resolve(ident)  # raises DeactivatedError with the proven history
            raise DeactivatedError(f"{ident} was deactivated")  # pragma: no cover
        level_of: dict[str, int] = {ident: 0}
        edges: set[tuple[str, str, str]] = set()
        frontier = [ident]
        truncated = False
        level = 0
        while frontier and level < depth:
            level += 1
            found: list[str] = []
            for chunk in _chunks(frontier):
                for row in conn.execute(select(links.c.source, links.c.rel, links.c.target).where(
                        links.c.source.in_(chunk), links.c.dir == direction)):
                    edges.add((row.source, row.rel, row.target))
                    if row.target not in level_of:
                        level_of[row.target] = level
                        found.append(row.target)
                for row in conn.execute(select(links.c.source, links.c.rel, links.c.target).where(
                        links.c.target.in_(chunk), links.c.dir == opposite)):
                    edges.add((row.source, row.rel, row.target))
                    if row.source not in level_of:
                        level_of[row.source] = level
                        found.append(row.source)
            if len(level_of) > max_nodes:
                truncated = True
                break
            frontier = [n for n in found if resolver.is_local(n)]
        if frontier and not truncated and level >= depth:
            truncated = _has_more(conn, frontier, direction, opposite)
        nodes = _nodes(resolver, conn, level_of, proofs)
        conn.rollback()
    delegations: dict[str, SignedRecord] = {}
    if proofs:
        for node in nodes:
            auth = resolver.authority_for(node.id.partition("/")[0])
            for d in () if auth is None or node.state != "present" else auth.chain:
                delegations[d.record.id] = d
    return CustodyGraph(
        root=ident, direction=direction, depth=depth, node_id=resolver.node_id, nodes=nodes,
        edges=[CustodyEdge(source=s, rel=r, target=t)  # type: ignore[arg-type]
               for s, r, t in sorted(edges) if s in level_of and t in level_of],
        truncated=truncated, delegations=list(delegations.values()))


def _has_more(conn: Any, frontier: Sequence[str], direction: str, opposite: str) -> bool:
    for chunk in _chunks(frontier):
        if conn.execute(select(links.c.source).where(
                links.c.source.in_(chunk), links.c.dir == direction).limit(1)).first():
            return True
        if conn.execute(select(links.c.target).where(
                links.c.target.in_(chunk), links.c.dir == opposite).limit(1)).first():
            return True
    return False


def _nodes(resolver: Resolver, conn: Any, level_of: dict[str, int],
           proofs: bool) -> list[CustodyNode]:
    ids = list(level_of)
    rows: dict[str, Any] = {}
    for chunk in _chunks(ids):
        for row in conn.execute(select(records.c.id, records.c.version, records.c.leaf_index,
                                       records.c.signed).where(records.c.id.in_(chunk))):
            rows[row.id] = row
    proof_of: dict[str, Any] = {}
    signed_of: dict[str, SignedRecord] = {}
    if proofs and rows:
        present = sorted(rows)
        datas = [bytes(rows[i].signed) for i in present]
        for i, data, proof in zip(present, datas, resolver._proofs(
                conn, [int(rows[i].leaf_index) for i in present], datas), strict=True):
            proof_of[i] = proof
            signed_of[i] = SignedRecord.model_validate_json(data)
    out = []
    for ident in ids:
        row = rows.get(ident)
        if row is None:
            state: Literal["missing", "external"] = (
                "external" if not resolver.is_local(ident) else "missing")
            out.append(CustodyNode(id=ident, depth=level_of[ident], state=state))
            continue
        rec = json.loads(bytes(row.signed))["record"]
        out.append(CustodyNode(
            id=ident, depth=level_of[ident], state="present", type=rec["type"],
            status=rec["status"], owner=rec["owner"], version=rec["version"],
            hash=None if rec["hash"] is None else HashRef(**rec["hash"]), data=rec["data"],
            record=signed_of.get(ident), proof=proof_of.get(ident)))
    out.sort(key=lambda n: (n.depth, n.type or "~", n.id))
    return out


def merge(graph: CustodyGraph, at: str, other: CustodyGraph) -> CustodyGraph:
    """Splice ``other`` (a walk rooted at the external node ``at``) into ``graph``.

    Depths of ``other`` are shifted by ``at``'s depth; nodes already present keep their
    shallower depth. Used by clients to continue a walk across nodes.
    """
    base = {n.id: n for n in graph.nodes}
    offset = base[at].depth if at in base else 0
    for node in other.nodes:
        shifted = node.model_copy(update={"depth": node.depth + offset})
        mine = base.get(node.id)
        if mine is None or mine.state != "present" or mine.depth > shifted.depth:
            base[node.id] = shifted if mine is None or mine.state != "present" else \
                mine.model_copy(update={"depth": shifted.depth})
    edges = {(e.source, e.rel, e.target): e for e in (*graph.edges, *other.edges)}
    delegations = {d.record.id: d for d in (*graph.delegations, *other.delegations)}
    nodes = sorted(base.values(), key=lambda n: (n.depth, n.type or "~", n.id))
    return graph.model_copy(update={
        "nodes": nodes, "edges": [edges[k] for k in sorted(edges)],
        "truncated": graph.truncated or other.truncated,
        "delegations": list(delegations.values())})


def reading_count(graph: CustodyGraph) -> int:
    """Readings covered by the reading ranges of a walk (sum of their ``count``)."""
    total = 0
    for node in graph.nodes:
        count = node.data.get("count")
        if node.type == "reading_range" and isinstance(count, int):
            total += count
    return total


# -- drawing ------------------------------------------------------------------------

_COLOURS: dict[str, str] = {
    "enterprise": "#1f6f8b", "site": "#2a9d8f", "device": "#e9c46a", "gateway": "#f4a261",
    "reading_range": "#8ab17d", "tree_head": "#6d597a", "anchor": "#355070",
    "inventory": "#b56576", "report": "#e56b6f", "attestation": "#264653",
    "grant": "#9c6644", "maintenance": "#adb5bd", "calibration": "#adb5bd",
    "delegation": "#6c757d",
}
_STYLES: dict[str, str] = {
    "enterprise": "bold cyan", "site": "cyan", "device": "yellow", "gateway": "dark_orange",
    "reading_range": "green", "tree_head": "magenta", "anchor": "blue", "inventory": "red",
    "report": "bold red", "attestation": "bold white", "grant": "bright_black",
    "maintenance": "bright_black", "calibration": "bright_black", "delegation": "white",
}


def _summary(node: CustodyNode) -> str:
    d = node.data
    if node.type == "reading_range":
        return (f"{d.get('count')} readings, seq {d.get('first_seq')}..{d.get('last_seq')}, "
                f"leaves [{d.get('leaf_start')}, {d.get('leaf_end')})")
    if node.type == "tree_head":
        return f"size {d.get('tree_size')}"
    if node.type == "anchor":
        return f"block {d.get('block_number')} tx {str(d.get('tx_hash'))[:12]}…"
    for key in ("name", "period", "kind", "quantity", "certificate", "grantee"):
        if key in d:
            return f"{key} {d[key]}"
    return ""


def _parents(graph: CustodyGraph) -> dict[str, list[str]]:
    """Children of each node in the walk's breadth-first tree (first discoverer wins)."""
    depth = {n.id: n.depth for n in graph.nodes}
    children: dict[str, list[str]] = defaultdict(list)
    placed = {graph.root}
    for edge in graph.edges:
        for a, b in ((edge.source, edge.target), (edge.target, edge.source)):
            if a in depth and b in depth and b not in placed and depth[b] == depth[a] + 1:
                children[a].append(b)
                placed.add(b)
    return children


def render_tree(graph: CustodyGraph, *, max_children: int = 50) -> Tree:
    """A rich :class:`~rich.tree.Tree` of the walk (each node once, under its discoverer)."""
    from rich.markup import escape as rich_escape
    from rich.tree import Tree

    by_id = {n.id: n for n in graph.nodes}
    children = _parents(graph)

    def label(node: CustodyNode) -> str:
        if node.state != "present":
            return f"[dim]{rich_escape(node.id)} ({node.state})[/]"
        style = _STYLES.get(node.type or "", "white")
        status = "" if node.status == "active" else " [bold red]DEACTIVATED[/]"
        extra = _summary(node)
        return (f"[{style}]{node.type}[/] {rich_escape(node.id)}{status}"
                + (f" [dim]{rich_escape(extra)}[/]" if extra else ""))

    arrow = "↓" if graph.direction == "down" else "↑"
    tree = Tree(f"{arrow} custody {graph.direction} from {label(by_id[graph.root])}")

    def add(branch: Tree, ident: str) -> None:
        kids = sorted(children.get(ident, []), key=lambda i: (by_id[i].type or "~", i))
        for kid in kids[:max_children]:
            add(branch.add(label(by_id[kid])), kid)
        if len(kids) > max_children:
            branch.add(f"[dim]… {len(kids) - max_children} more[/]")

    add(tree, graph.root)
    if graph.truncated:
        tree.add("[dim]… truncated: raise --depth to see more[/]")
    return tree


@dataclass
class _Layout:
    """Where a drawing puts things: boxes ``(x, y, heading, subtitle, colour, key)``
    and arrows ``(x1, y1, x2, y2, relation)``, shared by the SVG and PNG renderers."""

    width: int
    height: int
    caption: str
    boxes: list[tuple[float, float, str, str, str, str]]
    arrows: list[tuple[float, float, float, float, str]]


_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN = 230, 46, 24, 70, 20


def _layout(graph: CustodyGraph, max_per_layer: int) -> _Layout:
    layers: dict[int, list[CustodyNode]] = defaultdict(list)
    for node in graph.nodes:
        layers[node.depth].append(node)
    drawn: dict[str, tuple[float, float]] = {}
    boxes: list[tuple[float, float, str, str, str, str]] = []
    alias: dict[str, str] = {}
    width = 0
    for depth in sorted(layers):
        nodes = sorted(layers[depth], key=lambda n: (n.type or "~", n.id))
        shown = nodes if len(nodes) <= max_per_layer else nodes[:max_per_layer - 1]
        rest = nodes[len(shown):]
        items: list[tuple[str, str, str, str]] = []  # key, title, subtitle, colour
        for n in shown:
            heading: str = n.type or n.state
            if n.status == "deactivated":
                heading += " (deactivated)"
            items.append((n.id, heading, n.id, _COLOURS.get(n.type or "", "#999999")))
        by_type: dict[str, list[CustodyNode]] = defaultdict(list)
        for n in rest:
            by_type[str(n.type or n.state)].append(n)
        for kind, group in sorted(by_type.items()):
            key = f"more:{depth}:{kind}"
            for n in group:
                alias[n.id] = key
            items.append((key, f"+ {len(group)} more {kind}", f"depth {depth}",
                          _COLOURS.get(kind, "#999999")))
        y = _MARGIN + depth * (_BOX_H + _GAP_Y)
        for i, (key, heading, subtitle, colour) in enumerate(items):
            x = _MARGIN + i * (_BOX_W + _GAP_X)
            drawn[key] = (x, y)
            sub = subtitle if len(subtitle) <= 34 else subtitle[:16] + "…" + subtitle[-16:]
            boxes.append((x, y, heading, sub, colour, key))
        width = max(width, _MARGIN * 2 + len(items) * (_BOX_W + _GAP_X))
    height = _MARGIN * 2 + (max(layers) + 1 if layers else 1) * (_BOX_H + _GAP_Y)
    arrows: list[tuple[float, float, float, float, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for edge in graph.edges:
        a, b = alias.get(edge.source, edge.source), alias.get(edge.target, edge.target)
        if a not in drawn or b not in drawn or (a, edge.rel, b) in seen or a == b:
            continue
        seen.add((a, edge.rel, b))
        (x1, y1), (x2, y2) = drawn[a], drawn[b]
        if y1 == y2:
            continue
        top, bottom = ((x1, y1), (x2, y2)) if y1 < y2 else ((x2, y2), (x1, y1))
        arrows.append((top[0] + _BOX_W / 2, top[1] + _BOX_H, bottom[0] + _BOX_W / 2, bottom[1],
                       edge.rel))
    caption = f"custody {graph.direction} from {graph.root} (depth {graph.depth})"
    return _Layout(max(width, 400), height, caption, boxes, arrows)


def render_svg(graph: CustodyGraph, *, max_per_layer: int = 24) -> str:
    """A layered SVG drawing of the walk: one row per depth, typed colour boxes, links
    as arrows labelled with their relation. Layers wider than ``max_per_layer`` show
    their first nodes and one box per type summarising the rest."""
    lay = _layout(graph, max_per_layer)
    boxes = [
        f'<g><rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
        f'fill="{colour}" fill-opacity="0.18" stroke="{colour}" stroke-width="1.5"/>'
        f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{escape(heading)}</text>'
        f'<text x="{x + 8}" y="{y + 36}">{escape(sub)}</text>'
        f"<title>{escape(key)}</title></g>"
        for x, y, heading, sub, colour, key in lay.boxes]
    arrows = [
        f'<path d="M{sx},{sy} C{sx},{sy + _GAP_Y / 2} {ex},{ey - _GAP_Y / 2} {ex},{ey}" '
        f'fill="none" stroke="#666" marker-end="url(#arrow)"/>'
        f'<text x="{(sx + ex) / 2 + 4}" y="{(sy + ey) / 2}" fill="#444" '
        f'font-size="10">{escape(rel)}</text>'
        for sx, sy, ex, ey, rel in lay.arrows]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}" font-family="sans-serif" font-size="12">'
        f"<title>{escape(lay.caption)}</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#666"/></marker></defs>'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(arrows)}{"".join(boxes)}'
        "</svg>\n")


def render_png(graph: CustodyGraph, *, max_per_layer: int = 24) -> bytes:
    """The same drawing as :func:`render_svg`, as PNG bytes (drawn with Pillow, no SVG
    rasteriser needed): for documents and viewers that take no SVG."""
    from io import BytesIO

    from PIL import Image, ImageDraw, ImageFont

    lay = _layout(graph, max_per_layer)
    image = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for sx, sy, ex, ey, rel in lay.arrows:
        draw.line([(sx, sy), (sx, sy + _GAP_Y / 2), (ex, ey - _GAP_Y / 2), (ex, ey)],
                  fill="#666666", width=1)
        draw.polygon([(ex, ey), (ex - 4, ey - 8), (ex + 4, ey - 8)], fill="#666666")
        draw.text(((sx + ex) / 2 + 4, (sy + ey) / 2 - 6), rel, fill="#444444", font=font)
    for x, y, heading, sub, colour, _ in lay.boxes:
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
        tint = tuple(round(255 - 0.18 * (255 - c)) for c in (r, g, b))
        draw.rounded_rectangle([x, y, x + _BOX_W, y + _BOX_H], radius=6, fill=tint,
                               outline=colour, width=2)
        draw.text((x + 8, y + 8), heading, fill="black", font=font)
        draw.text((x + 8, y + 26), sub.replace("…", "~"), fill="#222222", font=font)
    out = BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
