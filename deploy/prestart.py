#!/usr/bin/env python3
"""Container start-up steps for docker-compose.yml: deploy the contract, then start the
ledger only once its database and chain are there and are the right ones.

Both steps name the deployment file (:mod:`ledger_service.deployment`) through
``LEDGER_DEPLOYMENT_FILE``, the setting the ledger service reads it from.

``python deploy/prestart.py deploy-contract``
    Waits (bounded, logged) for the JSON-RPC node at ``LEDGER_RPC_URL``, checks that its
    chain id is ``LEDGER_CHAIN_ID``, and deploys ``CarbonAnchor`` with
    ``LEDGER_ANCHOR_PRIVATE_KEY`` as admin and anchorer, writing the deployment file.
    Idempotent: a file whose contract code is still at its address on that chain is kept.
    Only a contract that is gone (a development chain reset) is deployed again; a chain
    that cannot be reached, or a file made for another build of the contract, is an error
    rather than a reason to deploy a new contract (that would change the signing domain).

``python deploy/prestart.py exec -- CMD ...``
    Waits (bounded, logged) for the database at ``LEDGER_DATABASE_URL``, then for the
    chain, checks the chain id and the contract code at the deployed address (the checks
    :meth:`ChainClient.connect` makes), and replaces itself with ``CMD`` (e.g.
    ``carbon-ledger serve``), which reads the same deployment file.

Logs go through :mod:`ledger_service._internal.logging_setup` (``LEDGER_LOG_FORMAT``). The
private key and the database password are never logged. Exit status 0 on success, 1 when
a wait ran out or a check failed (the message says which), 2 on bad settings, 127 when
the command cannot be started.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger_service._internal.chain import ChainClient
from ledger_service._internal.logging_setup import configure_logging
from ledger_service.deployment import Deployment, deploy
from ledger_service.errors import ChainMismatchError, ChainUnavailableError, LedgerError

log = logging.getLogger("carbon_ledger.prestart")
T = TypeVar("T")


class ChainSettings(BaseSettings):
    """The ``LEDGER_*`` variables these steps read (the same names the service reads)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", frozen=True)

    rpc_url: str
    chain_id: int = Field(gt=0)
    anchor_private_key: str = Field(repr=False)
    deployment_file: Path
    database_url: str | None = Field(default=None, repr=False)


class StepFailed(Exception):
    """A wait ran out or a check failed; the message says which."""


def wait_for(what: str, attempt: Callable[[], T], *, timeout: float,
             retry_on: tuple[type[BaseException], ...], interval: float = 1.0) -> T:
    """Call ``attempt`` until it returns, retrying on ``retry_on`` for ``timeout`` seconds,
    logging each failure; raise :class:`StepFailed` with the last error when time is up."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            result = attempt()
        except retry_on as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepFailed(f"gave up waiting for {what} after {timeout:g} s "
                                 f"({tries} attempts): {exc}") from exc
            log.info("waiting for %s", what, extra={"attempt": tries, "error": str(exc)[:300],
                                                    "seconds_left": round(left, 1)})
            time.sleep(min(interval, max(left, 0.0)))
            continue
        log.info("%s is ready", what, extra={"attempts": tries})
        return result


def _chain_id(rpc_url: str) -> int:
    from web3 import HTTPProvider, Web3

    try:
        return int(Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 5})).eth.chain_id)
    except Exception as exc:  # any transport or RPC failure: not ready yet
        # requests quotes the URL path, where hosted RPC providers put API keys.
        shown = re.sub(r"url: \S+", "url: <redacted>", f"{type(exc).__name__}: {exc}")
        raise ChainUnavailableError(shown) from exc


def _check_chain_id(s: ChainSettings, timeout: float) -> None:
    got = wait_for("the chain node", lambda: _chain_id(s.rpc_url), timeout=timeout,
                   retry_on=(ChainUnavailableError,))
    if got != s.chain_id:
        raise StepFailed(f"chain id mismatch: LEDGER_CHAIN_ID is {s.chain_id}, the node at "
                         f"LEDGER_RPC_URL answers {got}")


def _load(path: Path) -> Deployment | None:
    """The deployment in ``path``, ``None`` if there is no file; a malformed file or one
    made for another build of the contract raises :class:`StepFailed`."""
    if not path.exists():
        return None
    try:
        return Deployment.load(path)
    except LedgerError as exc:
        raise StepFailed(f"{exc} (remove the file to deploy anew)") from exc


def deploy_contract(s: ChainSettings, timeout: float) -> Deployment:
    """Deploy unless the deployment file names a live contract on this chain."""
    _check_chain_id(s, timeout)
    path = s.deployment_file
    existing = _load(path)
    if existing is not None and existing.chain_id == s.chain_id:
        address = existing.contract_address
        try:
            ChainClient.connect(s.rpc_url, s.anchor_private_key, address,
                                expected_chain_id=s.chain_id)
        except ChainMismatchError as exc:
            log.warning("deployed contract is gone, deploying again",
                        extra={"contract_address": address, "reason": str(exc)[:300]})
        else:
            if existing.rpc_url != s.rpc_url:
                existing = existing.model_copy(update={"rpc_url": s.rpc_url})
                existing.write(path)
            log.info("contract already deployed", extra={"contract_address": address,
                                                         "chain_id": s.chain_id})
            return existing
    elif existing is not None:
        raise StepFailed(f"{path} is for chain {existing.chain_id}, LEDGER_CHAIN_ID is "
                         f"{s.chain_id} (remove the file to deploy on this chain)")
    made = deploy(s.rpc_url, s.anchor_private_key)
    made.write(path)
    log.info("contract deployed", extra={
        "contract_address": made.contract_address, "chain_id": made.chain_id,
        "deployer": made.deployer, "block": made.deployed_at_block, "file": str(path)})
    return made


def _database_ready(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def prestart(s: ChainSettings, timeout: float) -> Deployment:
    """Wait for database and chain and check both against the deployment file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    if s.database_url:
        shown = make_url(s.database_url).render_as_string(hide_password=True)
        wait_for(f"the database {shown}", lambda: _database_ready(str(s.database_url)),
                 timeout=timeout, retry_on=(SQLAlchemyError, OSError))
    deployment = _load(s.deployment_file)
    if deployment is None:
        raise StepFailed(f"no deployment file at {s.deployment_file}: run deploy-contract "
                         "first")
    if deployment.chain_id != s.chain_id:
        raise StepFailed(f"{s.deployment_file} is for chain {deployment.chain_id}, "
                         f"LEDGER_CHAIN_ID is {s.chain_id}")
    address = deployment.contract_address
    _check_chain_id(s, timeout)
    wait_for(f"CarbonAnchor at {address}",
             lambda: ChainClient.connect(s.rpc_url, s.anchor_private_key, address,
                                         expected_chain_id=s.chain_id),
             timeout=timeout, retry_on=(ChainUnavailableError,))
    return deployment


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("deploy-contract", "exec"):
        p = sub.add_parser(name)
        p.add_argument("--timeout", type=float, default=120.0,
                       help="seconds to wait for each dependency")
        if name == "exec":
            p.add_argument("command", nargs=argparse.REMAINDER,
                           help="-- then the command to run")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = ChainSettings()
    except ValidationError as exc:
        missing = ", ".join("LEDGER_" + str(e["loc"][0]).upper() for e in exc.errors())
        log.error("bad or missing settings: %s", missing)
        return 2
    command: list[str] = []
    if args.step == "exec":
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            parser.error("exec needs a command after --")
    try:
        if args.step == "deploy-contract":
            deploy_contract(settings, args.timeout)
            return 0
        prestart(settings, args.timeout)
    except (StepFailed, LedgerError) as exc:
        log.error("%s failed: %s", args.step, exc)
        return 1
    log.info("starting %s", command[0])
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        log.error("cannot start %s: %s", command[0], exc)
        return 127


if __name__ == "__main__":
    raise SystemExit(main())
