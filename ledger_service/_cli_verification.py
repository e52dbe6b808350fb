"""``carbon-ledger verification``: the verifier's commands (key, check, attest).

They run on the verifier's machine: ``keygen`` makes its signing key (the private key
never leaves the file), ``check`` fetches a verification's sample with its proofs (or
reads it from a file) and checks all of it offline, ``attest`` signs the verdict
locally and, with ``--submit``, posts it. The ledger is reached over HTTP
(``--url``/``LEDGER_URL``, key ``--api-key``/``LEDGER_API_KEY``); errors print their
stable code and exit 1 (2 for an unreadable file or an unreachable ledger).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["verification_app"]

console = Console(stderr=True, soft_wrap=True)
verification_app = typer.Typer(no_args_is_help=True, help="third-party verification: "
                               "make a verifier key, check a sample, sign an attestation")
M = TypeVar("M", bound=BaseModel)

UrlOpt = Annotated[str | None, typer.Option(envvar="LEDGER_URL",
                                            help="the ledger's base URL")]
KeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="LEDGER_API_KEY",
                                            help="a verifier API key")]
SampleOpt = Annotated[Path | None, typer.Option(
    "--sample", help="the sample evidence as a file, instead of fetching it")]


def _fail(code: str, message: str, exit_code: int = 1) -> NoReturn:
    console.print(f"[bold red]error[/] {escape(f'[{code}]')} {escape(message)}")
    raise typer.Exit(exit_code)


def _parse(model: type[M], data: bytes, where: str) -> M:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail("invalid_input", f"{where}: {'.'.join(str(p) for p in first['loc'])}: "
              f"{first['msg']}")


def _fetch(url: str | None, api_key: str | None, method: str, path: str,
           body: Any = None) -> bytes:
    import httpx

    if url is None:
        _fail("no_ledger", "give --url (or LEDGER_URL), or the documents as files", 2)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            r = http.request(method, path, json=body)
    except httpx.HTTPError as exc:
        _fail("unreachable", f"{method} {url}{path}: {exc}", 2)
    if r.status_code >= 400:
        try:
            problem = r.json()
            _fail(str(problem.get("code")), f"{method} {path}: {problem.get('message')}")
        except ValueError:
            _fail("http_error", f"{method} {path}: {r.status_code} {r.text[:200]}")
    return r.content


def _document(file: Path | None, url: str | None, api_key: str | None, path: str) -> bytes:
    if file is None:
        return _fetch(url, api_key, "GET", path)
    try:
        return file.read_bytes()
    except OSError as exc:
        _fail("unreadable", f"cannot read {file}: {exc}", 2)


@verification_app.command("keygen")
def keygen(out: Annotated[Path, typer.Option("--out", "-o", help="PEM file to create (0600)")],
           suite: Annotated[Literal["sm", "intl"], typer.Option(
               help="sm (SM2/SM3) or intl (Ed25519/SHA-256)")] = "sm") -> None:
    """Create a verifier signing key; print its public key (register it with
    POST /v1/verifiers)."""
    from .ledger import load_or_create_key

    if out.exists():
        _fail("exists", f"{out} exists; a key file is never overwritten")
    pub = load_or_create_key(out, suite).public_key()
    console.print(f"wrote {out} (0600)")
    sys.stdout.write(json.dumps({"suite": pub.suite, "public_key": pub.hex(),
                                 "key_id": pub.key_id}) + "\n")


@verification_app.command("check")
def check(
    verification_id: str, url: UrlOpt = None, api_key: KeyOpt = None, sample: SampleOpt = None,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL: check the anchor on chain")] = None,
    trusted_log_key: Annotated[list[str] | None, typer.Option(
        help="pin a trusted log key id (repeatable)")] = None,
    save: Annotated[Path | None, typer.Option(help="also write the evidence here")] = None,
) -> None:
    """Check VERIFICATION_ID's sample: recompute it from the seed block, verify every
    reading's signature and inclusion, the inventory's inclusion, the tree head's
    signature and (with --rpc) the anchor; non-zero exit names the first failure."""
    from carbon_protocol.attestation import SampleEvidence
    from carbon_protocol.chain_view import JsonRpcChainView
    from carbon_protocol.errors import ProtocolError

    from .verification.verifier import check_evidence

    data = _document(sample, url, api_key, f"/v1/verifications/{verification_id}/sample")
    evidence = _parse(SampleEvidence, data, "sample evidence")
    if evidence.verification_id != verification_id:
        _fail("wrong_verification", f"the evidence is of {evidence.verification_id}, not "
              f"{verification_id}")
    if save is not None:
        save.write_bytes(data)
    try:
        rows = check_evidence(evidence, chain=JsonRpcChainView(rpc) if rpc else None,
                              trusted_log_keys=trusted_log_key)
    except ProtocolError as exc:
        _fail(exc.code, str(exc))
    table = Table(title=f"sample of {verification_id} (seed block "
                  f"{evidence.spec.seed_block_number}, {len(rows)} of "
                  f"{evidence.spec.population_size()} leaves)")
    for column in ("leaf", "reading", "device", "measured_at", "value", "check"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row.leaf_index), row.reading_id, row.device, row.measured_at,
                      f"{row.value} {row.unit}", "ok")
    console.print(table)
    anchor = evidence.anchor
    console.print(f"[bold green]OK[/] sample matches seed "
                  f"{evidence.spec.seed_block_hash[:18]}...; every reading is signed and in "
                  f"the head of size {anchor.tree_size} anchored in block "
                  f"{anchor.block_number}" + (" (checked on chain)" if rpc else ""))


@verification_app.command("attest")
def attest(
    verification_id: str,
    key: Annotated[Path, typer.Option(help="the verifier's PEM private key")],
    verifier: Annotated[str, typer.Option(help="the verifier organisation's identifier")],
    verdict: Annotated[Literal["attest", "reject"], typer.Option()] = "attest",
    url: UrlOpt = None, api_key: KeyOpt = None, sample: SampleOpt = None,
    status: Annotated[Path | None, typer.Option(
        help="the verification's status as a file, instead of fetching it")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the signed "
                                             "attestation here (default stdout)")] = None,
    submit: Annotated[bool, typer.Option(help="post it to the ledger")] = False,
) -> None:
    """Check the sample, then sign the verdict on VERIFICATION_ID locally (the private
    key never leaves this machine), with the findings the ledger recorded."""
    from carbon_protocol.attestation import SampleEvidence
    from carbon_protocol.errors import ProtocolError
    from carbon_protocol.suites import PrivateKey

    from .errors import LedgerError
    from .verification.verifier import check_evidence, draft_attestation
    from .verification.workflow import VerificationStatus

    evidence = _parse(SampleEvidence, _document(
        sample, url, api_key, f"/v1/verifications/{verification_id}/sample"), "sample evidence")
    state = _parse(VerificationStatus, _document(
        status, url, api_key, f"/v1/verifications/{verification_id}"), "verification status")
    try:
        private = PrivateKey.from_pem(key.read_bytes())
    except OSError as exc:
        _fail("unreadable", f"cannot read {key}: {exc}", 2)
    except ProtocolError as exc:
        _fail(exc.code, f"{key}: {exc}")
    try:
        check_evidence(evidence)
        signed = draft_attestation(evidence, state, verifier=verifier, key=private,
                                   verdict=verdict)
    except (ProtocolError, LedgerError) as exc:
        _fail(exc.code, str(exc))
    text = signed.model_dump_json(indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
    if submit:
        answer = json.loads(_fetch(url, api_key, "POST",
                                   f"/v1/verifications/{verification_id}/attestation",
                                   signed.model_dump(mode="json")))
        console.print(f"[bold green]{answer['verdict']}[/] recorded as "
                      f"{answer['record']['record_id']} at leaf {answer['record']['leaf_index']}")
