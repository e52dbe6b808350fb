"""Offsets and the rules that say what they may net against.

Three kinds, kept beside gross emissions, never merged into them:

``green_power``
    Green electricity bought under a named purchase (绿电交易): the covered MWh of
    scope-2 purchased electricity count at a factor of 0, so they remove the emissions
    the inventory computed for that many MWh.
``gec``
    Green electricity certificates (绿证, GEC): one certificate, one MWh, same effect.
``ccer``
    China Certified Emission Reductions (tCO2e), typically from a project whose
    reductions are ``baseline - project - leakage`` (:func:`CcerClaim.from_project`).

:class:`NettingRules` is the configuration: for each kind, the scopes it may reduce and
an optional cap as a fraction of gross emissions, with the document it rests on.
:data:`CN_ETS_RULES` is the shipped default for China's national ETS. Applying claims
and refusing double counting is :mod:`carbon_rules.offsets_ledger`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from carbon_protocol.inventory import FixedStr, Scope

from .errors import OffsetError, OffsetNotAllowedError
from .fixed_point import Fixed, checked, parse, to_decimal
from .formulas import project_reductions

__all__ = [
    "CN_ETS_RULES",
    "CcerClaim",
    "CertificateClaim",
    "Claim",
    "GreenPowerClaim",
    "NettingRule",
    "NettingRules",
    "OffsetKind",
    "load_netting_rules",
]

OffsetKind = Literal["green_power", "gec", "ccer"]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                             pattern=r"^[\x21-\x7e]+$")]
"""A serial or purchase id: printable ASCII without spaces."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GreenPowerClaim(_Model):
    """MWh of one green power purchase claimed against purchased electricity."""

    kind: Literal["green_power"] = "green_power"
    purchase_id: Reference
    purchased_mwh: FixedStr
    """The purchase's whole volume: all claims on it together may not exceed it."""
    mwh: FixedStr
    """The MWh claimed now."""

    def references(self) -> list[str]:
        return [self.purchase_id]


class CertificateClaim(_Model):
    """Green electricity certificates, 1 MWh each, by serial."""

    kind: Literal["gec"] = "gec"
    serials: list[Reference] = Field(min_length=1, max_length=100_000)

    def references(self) -> list[str]:
        return list(self.serials)

    @property
    def mwh(self) -> str:
        """The MWh the certificates cover (one each)."""
        return str(len(self.serials))


class CcerClaim(_Model):
    """A block of CCER credits (tCO2e) under one serial."""

    kind: Literal["ccer"] = "ccer"
    serial: Reference
    tco2e: FixedStr
    project: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """The project the credits were issued to (its CCER registration number)."""

    def references(self) -> list[str]:
        return [self.serial]

    @classmethod
    def from_project(cls, serial: str, project: str, baseline: Fixed, project_emissions: Fixed,
                     leakage: Fixed) -> CcerClaim:
        """Credits for a project's whole reductions ``baseline - project - leakage``
        (:func:`carbon_rules.formulas.project_reductions`); refused when not positive."""
        reductions = project_reductions(baseline, project_emissions, leakage)
        if reductions <= 0:
            raise OffsetError(f"project {project} reduced nothing ({reductions} < 1 wei)",
                              project=project)
        return cls(serial=serial, project=project, tco2e=to_decimal(checked(reductions)))


Claim = Annotated[GreenPowerClaim | CertificateClaim | CcerClaim, Field(discriminator="kind")]


class NettingRule(_Model):
    """What one kind of offset may reduce, up to what, and on what authority."""

    kind: OffsetKind
    scopes: list[Scope] = Field(min_length=1)
    """The scopes it may reduce. Green power and GECs only make sense for scope 2."""
    cap_ratio: FixedStr | None = None
    """At most this fraction of gross (verified) emissions, e.g. ``0.05``; none: no cap."""
    basis: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    """The document the rule comes from."""


class NettingRules(_Model):
    """A named set of netting rules; a kind without a rule is not accepted at all."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    rules: list[NettingRule] = Field(min_length=1)

    def rule(self, kind: OffsetKind, scope: int | None) -> NettingRule:
        """The rule letting ``kind`` reduce ``scope`` (any scope: ``None``, for CCER,
        which offsets the total); :class:`OffsetNotAllowedError` if there is none."""
        for r in self.rules:
            if r.kind == kind:
                if scope is not None and scope not in r.scopes:
                    raise OffsetNotAllowedError(
                        f"{self.name}: {kind} may reduce scope {r.scopes}, not scope {scope}",
                        kind=kind, scope=scope, rules=self.name)
                return r
        raise OffsetNotAllowedError(f"{self.name}: {kind} offsets are not accepted",
                                    kind=kind, rules=self.name)

    def cap_ratio(self, kind: OffsetKind) -> Fixed | None:
        """The cap of ``kind`` as a fixed-point fraction, if it has one."""
        for r in self.rules:
            if r.kind == kind and r.cap_ratio is not None:
                return parse(r.cap_ratio)
        return None


#: China's national ETS: green power and GECs reduce scope-2 purchased electricity at a
#: zero factor; CCERs offset up to 5 % of the verified emissions to be surrendered.
CN_ETS_RULES = NettingRules(name="CN-ETS-2024", rules=[
    NettingRule(kind="green_power", scopes=[2], basis=(
        "GHG Protocol Scope 2 Guidance (WRI/WBCSD, 2015), market-based method: contractual "
        "instruments for renewable electricity carry their generation's zero factor")),
    NettingRule(kind="gec", scopes=[2], basis=(
        "国家发展改革委 财政部 国家能源局 发改能源〔2023〕1044号: a green electricity "
        "certificate (绿证) is the sole proof of 1,000 kWh of renewable electricity")),
    NettingRule(kind="ccer", scopes=[1, 2], cap_ratio="0.05", basis=(
        "碳排放权交易管理办法（试行）(生态环境部令 第19号, 2020) 第二十九条: CCER may offset "
        "at most 5 % of the allowances an emitter must surrender")),
])


def load_netting_rules(path: Path) -> NettingRules:
    """Netting rules from a JSON file (the shape of :class:`NettingRules`)."""
    try:
        return NettingRules.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise OffsetError(f"netting rules {path}: {exc}", path=str(path)) from exc
