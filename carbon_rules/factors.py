"""Default emission factors, shipped as data with their sources.

The factor sets live in ``carbon_rules/data/factors/*.json``, one file per source
family, never in code:

* ``cn-mee-grid``: the national grid average factor for purchased electricity, 0.5703
  tCO2/MWh (MEE, 2023 notice on power-sector GHG reports; it replaced 0.5810), and the
  NDRC guidelines' 0.11 tCO2/GJ for purchased heat;
* ``cn-ndrc-fuels``: NCV, carbon content and oxidation rate of natural gas, diesel and
  gasoline (and raw coal, marked unverified) from the NDRC enterprise GHG accounting
  guidelines (2015);
* ``ipcc-ar5-gwp100``: IPCC AR5 100-year GWPs of CO2, CH4, N2O, SF6, NF3, two PFCs and
  five HFCs;
* ``conventions``: ``ef.direct_release`` = 1 t/t, the identity for a gas released as
  itself.

Every factor names its source document (issuer, title, year), its region, its unit and
a plausible range with the reason for it; a factor outside its own range is refused at
load time with the contract's own error. Each also carries a ``confidence``:
``"high"`` (loaded by default), ``"definition"`` (loaded by default) or
``"unverified"`` (loaded only when asked for, so that nothing unchecked reaches an
inventory silently).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Literal

from .errors import InvalidRuleError
from .fixed_point import parse
from .models import Factor, VersionDraft

__all__ = [
    "DEFAULT_GWP_SET",
    "Confidence",
    "DefaultFactor",
    "FactorSet",
    "SourceDocument",
    "default_draft",
    "default_factors",
    "factor_set_names",
    "load_factor_set",
]

Confidence = Literal["high", "definition", "unverified"]
_CONFIDENCES: tuple[Confidence, ...] = ("high", "definition", "unverified")

#: The GWP set label of :func:`default_draft`.
DEFAULT_GWP_SET = "IPCC-AR5-GWP100"

_FACTOR_KEYS = {"id", "value", "unit", "region", "plausible", "source", "confidence",
                "notes", "data_year", "replaces"}
_SOURCE_KEYS = {"issuer", "title", "title_en", "year", "section", "number"}
_SET_KEYS = {"set", "description", "factors", "sources", "defaults"}


@dataclass(frozen=True)
class SourceDocument:
    """The document a factor comes from."""

    issuer: str
    title: str
    year: int
    title_en: str | None = None
    number: str | None = None
    section: str | None = None

    def citation(self) -> str:
        """The text stored on chain as the factor's ``source``: issuer, title, number."""
        parts = [self.issuer, self.title]
        if self.number:
            parts.append(self.number)
        return "; ".join(parts)


@dataclass(frozen=True)
class DefaultFactor:
    """A shipped factor: the :class:`Factor` and what stands behind it."""

    factor: Factor
    document: SourceDocument
    confidence: Confidence
    range_basis: str
    notes: str = ""
    data_year: int | None = None


@dataclass(frozen=True)
class FactorSet:
    """One data file: a named family of factors."""

    name: str
    description: str
    factors: tuple[DefaultFactor, ...]


def _refuse(where: str, problem: str) -> InvalidRuleError:
    return InvalidRuleError(f"factor data {where}: {problem}")


def _only(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _refuse(where, f"unknown keys {extra}")


def _source(where: str, data: Any, refs: dict[str, Any]) -> SourceDocument:
    if isinstance(data, dict) and set(data) == {"ref"}:
        if data["ref"] not in refs:
            raise _refuse(where, f"unknown source ref {data['ref']!r}")
        data = refs[data["ref"]]
    if not isinstance(data, dict):
        raise _refuse(where, "source must be an object")
    _only(where, data, _SOURCE_KEYS)
    try:
        doc = SourceDocument(
            issuer=str(data["issuer"]), title=str(data["title"]), year=int(data["year"]),
            title_en=data.get("title_en"), number=data.get("number"),
            section=data.get("section"))
    except KeyError as exc:
        raise _refuse(where, f"source lacks {exc.args[0]!r}") from None
    if not doc.issuer.strip() or not doc.title.strip():
        raise _refuse(where, "source must name its issuer and title")
    return doc


def _default_factor(where: str, raw: dict[str, Any], defaults: dict[str, Any],
                    refs: dict[str, Any]) -> DefaultFactor:
    data = {**defaults, **raw}
    _only(where, data, _FACTOR_KEYS)
    value = parse(data["value"])
    plausible = data.get("plausible")
    if plausible == "exact":
        lo, hi, basis = value, value, "exact: a definition or a fixed published constant"
    elif isinstance(plausible, dict) and set(plausible) == {"min", "max", "basis"}:
        lo, hi, basis = parse(plausible["min"]), parse(plausible["max"]), str(plausible["basis"])
    else:
        raise _refuse(where, "plausible must be \"exact\" or {min, max, basis}")
    confidence = data.get("confidence")
    if confidence not in _CONFIDENCES:
        raise _refuse(where, f"confidence must be one of {_CONFIDENCES}, got {confidence!r}")
    document = _source(where, data.get("source"), refs)
    if "replaces" in data:  # history, validated but never loaded as a factor
        old = data["replaces"]
        _only(f"{where}.replaces", old, {"value", "source", "confidence", "notes"})
        parse(old["value"])
        _source(f"{where}.replaces", old["source"], refs)
    factor = Factor(
        id=str(data["id"]), value=value, min_value=lo, max_value=hi, unit=str(data["unit"]),
        region=str(data.get("region", "")), year=document.year, source=document.citation())
    # A shipped factor outside its own range is a broken data file: refuse it with the
    # contract's own error, so the same check guards the file and the chain.
    factor.check_plausible()
    return DefaultFactor(factor=factor, document=document, confidence=confidence,
                         range_basis=basis, notes=str(data.get("notes", "")),
                         data_year=data.get("data_year"))


def _folder() -> Traversable:
    """Where the factor data files are (package data)."""
    return resources.files("carbon_rules").joinpath("data", "factors")


def factor_set_names() -> tuple[str, ...]:
    """Names of the shipped factor sets (the data file stems), sorted."""
    return tuple(sorted(p.name.removesuffix(".json") for p in _folder().iterdir()
                        if p.name.endswith(".json")))


@cache
def load_factor_set(name: str) -> FactorSet:
    """Load and check ``data/factors/<name>.json``.

    Raises :class:`InvalidRuleError` for malformed data and
    :class:`~carbon_rules.errors.ImplausibleFactorError` for a factor outside its range.
    """
    if name not in factor_set_names():
        raise InvalidRuleError(f"no factor set {name!r}; shipped: {factor_set_names()}")
    path = _folder().joinpath(f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    _only(name, data, _SET_KEYS)
    if data.get("set") != name:
        raise _refuse(name, f"file declares set {data.get('set')!r}")
    refs = data.get("sources", {})
    defaults = data.get("defaults", {})
    factors = tuple(
        _default_factor(f"{name}[{i}]", raw, defaults, refs)
        for i, raw in enumerate(data["factors"])
    )
    return FactorSet(name=name, description=str(data["description"]), factors=factors)


def default_factors(*, include_unverified: bool = False) -> tuple[Factor, ...]:
    """Every shipped factor, sorted by id; unverified ones only if asked for.

    Raises :class:`InvalidRuleError` if two sets ship the same id.
    """
    chosen: dict[str, Factor] = {}
    for name in factor_set_names():
        for entry in load_factor_set(name).factors:
            if entry.confidence == "unverified" and not include_unverified:
                continue
            if entry.factor.id in chosen:
                raise InvalidRuleError(f"factor {entry.factor.id} is shipped twice")
            chosen[entry.factor.id] = entry.factor
    return tuple(sorted(chosen.values(), key=lambda f: f.key))


def default_draft(
    document: str = "carbon-ledger default rules: MEE grid factor 2023, NDRC fuel "
    "defaults 2015, IPCC AR5 GWP100",
    *,
    include_unverified: bool = False,
) -> VersionDraft:
    """A version draft carrying every shipped factor, ready for ``publish_version``."""
    return VersionDraft(gwp_set=DEFAULT_GWP_SET, document=document,
                        factors=default_factors(include_unverified=include_unverified))
