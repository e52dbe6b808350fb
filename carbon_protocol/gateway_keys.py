"""Wire model of a gateway key revocation, the log record that withdraws the key a
gateway signs its inventories with.

The key row in the ledger's database changes when a key is revoked; the record keeps
who revoked which key, from when and why provable afterwards, and lets a stranger
holding an evidence bundle see that no inventory signed with the key was accepted
after the revocation was logged. Id: ``<prefix>/keyrev.<key_id>.<digits of
revoked_at>`` (revoking again with a later time is a new record).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from .identifiers import IdentifierStr
from .models import Hex16, UtcTimestamp

__all__ = ["GATEWAY_KEY_REVOCATION_FORMAT", "GatewayKeyRevocation", "revocation_record_id"]

GATEWAY_KEY_REVOCATION_FORMAT: Final = "carbon-ledger/gateway-key-revocation/v1"


class GatewayKeyRevocation(BaseModel):
    """``gateway_key_revoked``: ``key_id`` of ``gateway`` signs nothing from ``revoked_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["carbon-ledger/gateway-key-revocation/v1"] = GATEWAY_KEY_REVOCATION_FORMAT
    gateway: IdentifierStr
    key_id: Hex16
    revoked_at: UtcTimestamp
    reason: Annotated[str, StringConstraints(max_length=4000)]


def revocation_record_id(revocation: GatewayKeyRevocation) -> str:
    """The record id of ``revocation``."""
    stamp = "".join(c for c in revocation.revoked_at if c.isdigit())
    return f"{revocation.gateway.split('/')[0]}/keyrev.{revocation.key_id}.{stamp}"
