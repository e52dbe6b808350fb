"""Service settings: environment variables with the ``LEDGER_`` prefix.

Settings refuse to start wrong: outside development an explicit chain, database and
log key are required, so a production service can never silently fall back to the
in-memory chain or a throw-away key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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

    anchor_every_leaves: int = Field(default=10_000, ge=1)
    anchor_every_seconds: float = Field(default=60.0, gt=0)
    confirmations: int = Field(default=1, ge=1)
    """Blocks (including the anchor's own) after which an anchor counts as final."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=2_000, ge=1)

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
