"""``carbon-ledger``: the command line. It parses arguments and calls public functions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from carbon_protocol.errors import ProtocolError

from .errors import LedgerError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="carbon-ledger: provable carbon data (signed readings, Merkle log, "
                       "on-chain anchors, offline proofs).")
console = Console(stderr=True, soft_wrap=True)


def _fail(diag: dict[str, object], exit_code: int = 1) -> None:
    code, message = escape(f"[{diag.get('code')}]"), escape(str(diag.get("message")))
    console.print(f"[bold red]error[/] {code} {message}")
    raise typer.Exit(exit_code)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    anchor_interval: Annotated[float, typer.Option(help="seconds between anchoring rounds")] = 1.0,
) -> None:
    """Run the ledger HTTP service (settings from LEDGER_* environment variables)."""
    import uvicorn

    from ._internal.anchor_loop import AnchorLoop
    from ._internal.logging_setup import configure_logging
    from .api import create_app
    from .ledger import Ledger

    configure_logging()  # LEDGER_LOG_FORMAT=json|text
    try:
        ledger = Ledger.open(rules=True)  # an embedded chain gets a RuleRegistry
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    loop = AnchorLoop(ledger, interval=anchor_interval)
    loop.start()
    try:
        uvicorn.run(create_app(ledger), host=host, port=port, log_level="warning")
    finally:
        loop.stop()


@app.command("export-proof")
def export_proof(
    reading_id: str,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="file to write")] = None,
) -> None:
    """Write the offline proof bundle of READING_ID (JSON)."""
    from .ledger import Ledger

    try:
        bundle = Ledger.open().export_proof(reading_id)
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    text = bundle.model_dump_json(indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@app.command()
def verify(
    bundle: Path,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL for the on-chain check")] = None,
    trusted_log_key: Annotated[list[str] | None, typer.Option(
        help="pin a trusted log key id (repeatable)")] = None,
    min_confirmations: int = 1,
) -> None:
    """Verify a proof bundle offline (plus the chain, with --rpc); non-zero exit names the
    failed step with expected and found values."""
    from carbon_protocol.chain_view import JsonRpcChainView
    from carbon_protocol.models import ProofBundle
    from carbon_protocol.verify import verify_bundle

    from ._cli_evidence import read_bundle_file, verify_evidence_file

    data, fmt = read_bundle_file(bundle)  # .json or .json.gz
    if fmt == "carbon-ledger/evidence/v1":  # one enterprise's whole chain for a period
        verify_evidence_file(data, rpc, min_confirmations)
        return
    try:
        parsed = ProofBundle.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        _fail({"code": "malformed_bundle",
               "message": f"step 0 (parse) failed: {loc}: {first['msg']}"})
    chain = JsonRpcChainView(rpc) if rpc else None
    try:
        report = verify_bundle(parsed, chain=chain, trusted_log_keys=trusted_log_key,
                               min_confirmations=min_confirmations)
    except ProtocolError as exc:
        _fail(exc.diagnostics())
    for n, step in enumerate(report.passed, 1):
        console.print(f"  [green]✓[/] {n}. {step}")
    if not report.chain_checked:
        console.print("  [yellow]–[/] 10. chain (skipped: no --rpc given)")
    console.print(f"[bold green]OK[/] {parsed.reading_id} is in log "
                  f"{parsed.signed_tree_head.tree_head.log_id} at index {parsed.leaf_index}, "
                  f"anchored in block {parsed.anchor.block_number} "
                  f"of chain {parsed.anchor.chain_id}")


from ._cli_evidence import export_evidence_command  # noqa: E402

app.command("export-evidence")(export_evidence_command)

inventory_app = typer.Typer(no_args_is_help=True, help="inventories the ledger holds: "
                            "show one, export its proof, verify a proof")
app.add_typer(inventory_app, name="inventory")

from ._cli_reports import offsets_app, quota_app, report_app  # noqa: E402

app.add_typer(report_app, name="report")
app.add_typer(quota_app, name="quota")
app.add_typer(offsets_app, name="offsets")

from ._cli_market import market_app  # noqa: E402

app.add_typer(market_app, name="market")

from ._cli_finance import finance_app  # noqa: E402

app.add_typer(finance_app, name="finance")

from ._cli_verification import verification_app  # noqa: E402

app.add_typer(verification_app, name="verification")


@inventory_app.command("show")
def inventory_show(inventory_id: str) -> None:
    """Print a stored inventory (JSON) with its receipt."""
    from .ledger import Ledger

    try:
        stored = Ledger.open().inventory(inventory_id)
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    sys.stdout.write(stored.model_dump_json(indent=2) + "\n")


@inventory_app.command("proof")
def inventory_proof(
    inventory_id: str,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="file to write")] = None,
    readings: Annotated[bool, typer.Option(
        help="include every reading used and their leaf-set proof")] = True,
) -> None:
    """Write the proof of INVENTORY_ID (JSON): leaf, inclusion, tree head, anchor and,
    by default, the readings it used."""
    from .ledger import Ledger

    try:
        proof = Ledger.open().inventory_proof(inventory_id, with_readings=readings)
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    text = proof.model_dump_json(indent=2, exclude_none=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@inventory_app.command("verify")
def inventory_verify(
    proof_file: Path,
    rpc: Annotated[str, typer.Option(help="JSON-RPC URL of the chain holding the anchor "
                                          "contract and the RuleRegistry")],
    signatures: Annotated[bool, typer.Option(
        help="verify every reading's device signature too (SM2: about 1.5 ms each)")] = True,
) -> None:
    """Verify an inventory proof as a stranger: signature, log, anchor and readings, then
    recompute every line from the proven readings, offline and by the RuleRegistry
    contract itself. Non-zero exit names what failed."""
    from carbon_protocol.chain_view import JsonRpcChainView
    from carbon_protocol.inventory import InventoryProof
    from carbon_rules.errors import RulesError
    from carbon_rules.inventory_verify import verify_inventory
    from carbon_rules.registry_client import RuleRegistryClient

    try:
        proof = InventoryProof.model_validate_json(proof_file.read_bytes())
    except OSError as exc:
        _fail({"code": "unreadable", "message": f"cannot read {proof_file}: {exc}"}, 2)
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail({"code": "malformed_proof", "message":
               f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"})
    rule = proof.signed_inventory.inventory.rule
    try:
        registry = RuleRegistryClient.connect(rpc, rule.registry,
                                              expected_chain_id=rule.chain_id)
        report = verify_inventory(proof, registry, chain=JsonRpcChainView(rpc),
                                  check_signatures=signatures)
    except (RulesError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    inv = proof.signed_inventory.inventory
    for line in inv.lines:
        console.print(f"  [green]✓[/] line {line.line} {line.readings.device}: "
                      f"{line.readings.count} proven readings, {line.emissions} tCO2e "
                      f"(contract: {report.on_chain[line.line]})")
    console.print(f"[bold green]OK[/] {proof.inventory_id}: {inv.totals.total} tCO2e for "
                  f"{inv.period.label} under {rule.methodology_id} v{rule.version}, "
                  f"{report.readings} readings proven against the tree head anchored in "
                  f"block {proof.anchor.block_number} of chain {proof.anchor.chain_id}"
                  + ("" if report.signatures_checked else " (device signatures not checked)"))


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its files (wiped)")] = Path(
        "var/demo"),
    days: Annotated[int, typer.Option(min=1, max=366, help="days of readings")] = 31,
) -> None:
    """Run the whole trust chain on the embedded default (SQLite + in-process EVM)."""
    from .demo import run_demo

    summary = run_demo(data_dir, days=days, console=Console())
    ok = (summary.rejected == 0 and summary.tamper_step is not None
          and len(summary.verified_steps) == 10)
    raise typer.Exit(0 if ok else 1)


@app.command()
def devchain(
    node: Annotated[Literal["anvil", "ganache"], typer.Option(
        help="which development node to run")] = "anvil",
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8545,
    out: Annotated[Path, typer.Option(help="deployment file to write")] = Path(
        "var/deployment.json"),
    state: Annotated[Path | None, typer.Option(
        help="keep the chain in this file (anvil) or directory (ganache) across restarts; "
             "the contract in --out is reused while it is still there")] = None,
    block_time: Annotated[float | None, typer.Option(
        help="mine a block every N seconds (default: one per transaction)")] = None,
    hardfork: Annotated[str | None, typer.Option(help="EVM hardfork of the node")] = None,
    anchorer: Annotated[list[str] | None, typer.Option(
        help="also grant ANCHORER_ROLE to this address (repeatable)")] = None,
    rules: Annotated[bool, typer.Option(
        help="also deploy a RuleRegistry and publish the default methodology in it "
             "(inventories need it)")] = False,
    rules_effective_from: Annotated[int | None, typer.Option(
        help="with --rules: Unix time from which the default methodology applies "
             "(default: now; versions cannot be retroactive)")] = None,
) -> None:
    """Start a development chain on 127.0.0.1, deploy CarbonAnchor (and with --rules a
    RuleRegistry holding the default methodology) with a dev key, write the deployment
    file, and run until Ctrl-C (then stop the node)."""
    from .devchain import run_devchain

    def ready(dep: object) -> None:
        info = dep.model_dump()  # type: ignore[attr-defined]
        console.print(f"{node} on {info['rpc_url']} (chain {info['chain_id']}), CarbonAnchor "
                      f"at {info['contract_address']}"
                      + (f", RuleRegistry at {info['rule_registry_address']}"
                         if info.get("rule_registry_address") else "") + f"; wrote {out}")
        console.print(f"use it with LEDGER_DEPLOYMENT_FILE={out} and LEDGER_ANCHOR_PRIVATE_KEY "
                      "(a key holding ANCHORER_ROLE); Ctrl-C stops the node")

    try:
        code = run_devchain(node, port=port, out=out, state=state,
                            block_time=block_time, hardfork=hardfork,
                            anchorers=anchorer or (), on_ready=ready, rules=rules,
                            rules_effective_from=rules_effective_from)
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    raise typer.Exit(code)


apikey_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service: issue, "
                         "list, revoke (on the database LEDGER_* settings name)")
app.add_typer(apikey_app, name="apikey")


def _key_database() -> Any:
    """The ledger's database, migrated. Only LEDGER_DATA_DIR and LEDGER_DATABASE_URL are
    read: managing keys must not need the chain's settings (an anchoring key, say)."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from ._internal import migrations
    from ._internal.db import make_engine
    from .settings import Settings

    class Where(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")
        data_dir: Path = Settings.model_fields["data_dir"].default
        database_url: str | None = None

    where = Where()
    engine = make_engine(Settings.model_construct(
        data_dir=where.data_dir, database_url=where.database_url).resolved_database_url)
    migrations.upgrade(engine)
    return engine


@apikey_app.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="enterprise, gateway, buyer, verifier, regulator, "
                                           "bank, association or admin")],
    enterprise: Annotated[list[str] | None, typer.Option(
        help="the key's enterprise (once for enterprise, gateway, buyer; any number of "
             "times for a verifier)")] = None,
    label: Annotated[str, typer.Option(help="who or what holds the key")] = "cli",
    party: Annotated[str | None, typer.Option(
        help="the organisation the key belongs to (86.1000.1/bank.x, 86.1000.1/vfr.y): "
             "required for bank and verifier keys, optional for regulator and admin")] = None,
    stdin: Annotated[bool, typer.Option(
        "--stdin", help="register the key read from stdin (from `apikey generate`) instead "
                        "of a new one, e.g. the GATEWAY_API_KEY a deployment gives a gateway")
    ] = False,
) -> None:
    """Issue a key and print it (stdout, alone): it is shown this once."""
    from .auth import KeyCreate, create_key

    try:
        request = KeyCreate.model_validate({"role": role, "enterprises": enterprise or [],
                                            "label": label, "party": party})
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail({"code": "invalid_input", "message": f"{first['msg']}"}, 2)
    engine = _key_database()
    try:
        with engine.begin() as conn:
            issued = create_key(conn, request, sys.stdin.readline().strip() if stdin else None)
    except LedgerError as exc:
        _fail(exc.diagnostics())
    finally:
        engine.dispose()
    console.print(f"issued key {issued.key_id} ({issued.role}"
                  f"{': ' + ', '.join(issued.enterprises) if issued.enterprises else ''}"
                  f"{' of ' + issued.party if issued.party else ''}); "
                  "store it now, it is not shown again", highlight=False)
    sys.stdout.write(issued.api_key + "\n")


@apikey_app.command("generate")
def apikey_generate() -> None:
    """Print a new well-formed key without registering it (for ``create --stdin``)."""
    from .auth.keys import generate_key

    sys.stdout.write(generate_key() + "\n")


@apikey_app.command("list")
def apikey_list() -> None:
    """Print every key (JSON, without secrets), revoked ones included."""
    import json

    from .auth import list_keys

    engine = _key_database()
    try:
        with engine.connect() as conn:
            keys = list_keys(conn)
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps([k.model_dump(mode="json") for k in keys], indent=2) + "\n")


@apikey_app.command("revoke")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key: every later request with it is refused (401)."""
    from .auth import revoke_key

    engine = _key_database()
    try:
        with engine.begin() as conn:
            key = revoke_key(conn, key_id)
    except LedgerError as exc:
        _fail(exc.diagnostics())
    finally:
        engine.dispose()
    console.print(f"revoked key {key.key_id} at {key.revoked_at}", highlight=False)


def _mount_resolver_commands() -> None:
    """``carbon-ledger resolve ID`` and ``carbon-ledger custody ID`` (issue 5)."""
    from identifier_resolver._cli import custody_command, resolve_command

    app.command("resolve", help=resolve_command.__doc__)(resolve_command)
    app.command("custody", help=custody_command.__doc__)(custody_command)


_mount_resolver_commands()


def main() -> None:
    """Entry point of the ``carbon-ledger`` script."""
    app()


if __name__ == "__main__":
    main()
