"""``carbon-ledger market``: the buyer's side of the marketplace, offline.

``keygen`` makes an encryption key pair (SM2 for ``sm``, X25519 for ``intl``): the
public key goes into a data request, the private key file (hex, 0600) stays with the
buyer. ``open-delivery`` decrypts what ``GET /v1/market/grants/{id}/delivery``
returned (``carbon-ledger/data-delivery/v2``) and verifies every reading's signature,
the leaf-set proof of all of them and the content hash, exiting 1 naming the step that
failed; it needs no ledger and no network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["market_app"]

console = Console(stderr=True, soft_wrap=True)
market_app = typer.Typer(no_args_is_help=True, help="the data marketplace, buyer side: "
                         "encryption keys, opening and verifying deliveries")
Suite = Literal["sm", "intl"]


@market_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("-o", "--out", help="private key file (hex, 0600)")],
    suite: Annotated[Suite, typer.Option(help="sm: SM2 encryption key; intl: X25519")] = "sm",
) -> None:
    """Make a buyer encryption key; print the public key to put in a data request."""
    from carbon_protocol.envelope import RecipientPrivateKey

    key = RecipientPrivateKey.generate(suite)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.private_bytes().hex() + "\n")
    public = key.public_key()
    print(json.dumps({"suite": public.suite, "public_key": public.hex(),  # noqa: T201
                      "key_id": public.key_id}))


@market_app.command("open-delivery")
def open_delivery_cmd(
    file: Annotated[Path, typer.Argument(help="the delivery JSON (or the bare envelope)")],
    key: Annotated[Path, typer.Option(help="the buyer's private key file (hex)")],
    suite: Annotated[Suite, typer.Option(help="the key's suite")] = "sm",
    content_hash: Annotated[str | None, typer.Option(
        help="the dataset's content hash as listed (on chain); checked if given")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out",
                                             help="write the verified delivery here")] = None,
) -> None:
    """Decrypt a delivery and verify every signature, the leaf-set proof and the content
    hash."""
    from carbon_protocol.envelope import RecipientPrivateKey, parse_envelope
    from carbon_protocol.errors import ProtocolError

    from .market.delivery import open_delivery

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        private = RecipientPrivateKey.from_private_bytes(
            suite, bytes.fromhex(key.read_text(encoding="ascii").strip()))
    except (OSError, ValueError) as exc:
        console.print(f"[bold red]error[/] cannot read input: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    try:
        envelope = parse_envelope(json.dumps(data.get("envelope", data)))
        delivery, report = open_delivery(envelope, private, expected_content_hash=content_hash)
    except ProtocolError as exc:
        console.print(f"[bold red]error[/] [{exc.code}] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if out is not None:
        out.write_text(delivery.model_dump_json(indent=2) + "\n", encoding="utf-8")
    console.print(f"[green]ok[/] grant {delivery.grant}, dataset {delivery.dataset}: "
                  f"{report.readings} readings inside the listed selection, every signature "
                  f"verified, one leaf-set proof ({report.proof_hashes} hashes) leads to tree "
                  f"size {delivery.signed_tree_head.tree_head.tree_size} anchored in block "
                  f"{delivery.anchor.block_number}; content hash {report.content_hash}")
