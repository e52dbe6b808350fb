"""Gateway settings: environment variables with the ``GATEWAY_`` prefix.

Settings refuse to start wrong: the ledger URL must be HTTP(S), and the enterprise,
site and gateway identifiers must lie under the deployment prefix, so a typo is an
error at start-up rather than a registration the ledger refuses later.

The ``GATEWAY_MQTT_*`` settings configure the MQTT subscriber (:mod:`node_gateway.mqtt`).
They refuse half-configured TLS (a certificate without its key, a CA file or the
insecure flag without ``GATEWAY_MQTT_TLS=true``, a file that does not exist), a password
without a user name, and topic levels that are not plain MQTT levels.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carbon_protocol.identifiers import IdentifierStr, PrefixStr

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    """Everything the gateway reads from its environment (``GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", frozen=True)

    data_dir: Path = Path("gateway-data")
    """Holds ``keys/`` (private keys, 0700) and ``outbox.db`` (the durable outbox)."""
    ledger_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    """The ledger API key of this gateway (``carbon-ledger apikey create --role gateway
    --enterprise <id>``), sent as ``Authorization: Bearer``; it may register and post
    readings only for its enterprise's sites and devices."""
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

    # -- MQTT (node_gateway.mqtt) ------------------------------------------------------
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    """MQTT 5 (session expiry and receive maximum sent by the gateway) or 3.1.1 (the
    broker's ``persistent_client_expiration`` and ``max_inflight_messages`` apply)."""
    mqtt_client_id: str | None = Field(default=None, min_length=1, max_length=128)
    """Fixed client id of the subscriber's persistent session; default
    ``carbon-gateway-<gateway suffix>``. Two gateways must never share one."""
    mqtt_topic_root: str = "carbon"
    """First level of every reading topic, ``<root>/<site>/<device>/reading``."""
    mqtt_site: str | None = None
    """Site level the subscriber listens to; default the suffix of the site id;
    ``+`` for every site."""
    mqtt_session_expiry: int = Field(default=7 * 86400, ge=60)
    """Seconds the broker keeps the session (and queues readings) while the gateway is
    away (MQTT 5)."""
    mqtt_keepalive: int = Field(default=30, ge=5, le=3600)
    mqtt_batch_size: int = Field(default=500, ge=1, le=10_000)
    """Messages recorded in one outbox transaction (then acknowledged together)."""
    mqtt_batch_wait: float = Field(default=0.25, gt=0, le=10)
    """Longest a received message waits for its batch to be committed, in seconds."""
    mqtt_reconnect_min: float = Field(default=0.5, gt=0)
    mqtt_reconnect_max: float = Field(default=30.0, gt=0)
    mqtt_username: str | None = Field(default=None, min_length=1)
    mqtt_password: SecretStr | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    """CA bundle that signed the broker's certificate (default: the system's CAs)."""
    mqtt_cert_file: Path | None = None
    """Client certificate, for brokers that require one (with ``mqtt_key_file``)."""
    mqtt_key_file: Path | None = None
    mqtt_tls_insecure: bool = False
    """Skip the broker host name check (never in production)."""
    mqtt_flush_interval: float = Field(default=0.0, ge=0)
    """``mqtt-run`` delivers the outbox to the ledger every so many seconds; 0: never."""

    # -- identifiers (identifier_resolver.device_events) ----------------------------------
    resolver_url: str | None = None
    """The resolver node authoritative for ``prefix``; maintenance and calibration
    records go there (``carbon-gateway maintenance|calibration``)."""
    resolver_owner_key_file: Path | None = None
    """PEM of the owner key of ``prefix``, which signs those records."""

    @field_validator("ledger_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"GATEWAY_LEDGER_URL must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @field_validator("resolver_url")
    @classmethod
    def _resolver_http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"GATEWAY_RESOLVER_URL must start with http:// or https://, "
                             f"got {v!r}")
        return None if v is None else v.rstrip("/")

    @field_validator("sim_origin")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("mqtt_topic_root", "mqtt_site")
    @classmethod
    def _topic_level(cls, v: str | None) -> str | None:
        if v is None or v == "+":
            return v
        if not v or any(c in v for c in "/+#\x00") or len(v.encode()) > 128:
            raise ValueError(f"{v!r} is not a single MQTT topic level (no '/', '+', '#')")
        return v

    @model_validator(mode="after")
    def _mqtt_consistent(self) -> GatewaySettings:
        if self.mqtt_topic_root == "+":
            raise ValueError("GATEWAY_MQTT_TOPIC_ROOT must be a fixed topic level, not '+'")
        if self.mqtt_password is not None and self.mqtt_username is None:
            raise ValueError("GATEWAY_MQTT_PASSWORD is set but GATEWAY_MQTT_USERNAME is not")
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise ValueError("GATEWAY_MQTT_CERT_FILE and GATEWAY_MQTT_KEY_FILE go together")
        for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file", "mqtt_tls_insecure"):
            if getattr(self, name) and not self.mqtt_tls:
                raise ValueError(f"GATEWAY_{name.upper()} is set but GATEWAY_MQTT_TLS is not "
                                 "true")
        for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"GATEWAY_{name.upper()} {str(path)!r} is not a file")
        if self.mqtt_reconnect_max < self.mqtt_reconnect_min:
            raise ValueError("GATEWAY_MQTT_RECONNECT_MAX is below GATEWAY_MQTT_RECONNECT_MIN")
        return self

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

    @property
    def resolved_mqtt_client_id(self) -> str:
        suffix = self.resolved_gateway_id.partition("/")[2]
        return self.mqtt_client_id or f"carbon-gateway-{suffix}"

    @property
    def resolved_mqtt_site(self) -> str:
        return self.mqtt_site or self.resolved_site_id.partition("/")[2]
