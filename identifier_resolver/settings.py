"""Resolver node settings: environment variables with the ``RESOLVER_`` prefix.

Settings refuse to start wrong: every node needs the trust root's owner key (the key
that signs the root's delegation records) to check the delegation chains it is given;
outside development an explicit database, node key and chain are required, so a
production node never falls back to a throw-away key or an in-memory chain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carbon_protocol.errors import ProtocolError
from carbon_protocol.identifiers import PrefixStr
from carbon_protocol.suites import PublicKey, parse_suite

__all__ = ["ResolverSettings", "parse_public_key"]


def parse_public_key(text: str) -> PublicKey:
    """Parse ``<suite>:<hex>`` (e.g. ``sm:04ab…`` or ``intl:3f2a…``) into a public key."""
    suite, sep, hex_key = text.partition(":")
    if not sep:
        raise ValueError(f"expected '<suite>:<hex public key>', got {text[:20]!r}")
    try:
        return PublicKey.from_hex(parse_suite(suite), hex_key)
    except ProtocolError as exc:
        raise ValueError(f"not a public key: {exc}") from exc


class ResolverSettings(BaseSettings):
    """Everything a resolver node reads from its environment (``RESOLVER_*``)."""

    model_config = SettingsConfigDict(env_prefix="RESOLVER_", extra="forbid", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var/resolver")
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/resolver.db``."""

    public_url: str | None = None
    """The URL clients reach this node at (published in its trust root)."""
    node_id: str = Field(default="resolver", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    root: bool = False
    """This node is the root: authoritative for ``root_prefix``, owned by the trust root."""
    root_prefix: PrefixStr = "0"
    trust_root_key: str | None = None
    """The root owner's public key as ``<suite>:<hex>``; required."""
    log_prefix: PrefixStr | None = None
    """Prefix of this node's log id ``<log_prefix>/log.resolver``; default ``root_prefix``
    on the root, and required on a secondary node (its delegated prefix)."""
    log_suite: Literal["sm", "intl"] = "sm"
    node_key_file: Path | None = None
    """PEM of the node's tree-head key; default ``<data_dir>/node_key.pem`` (created 0600)."""

    chain: Literal["embedded", "rpc", "none"] = "embedded"
    rpc_url: str | None = None
    anchor_private_key: str | None = Field(default=None, repr=False)
    contract_address: str | None = None
    chain_id: int | None = None
    anchor_every_records: int = Field(default=1_000, ge=1)
    anchor_every_seconds: float = Field(default=10.0, gt=0)

    cache_size: int = Field(default=100_000, ge=0)
    max_depth: int = Field(default=32, ge=1, le=256)
    max_nodes: int = Field(default=200_000, ge=10)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _refuse_wrong(self) -> ResolverSettings:
        if self.trust_root_key is None:
            raise ValueError("RESOLVER_TRUST_ROOT_KEY is required (the root owner's public key "
                             "as <suite>:<hex>)")
        parse_public_key(self.trust_root_key)
        if not self.root and self.log_prefix is None:
            raise ValueError("a secondary node needs RESOLVER_LOG_PREFIX (its delegated prefix)")
        if self.environment == "production":
            missing = [name for name, value in (("RESOLVER_DATABASE_URL", self.database_url),
                                                ("RESOLVER_NODE_KEY_FILE", self.node_key_file))
                       if value is None]
            if self.chain != "rpc":
                missing.append("RESOLVER_CHAIN=rpc")
            if missing:
                raise ValueError("production needs " + ", ".join(missing))
        if self.chain == "rpc":
            for name, value in (("RESOLVER_RPC_URL", self.rpc_url),
                                ("RESOLVER_ANCHOR_PRIVATE_KEY", self.anchor_private_key),
                                ("RESOLVER_CONTRACT_ADDRESS", self.contract_address),
                                ("RESOLVER_CHAIN_ID", self.chain_id)):
                if not value:
                    raise ValueError(f"RESOLVER_CHAIN=rpc needs {name}")
        if self.database_url is not None and re.match(r"^sqlite:/{0,2}(:memory:)?$",
                                                      self.database_url):
            raise ValueError("the resolver needs a SQLite file, not an in-memory database")
        return self

    @property
    def trust_key(self) -> PublicKey:
        """The root owner's public key."""
        assert self.trust_root_key is not None  # checked by the validator
        return parse_public_key(self.trust_root_key)

    @property
    def log_id(self) -> str:
        """This node's log id, ``<log_prefix>/log.resolver``."""
        return f"{self.log_prefix or self.root_prefix}/log.resolver"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'resolver.db'}"

    @property
    def resolved_node_key_file(self) -> Path:
        """The node key path, defaulting to the data directory."""
        return self.node_key_file or self.data_dir / "node_key.pem"
