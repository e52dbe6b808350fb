"""``carbon-ledger finance``: eligibility, offline code checks and loan tracking.

``eligibility`` and ``loan-tracking`` read the ledger the ``LEDGER_*`` settings name
(as the routes do, and an eligibility issues and logs a code the same way);
``verify-code`` needs no ledger and no network: a bank checks a scanned code with the
ledger's public log key alone. Errors print their stable code and exit 1 (2 for an
unreadable file or a missing QR decoder).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from carbon_protocol.errors import ProtocolError

from .errors import LedgerError

if TYPE_CHECKING:
    from carbon_protocol.suites import PublicKey

__all__ = ["finance_app"]

console = Console(stderr=True, soft_wrap=True)
finance_app = typer.Typer(no_args_is_help=True, help="financing codes (green grade, "
                          "red/green integrity code, QR) and loan-project tracking")


def _fail(diag: dict[str, object], exit_code: int = 1) -> NoReturn:
    code, message = escape(f"[{diag.get('code')}]"), escape(str(diag.get("message")))
    console.print(f"[bold red]error[/] {code} {message}")
    raise typer.Exit(exit_code)


@finance_app.command("eligibility")
def eligibility_command(
    enterprise: str,
    period: Annotated[str, typer.Option(help="period label: 2026, 2026-Q1, 2026-01")],
    qr: Annotated[Path | None, typer.Option(help="also write the code's QR image (PNG)")] = None,
) -> None:
    """Grade ENTERPRISE for a period, issue (or reuse) its signed financing code, print
    the result as JSON."""
    from .finance.eligibility import eligibility
    from .finance.issuing import render_qr_png
    from .ledger import Ledger

    try:
        result = eligibility(Ledger.open(), enterprise, period)
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    if qr is not None:
        qr.write_bytes(render_qr_png(result.financing_code))
        console.print(f"wrote {qr}")
    fired = ", ".join(f"{f.rule} ({f.level})" for f in result.integrity.fired) or "none"
    console.print(f"{result.grade.label} {result.grade.grade}, integrity {result.integrity.code}"
                  f" (rules fired: {fired}); code {result.code_record.record_id}")


def _payload(code: str) -> str:
    """The QR text itself, or the text a PNG file's QR code carries."""
    if code.startswith("CLFC1."):
        return code
    path = Path(code)
    if not path.is_file():
        _fail({"code": "unreadable", "message": f"{code} is neither a CLFC1 payload nor a "
               "file"}, 2)
    try:
        import zxingcpp  # type: ignore[import-not-found,unused-ignore]
        from PIL import Image
    except ImportError:
        _fail({"code": "no_qr_decoder", "message": "reading a QR image needs zxing-cpp "
               "(pip install zxing-cpp); or pass the payload text"}, 2)
    try:
        found = zxingcpp.read_barcodes(Image.open(path))
    except OSError as exc:
        _fail({"code": "unreadable", "message": f"cannot read {path} as an image: {exc}"}, 2)
    if len(found) != 1:
        _fail({"code": "invalid_financing_code", "message": f"{path} holds {len(found)} "
               "barcodes, expected one QR code"})
    return str(found[0].text)


def _key(text: str) -> PublicKey:
    """``sm:HEX``, ``intl:HEX``, or bare hex (65 bytes: SM2, 32 bytes: Ed25519)."""
    from carbon_protocol.suites import PublicKey

    suite, _, hex_key = text.rpartition(":")
    if not suite:
        suite = "sm" if len(hex_key) == 130 else "intl"
    if suite not in ("sm", "intl"):
        _fail({"code": "invalid_key", "message": f"unknown suite {suite!r}: sm or intl"})
    return PublicKey.from_hex(suite, hex_key.lower())  # type: ignore[arg-type]


@finance_app.command("verify-code")
def verify_code_command(
    code: Annotated[str, typer.Argument(help="the QR payload (CLFC1....) or a PNG of the QR")],
    log_key: Annotated[str, typer.Option(
        help="the issuing ledger's public log key: hex, or sm:HEX / intl:HEX")],
) -> None:
    """Check a financing code offline: canonical form, issuer key, signature, validity
    now. Prints the code as JSON; exits 1 with the reason if it must not be relied on."""
    from carbon_protocol.financing_code import verify_financing_code

    payload = _payload(code)
    try:
        checked = verify_financing_code(payload, _key(log_key))
    except ProtocolError as exc:
        _fail(exc.diagnostics())
    sys.stdout.write(checked.model_dump_json(indent=2) + "\n")
    fired = ", ".join(f"{f.rule} ({f.level})" for f in checked.rules_fired) or "none"
    console.print(f"[bold green]OK[/] {checked.enterprise} {checked.period.label}: "
                  f"{checked.grade}, integrity {checked.code} (rules fired: {fired}); "
                  f"valid until {checked.expires_at}")


@finance_app.command("loan-tracking")
def loan_tracking_command(loan_id: str) -> None:
    """Print a financed project's quarter-by-quarter progress against its plan (JSON)."""
    from .finance.loans import track_loan
    from .ledger import Ledger

    try:
        result = track_loan(Ledger.open(), loan_id)
    except (LedgerError, ProtocolError) as exc:
        _fail(exc.diagnostics())
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")
