"""The quota book: which annual quota (配额) an enterprise is reconciled against.

An enterprise enters *internal* quotas itself: planning numbers (a budget, a target
split across sites) with no authority. The regulator's quota lives on chain in the
``QuotaRegistry`` (:mod:`carbon_rules.quotas_client`). When both exist for an enterprise
and year, the on-chain quota wins, and :class:`EffectiveQuota` says so
(``origin == "chain"``, ``overridden_internal`` holds the planning number it replaced)
so a report never shows a planning number as if a regulator had allocated it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from carbon_protocol.inventory import FixedStr

from .errors import QuotaInputError, QuotaNotIssuedError
from .fixed_point import Fixed, parse, to_decimal
from .quotas_client import ChainQuota, enterprise_key

__all__ = [
    "ChainQuotaSource",
    "ChainQuotaView",
    "EffectiveQuota",
    "InternalQuota",
    "QuotaBook",
    "Year",
]

Year = Annotated[int, Field(ge=1, le=9999)]
"""A compliance year, as the contract accepts it."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InternalQuota(_Model):
    """A quota the enterprise entered itself: a planning number, not an allocation."""

    enterprise: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    year: Year
    allocation: FixedStr
    """tCO2e."""
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


class ChainQuotaView(_Model):
    """The regulator's quota as read from the ``QuotaRegistry``."""

    registry: str
    revision: int
    allocation: FixedStr
    document: str
    regulator: str
    set_at: int


class EffectiveQuota(_Model):
    """The quota to reconcile against, and where it comes from."""

    enterprise: str
    year: Year
    allocation: FixedStr
    origin: Literal["chain", "internal"]
    chain: ChainQuotaView | None
    overridden_internal: InternalQuota | None
    """The internal planning quota the on-chain one replaced, if any."""
    internal: InternalQuota | None
    """The internal quota in use when nothing is on chain."""

    @property
    def allocation_fixed(self) -> Fixed:
        """The allocation as fixed point."""
        return parse(self.allocation)


class ChainQuotaSource(Protocol):
    """What the book needs from the chain (a :class:`QuotaRegistryClient`)."""

    @property
    def address(self) -> str: ...

    def quota(self, enterprise: str, year: int) -> ChainQuota: ...


class QuotaBook:
    """Internal quotas kept here, on-chain quotas read through ``chain`` (if any)."""

    def __init__(self, chain: ChainQuotaSource | None = None,
                 internal: list[InternalQuota] | None = None) -> None:
        self._chain = chain
        self._internal: dict[tuple[str, int], InternalQuota] = {}
        for quota in internal or []:
            self.set_internal(quota)

    def set_internal(self, quota: InternalQuota) -> None:
        """Enter (or replace) an internal planning quota."""
        self._internal[(quota.enterprise, quota.year)] = quota

    def internal(self, enterprise: str, year: int) -> InternalQuota | None:
        """The internal quota entered for ``enterprise`` and ``year``, if any."""
        return self._internal.get((enterprise, year))

    def _on_chain(self, enterprise: str, year: int) -> ChainQuotaView | None:
        if self._chain is None:
            return None
        try:
            q = self._chain.quota(enterprise, year)
        except QuotaNotIssuedError:
            return None
        return ChainQuotaView(registry=self._chain.address, revision=q.revision,
                              allocation=to_decimal(q.allocation), document=q.document,
                              regulator=q.regulator, set_at=q.set_at)

    def effective(self, enterprise: str, year: int) -> EffectiveQuota:
        """The quota in force: the regulator's on chain if issued, else the internal one.

        Raises :class:`QuotaNotIssuedError` when there is neither.
        """
        if not 1 <= year <= 9999:
            raise QuotaInputError(f"year {year} is outside 1..9999", year=year)
        internal = self.internal(enterprise, year)
        chain = self._on_chain(enterprise, year)
        if chain is not None:
            return EffectiveQuota(enterprise=enterprise, year=year, allocation=chain.allocation,
                                  origin="chain", chain=chain, overridden_internal=internal,
                                  internal=None)
        if internal is not None:
            return EffectiveQuota(enterprise=enterprise, year=year,
                                  allocation=internal.allocation, origin="internal",
                                  chain=None, overridden_internal=None, internal=internal)
        key = "0x" + enterprise_key(enterprise).hex()
        raise QuotaNotIssuedError(
            f"no quota for {enterprise} in {year}: none on chain, none entered internally",
            error="QuotaRegistryNotIssued", args={"enterpriseKey": key, "year": year})
