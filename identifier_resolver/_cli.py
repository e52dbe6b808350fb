"""``python -m identifier_resolver``: serve a node, resolve, walk custody.

The commands only parse arguments and call public functions. ``resolve`` and
``custody`` work two ways: against the local node's database (``RESOLVER_*``
settings; read-only, no chain is started), or with ``--trust FILE`` / ``--node URL``
through :class:`~identifier_resolver.client.ResolverClient`, following referrals from
the root and verifying every answer.

To mount the commands in another typer app::

    from identifier_resolver._cli import custody_command, resolve_command
    app.command("resolve")(resolve_command)
    app.command("custody")(custody_command)
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from carbon_protocol.errors import ProtocolError

from .errors import DeactivatedError, ResolverError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Identifier resolution (标识解析): records, delegation, custody graphs.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

__all__ = ["app", "main", "resolve_command", "custody_command", "serve_command"]


def _fail(diag: dict[str, Any], exit_code: int = 1) -> NoReturn:
    code, message = escape(f"[{diag.get('code')}]"), escape(str(diag.get("message")))
    err.print(f"[bold red]error[/] {code} {message}")
    raise typer.Exit(exit_code)


def _invalid(exc: ValidationError | OSError) -> NoReturn:
    if isinstance(exc, ValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                            for e in exc.errors()[:3])
        _fail({"code": "invalid_settings_or_input", "message": message})
    _fail({"code": "unreadable", "message": str(exc)})


def _local() -> Any:
    from .resolver import Resolver
    from .settings import ResolverSettings

    settings = ResolverSettings()
    return Resolver.open(settings.model_copy(update={"chain": "none"}))


def _client(trust_file: Path | None, node: str | None) -> Any:
    import httpx

    from .client import ResolverClient
    from .models import TrustRoot

    if trust_file is not None:
        trust = TrustRoot.model_validate_json(trust_file.read_bytes())
        if node is not None:
            trust = trust.model_copy(update={"url": node})
    else:
        assert node is not None
        resp = httpx.get(node.rstrip("/") + "/trust", timeout=10)
        if resp.status_code != 200:
            _fail({"code": "no_trust_root", "message": f"{node} gave no trust root "
                                                       f"({resp.status_code}); pass --trust"})
        trust = TrustRoot.model_validate(resp.json()).model_copy(update={"url": node})
        err.print("[yellow]warning[/] trust root fetched from the node itself, not pinned: "
                  f"owner key {trust.owner_keys[0].key_id}, log key {trust.log_key.key_id}")
    return ResolverClient(trust)


def _print_answer(answer: Any, passed: list[str] | None = None) -> None:
    record = answer.record.record
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("id", escape(record.id))
    table.add_row("type", record.type)
    status = "[green]active[/]" if record.status == "active" else "[bold red]deactivated[/]"
    table.add_row("status", f"{status} (version {record.version}, {record.updated_at})")
    table.add_row("owner", escape(record.owner))
    if record.hash is not None:
        table.add_row("hash", f"{record.hash.alg}:{record.hash.value}")
    for key in record.keys:
        validity = f" from {key.valid_from}" if key.valid_from else ""
        validity += f" revoked {key.revoked_at}" if key.revoked_at else ""
        table.add_row(f"key ({key.role})", f"{key.suite} {key.key_id}{validity}")
    for link in record.links[:20]:
        table.add_row(f"→ {link.rel}", escape(link.target))
    if len(record.links) > 20:
        table.add_row("→ …", f"{len(record.links) - 20} more links")
    for name, value in record.data.items():
        table.add_row(escape(name), escape(str(value)))
    for version in answer.history:
        r = version.record
        table.add_row(f"history v{r.version}", f"{r.status} {r.updated_at} "
                      f"{escape(r.reason or '')}")
    proof = answer.proof
    anchored = ("not anchored yet" if proof.anchor is None else
                f"anchored at size {proof.anchor.tree_size}, block {proof.anchor.block_number}, "
                f"tx {proof.anchor.tx_hash}")
    table.add_row("proof", f"leaf {proof.leaf_index} of {proof.tree_size} in {proof.log_id}; "
                  f"{anchored}")
    if passed is not None:
        table.add_row("verified", ", ".join(passed))
    out.print(table)


@app.command("resolve")
def resolve_command(
    ident: Annotated[str, typer.Argument(metavar="ID", help="identifier <prefix>/<suffix>")],
    trust: Annotated[Path | None, typer.Option(
        help="pinned trust root (JSON from 'trust'); resolve from its URL and verify")] = None,
    node: Annotated[str | None, typer.Option(
        help="root node URL (with --trust: overrides its URL)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
) -> None:
    """Resolve ID to its record: owner, keys, hash, links, status, history, proof."""
    try:
        if trust is None and node is None:
            resolver = _local()
            try:
                answer, passed = resolver.resolve(ident), None
            except DeactivatedError as exc:
                answer, passed = exc.answer, None
                _show(answer, passed, as_json)
                _fail(exc.diagnostics())
        else:
            with _client(trust, node) as client:
                try:
                    verified = client.resolve(ident)
                except DeactivatedError as exc:
                    _show(exc.answer.answer, exc.answer.passed, as_json)
                    _fail(exc.diagnostics())
                answer, passed = verified.answer, verified.passed
    except (ResolverError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    except (OSError, ValidationError) as exc:
        _invalid(exc)
    _show(answer, passed, as_json)


def _show(answer: Any, passed: list[str] | None, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
    else:
        _print_answer(answer, passed)


@app.command("custody")
def custody_command(
    ident: Annotated[str, typer.Argument(metavar="ID", help="identifier to start from")],
    direction: Annotated[str, typer.Option(
        help="down: what ID is made of; up: what it belongs to or feeds")] = "down",
    depth: Annotated[int, typer.Option(min=0, max=256, help="hops to walk")] = 3,
    svg: Annotated[Path | None, typer.Option(help="also write the graph as SVG here")] = None,
    png: Annotated[Path | None, typer.Option(help="also write the graph as PNG here")] = None,
    trust: Annotated[Path | None, typer.Option(help="pinned trust root (JSON)")] = None,
    node: Annotated[str | None, typer.Option(help="root node URL")] = None,
    proofs: Annotated[bool, typer.Option(help="fetch and verify every node's proof")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the graph as JSON")] = False,
) -> None:
    """Walk the custody graph from ID and draw it as a tree (and an SVG or PNG graph)."""
    from .custody import render_png, render_svg, render_tree
    from .models import Answer

    if direction not in ("up", "down"):
        _fail({"code": "invalid_request", "message": "--direction must be 'up' or 'down'"})
    try:
        if trust is None and node is None:
            graph = _local().custody(ident, direction, depth, proofs=proofs)
            if isinstance(graph, Answer):
                _fail({"code": "not_authoritative",
                       "message": f"{ident} is delegated to {graph.record.record.data['url']}; "
                                  "use --node/--trust to follow the referral"})
        else:
            with _client(trust, node) as client:
                graph = client.custody(ident, direction, depth, proofs=proofs)
    except (ResolverError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    except (OSError, ValidationError) as exc:
        _invalid(exc)
    if as_json:
        sys.stdout.write(graph.model_dump_json(indent=2) + "\n")
    else:
        out.print(render_tree(graph))
        present = sum(n.state == "present" for n in graph.nodes)
        out.print(f"[dim]{len(graph.nodes)} identifiers ({present} with records here), "
                  f"{len(graph.edges)} links[/]")
    if svg is not None:
        svg.write_text(render_svg(graph), encoding="utf-8")
        err.print(f"wrote {svg}")
    if png is not None:
        png.write_bytes(render_png(graph))
        err.print(f"wrote {png}")


@app.command("serve")
def serve_command(
    host: str = "127.0.0.1",
    port: int = 8100,
    anchor_interval: Annotated[float, typer.Option(
        help="seconds between anchoring rounds")] = 2.0,
) -> None:
    """Run a resolver node over HTTP (settings from RESOLVER_* environment variables)."""
    import uvicorn

    from .api import create_asgi
    from .resolver import Resolver

    try:
        resolver = Resolver.open()
    except (ResolverError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    except ValidationError as exc:
        _invalid(exc)
    stop = threading.Event()

    def anchor_loop() -> None:
        while not stop.wait(anchor_interval):
            try:
                resolver.anchor_tick()
            except ResolverError as exc:
                err.print(f"[yellow]anchoring deferred[/] {escape(str(exc))}")

    worker = threading.Thread(target=anchor_loop, name="resolver-anchor", daemon=True)
    worker.start()
    try:
        uvicorn.run(create_asgi(resolver), host=host, port=port, log_level="warning",
                    access_log=False)
    finally:
        stop.set()
        worker.join(timeout=5)


@app.command("trust")
def trust_command(
    url: Annotated[str | None, typer.Option(help="the URL clients reach this root at")] = None,
) -> None:
    """Print this root node's trust root (JSON) for clients to pin."""
    try:
        sys.stdout.write(_local().trust_root(url).model_dump_json(indent=2) + "\n")
    except (ResolverError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    except (OSError, ValidationError) as exc:
        _invalid(exc)


@app.command("sync-ledger")
def sync_ledger_command(
    owner_key: Annotated[list[Path], typer.Option(
        help="PEM private key of a prefix owner (repeatable), as PREFIX=FILE")],
) -> None:
    """Register identifiers for what the ledger (LEDGER_* settings) holds; idempotent."""
    from carbon_protocol.suites import PrivateKey
    from ledger_service.errors import LedgerError
    from ledger_service.ledger import Ledger

    from .bridge import sync_ledger
    from .resolver import Resolver

    keyring = {}
    for item in owner_key:
        prefix, sep, path = str(item).partition("=")
        if not sep:
            _fail({"code": "invalid_request", "message": f"--owner-key wants PREFIX=FILE, "
                                                         f"got {item}"})
        try:
            keyring[prefix] = PrivateKey.from_pem(Path(path).read_bytes())
        except ProtocolError as exc:
            _fail(exc.diagnostics())
        except OSError as exc:
            _invalid(exc)
    try:
        ledger = Ledger.open()
        report = sync_ledger(ledger, Resolver.open(chain=ledger.chain), keyring)
    except (ResolverError, ProtocolError, LedgerError) as exc:
        _fail(exc.diagnostics())
    except (OSError, ValidationError) as exc:
        _invalid(exc)
    out.print(f"registered {report.registered}, updated {report.updated}, unchanged "
              f"{report.unchanged}, deactivated {report.deactivated}; {report.windows} reading "
              f"windows, {report.readings} readings; skipped {len(report.skipped)}")


def main() -> None:
    """Entry point of ``python -m identifier_resolver`` (and a ``carbon-resolver`` script)."""
    app()


if __name__ == "__main__":
    main()
