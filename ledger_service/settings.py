"""Service settings: environment variables with the ``LEDGER_`` prefix.

Settings refuse to start wrong: outside development an explicit chain, database and
log key are required, so a production service can never silently fall back to the
in-memory chain or a throw-away key.

``LEDGER_DEPLOYMENT_FILE`` names a deployment file (:mod:`ledger_service.deployment`,
written by ``carbon-ledger devchain``): the chain becomes ``rpc`` and ``rpc_url``,
``contract_address`` and ``chain_id`` come from the file. Explicit ``LEDGER_RPC_URL``,
``LEDGER_CONTRACT_ADDRESS`` or ``LEDGER_CHAIN_ID`` may be given too, but must agree with
it: otherwise the settings refuse, naming the variable that differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carbon_protocol.identifiers import IdentifierStr, PrefixStr

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything the ledger service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="forbid", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/ledger.db``."""

    prefix: PrefixStr = "86.1000.1"
    """Identifier prefix under which this deployment names what it creates."""
    log_id: IdentifierStr = "86.1000.1/log.main"
    log_suite: Literal["sm", "intl"] = "sm"
    log_key_file: Path | None = None
    """PEM file of the log's signing key; default ``<data_dir>/log_key.pem`` (created 0600)."""

    chain: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str | None = None
    anchor_private_key: str | None = Field(default=None, repr=False)
    contract_address: str | None = None
    chain_id: int | None = None
    deployment_file: Path | None = None
    """A deployment file; when set, the chain settings above come from it."""

    anchor_every_leaves: int = Field(default=10_000, ge=1)
    anchor_every_seconds: float = Field(default=60.0, gt=0)
    confirmations: int = Field(default=1, ge=1)
    """Blocks (including the anchor's own) after which an anchor counts as final."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=2_000, ge=1)
    max_evidence_readings: int = Field(default=250_000, ge=1)
    """The most readings one evidence bundle may carry. A bundle is built in memory: the
    demo's month (68,448 readings) peaks at 911 MiB and writes 41 MB of JSON, so the
    default (about 3.3 GiB) keeps one export from starving the service; a larger
    enterprise exports shorter periods."""

    resolver: Literal["none", "embedded", "remote"] = "none"
    """Register identifiers automatically (:mod:`ledger_service.identifiers_sync`): in a
    resolver node inside this process (``embedded``, under ``<data_dir>/resolver``) or
    at the node ``resolver_url`` is authoritative for ``prefix`` (``remote``)."""
    resolver_url: str | None = None
    """``remote``: the URL of the node authoritative for ``prefix``."""
    resolver_trust_file: Path | None = None
    """``remote``: the pinned trust root (JSON from ``python -m identifier_resolver trust``)."""
    resolver_owner_key_file: Path | None = None
    """PEM of the owner key of ``prefix``, which signs the records; default (embedded
    only) ``<data_dir>/resolver/owner_key.pem``, created 0600."""
    resolver_public_url: str = "http://127.0.0.1:8100"
    """``embedded``: the URL the embedded node's delegation record publishes."""
    resolver_sync_seconds: float = Field(default=5.0, gt=0)
    """Longest wait between two checks for registry changes (anchors wake it at once)."""
    finance_config_file: Path | None = None
    """The finance configuration (:mod:`ledger_service.finance.config`); default
    ``<data_dir>/finance.json``, every default and no benchmark if it does not exist."""

    @model_validator(mode="before")
    @classmethod
    def _from_deployment_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("deployment_file"):
            return data
        from .deployment import Deployment
        from .errors import LedgerError

        path = Path(data["deployment_file"])
        try:
            dep = Deployment.load(path)
        except LedgerError as exc:
            raise ValueError(str(exc)) from None
        chain = data.get("chain")
        if chain not in (None, "rpc"):
            raise ValueError(f"LEDGER_DEPLOYMENT_FILE={path} needs LEDGER_CHAIN=rpc, "
                             f"got LEDGER_CHAIN={chain}")
        expected: dict[str, str] = {
            "rpc_url": dep.rpc_url.rstrip("/"),
            "contract_address": dep.contract_address.lower(),
            "chain_id": str(dep.chain_id),
        }
        differs = []
        for name, want in expected.items():
            given = data.get(name)
            if given is None or given == "":
                continue
            got = str(given).strip()
            got = got.rstrip("/") if name == "rpc_url" else got
            if (got.lower() if name == "contract_address" else got) != want:
                differs.append(f"LEDGER_{name.upper()} is {given}, the file says "
                               f"{getattr(dep, name)}")
        if differs:
            raise ValueError(f"settings disagree with deployment file {path}: "
                             + "; ".join(differs))
        return {**data, "chain": "rpc", "rpc_url": dep.rpc_url,
                "contract_address": dep.contract_address, "chain_id": dep.chain_id}

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            missing = [
                name
                for name, value in (
                    ("LEDGER_DATABASE_URL", self.database_url),
                    ("LEDGER_LOG_KEY_FILE", self.log_key_file),
                )
                if value is None
            ]
            if self.chain != "rpc":
                missing.append("LEDGER_CHAIN=rpc")
            if missing:
                raise ValueError("production needs " + ", ".join(missing))
        if self.chain == "rpc":
            for name, value in (
                ("LEDGER_RPC_URL", self.rpc_url),
                ("LEDGER_ANCHOR_PRIVATE_KEY", self.anchor_private_key),
                ("LEDGER_CONTRACT_ADDRESS", self.contract_address),
                ("LEDGER_CHAIN_ID", self.chain_id),
            ):
                if not value:
                    raise ValueError(f"LEDGER_CHAIN=rpc needs {name}")
        if self.resolver == "remote":
            needed: tuple[tuple[str, object], ...] = (
                ("LEDGER_RESOLVER_URL", self.resolver_url),
                ("LEDGER_RESOLVER_TRUST_FILE", self.resolver_trust_file),
                ("LEDGER_RESOLVER_OWNER_KEY_FILE", self.resolver_owner_key_file))
            for var, given in needed:
                if not given:
                    raise ValueError(f"LEDGER_RESOLVER=remote needs {var}")
        if not self.log_id.startswith(self.prefix + "/"):
            raise ValueError(f"log id {self.log_id!r} is not under prefix {self.prefix!r}")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def resolved_log_key_file(self) -> Path:
        """The log key path, defaulting to the data directory."""
        return self.log_key_file or self.data_dir / "log_key.pem"
