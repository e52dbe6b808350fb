"""Gateway settings: environment variables with the ``GATEWAY_`` prefix.

Settings refuse to start wrong: the ledger URL must be HTTP(S), and the enterprise,
site and gateway identifiers must lie under the deployment prefix, so a typo is an
error at start-up rather than a registration the ledger refuses later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carbon_protocol.identifiers import IdentifierStr, PrefixStr

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    """Everything the gateway reads from its environment (``GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", frozen=True)

    data_dir: Path = Path("gateway-data")
    """Holds ``keys/`` (private keys, 0700) and ``outbox.db`` (the durable outbox)."""
    ledger_url: str = "http://127.0.0.1:8000"
    suite: Literal["sm", "intl"] = "sm"
    """Crypto suite of newly created device keys."""

    prefix: PrefixStr = "86.1000.1"
    enterprise_id: IdentifierStr | None = None
    """Default ``<prefix>/ent.demo``."""
    enterprise_name: str = "Demo Manufacturing Co."
    site_id: IdentifierStr | None = None
    """Default ``<prefix>/site.plant-01``."""
    site_name: str = "Plant 1"
    region: str = "CN-BJ"
    gateway_id: IdentifierStr | None = None
    """Default ``<prefix>/gw.edge-01``."""
    gateway_name: str = "Edge gateway 1"

    seed: int = 0
    """Seed of the meter simulator (same seed, same measurements)."""
    sim_origin: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    """First day the simulator can produce, and the default start of ``simulate``."""

    batch_size: int = Field(default=500, ge=1, le=2000)
    max_attempts: int = Field(default=6, ge=1)
    base_delay: float = Field(default=0.5, gt=0)
    max_delay: float = Field(default=30.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("ledger_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"GATEWAY_LEDGER_URL must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @field_validator("sim_origin")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @model_validator(mode="after")
    def _under_prefix(self) -> GatewaySettings:
        for name in ("enterprise_id", "site_id", "gateway_id"):
            value = getattr(self, name)
            if value is not None and not value.startswith(self.prefix + "/"):
                raise ValueError(f"GATEWAY_{name.upper()} {value!r} is not under prefix "
                                 f"{self.prefix!r}")
        return self

    @property
    def resolved_enterprise_id(self) -> str:
        return self.enterprise_id or f"{self.prefix}/ent.demo"

    @property
    def resolved_site_id(self) -> str:
        return self.site_id or f"{self.prefix}/site.plant-01"

    @property
    def resolved_gateway_id(self) -> str:
        return self.gateway_id or f"{self.prefix}/gw.edge-01"
