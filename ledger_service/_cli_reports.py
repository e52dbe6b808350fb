"""``carbon-ledger report|quota|offsets``: reports, quotas and offsets from the shell.

The rule package (web3, matplotlib, ReportLab) is imported inside each command, so
mounting these groups costs ``carbon-ledger --help`` nothing.

``report build`` reads inventories from the ledger (``LEDGER_*`` settings); everything
else works on files and, for quotas, a JSON-RPC node, so a regulator or an enterprise
can use it without running a ledger. Inputs are validated by the same pydantic models
as the API; errors print their stable code and exit 1 (2 for an unreadable file).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from carbon_rules.quotas_client import QuotaRegistryClient
    from carbon_rules.reports import InventoryReport

__all__ = ["offsets_app", "quota_app", "report_app"]

console = Console(stderr=True, soft_wrap=True)
report_app = typer.Typer(no_args_is_help=True, help="inventory reports (GB/T 32151 / ISO "
                         "14064-1): build from the ledger's inventories, hash, render PDF")
quota_app = typer.Typer(no_args_is_help=True, help="annual quotas (配额) on a QuotaRegistry, "
                        "and reconciliation against them")
offsets_app = typer.Typer(no_args_is_help=True, help="claim green power, GEC and CCER offsets, "
                          "each serial and MWh once")

M = TypeVar("M", bound=BaseModel)
Suite = Literal["sm", "intl"]
_KEY_ENV = "QUOTA_PRIVATE_KEY"
SuiteOpt = Annotated[Suite, typer.Option(help="the log's suite: sm (SM3) or intl (SHA-256)")]


def _fail(diag: dict[str, object], exit_code: int = 1) -> NoReturn:
    code, message = escape(f"[{diag.get('code')}]"), escape(str(diag.get("message")))
    console.print(f"[bold red]error[/] {code} {message}")
    raise typer.Exit(exit_code)


def _read(model: type[M], path: Path) -> M:
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        _fail({"code": "unreadable", "message": f"cannot read {path}: {exc}"}, 2)
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail({"code": "invalid_input", "message": f"{path}: "
               f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"})


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


def _report_file(path: Path) -> InventoryReport:
    """A report, bare or as ``POST /v1/reports`` returns it (``{"report": ...}``)."""
    from carbon_rules.reports import InventoryReport

    try:
        raw = json.loads(path.read_bytes())
    except OSError as exc:
        _fail({"code": "unreadable", "message": f"cannot read {path}: {exc}"}, 2)
    except ValueError as exc:
        _fail({"code": "invalid_input", "message": f"{path} is not JSON: {exc}"})
    if isinstance(raw, dict) and "report" in raw and "format" not in raw:
        raw = raw["report"]
    try:
        return InventoryReport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail({"code": "invalid_input", "message": f"{path}: "
               f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"})


# -- report ---------------------------------------------------------------------------


@report_app.command("build")
def report_build(
    request: Annotated[Path, typer.Argument(help="JSON request (the body of POST /v1/reports)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="file to write")] = None,
) -> None:
    """Build a report from inventories the ledger holds and append it to the ledger's
    log; writes {report_id, hash, suite, leaf_index, leaf_hash, report}."""
    from .errors import LedgerError
    from .ledger import Ledger
    from .reports import ReportRequest, build

    req = _read(ReportRequest, request)
    try:
        _, built = build(Ledger.open(), req)
    except LedgerError as exc:
        _fail(exc.diagnostics())
    _write(built.model_dump_json(indent=2) + "\n", out)
    console.print(f"report {built.report_id} {built.suite} hash {built.hash} "
                  f"leaf {built.leaf_index}")


@report_app.command("hash")
def report_hash_cmd(
    report: Path,
    suite: SuiteOpt = "sm",
) -> None:
    """Print the report's id and the hash of its RFC 8785 JSON (what gets anchored)."""
    from carbon_rules.reports import report_hash, report_id

    parsed = _report_file(report)
    sys.stdout.write(f"{report_id(parsed, suite)} {report_hash(parsed, suite).hex()}\n")


@report_app.command("pdf")
def report_pdf(
    report: Path,
    out: Annotated[Path, typer.Option("--out", "-o", help="PDF file to write")],
    suite: SuiteOpt = "sm",
) -> None:
    """Render a report JSON as PDF: charts, its hash on every page, a QR code of its proof
    link."""
    from carbon_rules.reports import report_id
    from carbon_rules.reports.pdf import render_pdf

    parsed = _report_file(report)
    out.write_bytes(render_pdf(parsed, suite))
    console.print(f"wrote {out} ({report_id(parsed, suite)})")


@report_app.command("verify")
def report_verify(
    report: Path,
    proofs: Annotated[list[Path], typer.Argument(
        help="the proof of every inventory the report names (carbon-ledger inventory proof)")],
    rpc: Annotated[str | None, typer.Option(
        help="JSON-RPC URL: also check the stated on-chain quota (with --quota-registry)")] = None,
    quota_registry: Annotated[str | None, typer.Option(help="QuotaRegistry address")] = None,
    suite: SuiteOpt = "sm",
) -> None:
    """Rebuild REPORT from its inventories' proofs and compare byte for byte (and, with
    --rpc and --quota-registry, the quota it states). Check each proof against the chain
    with `carbon-ledger inventory verify`."""
    from carbon_protocol.inventory import InventoryProof
    from carbon_rules.errors import RulesError
    from carbon_rules.reports import report_hash, report_id
    from carbon_rules.reports.verify import logged_from_proof, verify_report

    parsed = _report_file(report)
    logged = [logged_from_proof(_read(InventoryProof, p)) for p in proofs]
    if (rpc is None) != (quota_registry is None):
        _fail({"code": "invalid_input",
               "message": "give both --rpc and --quota-registry, or neither"}, 2)
    try:
        quotas = (None if rpc is None or quota_registry is None
                  else _client(rpc, quota_registry, None))
        verify_report(parsed, logged, quotas=quotas)
    except RulesError as exc:
        _fail(exc.diagnostics())
    console.print(f"[bold green]OK[/] {report_id(parsed, suite)} rebuilds from its "
                  f"{len(logged)} inventories; {suite} hash {report_hash(parsed, suite).hex()}")


# -- quota ----------------------------------------------------------------------------


def _key(key_file: Path | None) -> str:
    if key_file is not None:
        try:
            return key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            _fail({"code": "unreadable", "message": f"cannot read {key_file}: {exc}"}, 2)
    key = os.environ.get(_KEY_ENV)
    if not key:
        _fail({"code": "no_key", "message": f"give --key-file or set {_KEY_ENV}"}, 2)
    return key


def _target(rpc: str | None, registry: str | None, deployment: Path | None
            ) -> tuple[str, str]:
    """The chain and registry named, else those of the deployment file."""
    if rpc is not None and registry is not None:
        return rpc, registry
    if deployment is None:
        _fail({"code": "no_quota_registry", "message": "give --rpc and --registry, or a "
               "deployment file (--deployment or LEDGER_DEPLOYMENT_FILE)"}, 2)
    from .deployment import Deployment
    from .errors import LedgerError

    try:
        loaded = Deployment.load(deployment)
    except LedgerError as exc:
        _fail(exc.diagnostics(), 2)
    if registry is None and loaded.quota_registry_address is None:
        _fail({"code": "no_quota_registry", "message": f"{deployment} names no QuotaRegistry "
               "(deploy with `carbon-ledger devchain --rules`)"}, 2)
    return rpc or loaded.rpc_url, registry or str(loaded.quota_registry_address)


def _client(rpc: str, registry: str, key: str | None) -> QuotaRegistryClient:
    from carbon_rules.errors import RulesError
    from carbon_rules.quotas_client import QuotaRegistryClient

    try:
        return QuotaRegistryClient.connect(rpc, registry, key)
    except RulesError as exc:
        _fail(exc.diagnostics())


RpcOpt = Annotated[str, typer.Option(help="JSON-RPC URL of the chain")]
TargetRpcOpt = Annotated[str | None, typer.Option(
    help="JSON-RPC URL of the chain (default: the deployment file's)")]
RegistryOpt = Annotated[str | None, typer.Option(
    help="QuotaRegistry address (default: the deployment file's)")]
DeploymentOpt = Annotated[Path | None, typer.Option(
    "--deployment", envvar="LEDGER_DEPLOYMENT_FILE",
    help="deployment file of `carbon-ledger devchain --rules`: its QuotaRegistry and "
         "JSON-RPC URL are the defaults")]
KeyOpt = Annotated[Path | None, typer.Option(
    help=f"file holding the regulator's hex private key (default: ${_KEY_ENV})")]


@quota_app.command("deploy")
def quota_deploy(rpc: RpcOpt, key_file: KeyOpt = None) -> None:
    """Deploy a QuotaRegistry; the key's account becomes admin and regulator."""
    from web3 import HTTPProvider, Web3

    from carbon_rules.errors import RulesError
    from carbon_rules.quotas_client import QuotaRegistryClient

    try:
        address = QuotaRegistryClient.deploy(Web3(HTTPProvider(rpc)), _key(key_file))
    except RulesError as exc:
        _fail(exc.diagnostics())
    sys.stdout.write(address + "\n")


@quota_app.command("issue")
def quota_issue(enterprise: str, year: int, allocation: str,
                document: Annotated[str, typer.Option(help="allocation document reference")],
                rpc: TargetRpcOpt = None, registry: RegistryOpt = None,
                deployment: DeploymentOpt = None,
                key_file: KeyOpt = None) -> None:
    """Issue ENTERPRISE's quota for YEAR: ALLOCATION tCO2e (needs REGULATOR_ROLE)."""
    from carbon_rules.errors import RulesError
    from carbon_rules.fixed_point import parse

    try:
        rc = _client(*_target(rpc, registry, deployment), _key(key_file)).issue(
            enterprise, year, parse(allocation), document)
    except RulesError as exc:
        _fail(exc.diagnostics())
    console.print(f"issued {allocation} tCO2e to {enterprise} for {year} in tx {rc.tx_hash}")


@quota_app.command("adjust")
def quota_adjust(enterprise: str, year: int, allocation: str,
                 document: Annotated[str, typer.Option(help="allocation document reference")],
                 rpc: TargetRpcOpt = None, registry: RegistryOpt = None,
                 deployment: DeploymentOpt = None,
                 key_file: KeyOpt = None) -> None:
    """Replace ENTERPRISE's quota for YEAR with ALLOCATION tCO2e (a new revision)."""
    from carbon_rules.errors import RulesError
    from carbon_rules.fixed_point import parse

    try:
        adjusted = _client(*_target(rpc, registry, deployment), _key(key_file)).adjust(
            enterprise, year, parse(allocation), document)
    except RulesError as exc:
        _fail(exc.diagnostics())
    console.print(f"revision {adjusted.revision}: {allocation} tCO2e for {enterprise} in "
                  f"{year} in tx {adjusted.receipt.tx_hash}")


@quota_app.command("show")
def quota_show(enterprise: str, year: int, rpc: TargetRpcOpt = None,
               registry: RegistryOpt = None, deployment: DeploymentOpt = None) -> None:
    """Print the quota in force and every revision (JSON lines, oldest first)."""
    from carbon_rules.errors import RulesError
    from carbon_rules.fixed_point import to_decimal

    try:
        history = _client(*_target(rpc, registry, deployment), None).history(enterprise, year)
    except RulesError as exc:
        _fail(exc.diagnostics())
    if not history:
        _fail({"code": "quota_not_issued", "message": f"no quota for {enterprise} in {year}"})
    for h in history:
        sys.stdout.write(f'{{"revision": {h.revision}, "allocation": '
                         f'"{to_decimal(h.allocation)}", "document": '
                         f'{json.dumps(h.document, ensure_ascii=False)}, '
                         f'"regulator": "{h.regulator}", "set_at": {h.set_at}}}\n')


@quota_app.command("reconcile")
def quota_reconcile(
    request: Path,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL (with --registry)")] = None,
    registry: Annotated[str | None, typer.Option(help="QuotaRegistry address")] = None,
) -> None:
    """Emissions to date, forecast and surplus/deficit; the on-chain quota (if --rpc and
    --registry) overrides the file's internal one."""
    from carbon_rules.errors import RulesError
    from carbon_rules.quotas_reconcile import ReconcileInput

    req = _read(ReconcileInput, request)
    if (rpc is None) != (registry is None):
        _fail({"code": "invalid_input", "message": "give both --rpc and --registry, or neither"},
              2)
    try:
        chain = None if rpc is None or registry is None else _client(rpc, registry, None)
        result = req.run(chain)
    except RulesError as exc:
        _fail(exc.diagnostics())
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    console.print(f"{req.enterprise} {req.year}: forecast {result.forecast} t "
                  f"({result.forecast_method}) against {result.quota.allocation} t "
                  f"({result.quota.origin}): {result.position} {result.balance} t")


# -- offsets --------------------------------------------------------------------------


@offsets_app.command("claim")
def offsets_claim(
    request: Path,
    db: Annotated[Path, typer.Option(help="the offsets record (SQLite, created if missing)")],
) -> None:
    """Consume the claims against the gross emissions, all or nothing; print gross,
    offsets and net side by side."""
    from carbon_rules.errors import RulesError
    from carbon_rules.offsets_ledger import ClaimInput, OffsetLedger

    req = _read(ClaimInput, request)
    book = OffsetLedger(db)
    try:
        result = book.claim(req.consumption_key, req.gross, req.claims, req.netting_rules)
    except RulesError as exc:
        _fail(exc.diagnostics())
    finally:
        book.close()
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")
