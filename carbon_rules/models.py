"""Rule objects: factors, methodology versions and their history, computation inputs.

These mirror the ``IRuleRegistry`` structs one to one (``to_abi()`` gives the ABI
tuple), and :class:`Methodology` answers the questions the contract answers (which
version applied at time *t*, is version *v* in force, what does a parameter resolve to,
what does a line emit) with the same results and the same errors, so a gateway that
fetched the rules once computes offline exactly what the contract would.

Names on chain (methodology ids, factor ids, units, regions, the GWP set label) are
short printable-ASCII strings, at most 32 bytes, right-padded with zero bytes to
``bytes32`` (:func:`encode_name`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from .errors import InvalidRuleError, contract_error
from .fixed_point import MAX_VALUE, Fixed
from .fixed_point import add as _add
from .formulas import (
    UINT256_MAX,
    FuelLine,
    ProcessLine,
    fuel_line,
    process_line,
    purchased_energy,
)

__all__ = [
    "FACTOR_ABI_TYPE",
    "Factor",
    "FuelUse",
    "Methodology",
    "MethodologyVersion",
    "Param",
    "ProcessUse",
    "RuleRef",
    "VersionDraft",
    "VersionStatus",
    "decode_name",
    "encode_name",
    "hex32",
    "parameters_hash",
]

#: The ABI type of ``IRuleRegistry.Factor``.
FACTOR_ABI_TYPE = "(bytes32,uint256,uint256,uint256,bytes32,bytes32,uint16,string)"

_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1


def encode_name(name: str, *, allow_empty: bool = False) -> bytes:
    """``name`` as ``bytes32``: printable ASCII (0x20-0x7E), at most 32 bytes, zero-padded.

    Printable ASCII only, so two names that look alike are alike. The empty name (zero)
    is refused unless ``allow_empty`` (a global region, no GWP set).
    """
    if not isinstance(name, str):
        raise InvalidRuleError(f"a name must be a str, got {type(name).__name__}")
    if not name and not allow_empty:
        raise InvalidRuleError("a name must not be empty")
    if len(name) > 32 or any(not 0x20 <= ord(ch) <= 0x7E for ch in name):
        raise InvalidRuleError(f"a name must be at most 32 printable ASCII characters: {name!r}")
    return name.encode("ascii").ljust(32, b"\x00")


def decode_name(value: bytes) -> str:
    """The name a ``bytes32`` holds (the inverse of :func:`encode_name`)."""
    if len(value) != 32:
        raise InvalidRuleError(f"expected 32 bytes, got {len(value)}")
    text = value.rstrip(b"\x00")
    if b"\x00" in text or any(not 0x20 <= b <= 0x7E for b in text):
        raise InvalidRuleError(f"bytes32 0x{value.hex()} is not a printable-ASCII name")
    return text.decode("ascii")


def hex32(name: str) -> str:
    """The 0x-hex ``bytes32`` of a name, as decoded contract errors and events show it."""
    return "0x" + encode_name(name, allow_empty=True).hex()


def _uint(name: str, value: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidRuleError(f"{name} must be an int in [0, {maximum}], got {value!r}")
    return value


# -- factors and versions ---------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """A methodology parameter with provenance (``IRuleRegistry.Factor``).

    ``value``, ``min_value`` and ``max_value`` are fixed point; ``[min_value,
    max_value]`` is the plausible range. ``year`` and ``source`` name the document the
    value comes from, ``region`` where it applies (``""`` for global).
    """

    id: str
    value: int
    min_value: int
    max_value: int
    unit: str
    region: str
    year: int
    source: str

    def __post_init__(self) -> None:
        encode_name(self.id)
        encode_name(self.unit)
        encode_name(self.region, allow_empty=True)
        for name in ("value", "min_value", "max_value"):
            _uint(name, getattr(self, name), UINT256_MAX)
        _uint("year", self.year, 2**16 - 1)
        if not isinstance(self.source, str) or not self.source.strip():
            raise InvalidRuleError(f"factor {self.id}: its source document must be named")

    @property
    def key(self) -> bytes:
        """The factor id as ``bytes32``."""
        return encode_name(self.id)

    def check_plausible(self) -> None:
        """Raise what the contract raises when publishing this factor, if anything.

        The range must satisfy ``min <= max <= MAX_VALUE``
        (``RuleRegistryInvalidFactorBounds``) and contain ``value``
        (``RuleRegistryFactorOutOfRange``), checked in that order.
        """
        if self.min_value > self.max_value or self.max_value > MAX_VALUE:
            raise contract_error("RuleRegistryInvalidFactorBounds", {
                "factor": hex32(self.id), "minValue": self.min_value,
                "maxValue": self.max_value})
        self.check_value(self.value)

    def check_value(self, value: int) -> None:
        """Raise ``RuleRegistryFactorOutOfRange`` unless ``value`` is in the range."""
        if not self.min_value <= value <= self.max_value:
            raise contract_error("RuleRegistryFactorOutOfRange", {
                "factor": hex32(self.id), "value": value, "minValue": self.min_value,
                "maxValue": self.max_value})

    def to_abi(self) -> tuple[bytes, int, int, int, bytes, bytes, int, str]:
        """The ABI tuple of ``IRuleRegistry.Factor``."""
        return (self.key, self.value, self.min_value, self.max_value,
                encode_name(self.unit), encode_name(self.region, allow_empty=True),
                self.year, self.source)

    @classmethod
    def from_abi(cls, data: Sequence[Any]) -> Factor:
        """A factor from the decoded ABI tuple."""
        key, value, lo, hi, unit, region, year, source = data
        return cls(id=decode_name(bytes(key)), value=int(value), min_value=int(lo),
                   max_value=int(hi), unit=decode_name(bytes(unit)),
                   region=decode_name(bytes(region)), year=int(year), source=str(source))


def parameters_hash(gwp_set: str, document: str, factors: Iterable[Factor]) -> bytes:
    """``keccak256(abi.encode(gwpSet, document, factors))``, as ``parametersHashOf``."""
    encoded = abi_encode(
        ["bytes32", "string", f"{FACTOR_ABI_TYPE}[]"],
        [encode_name(gwp_set, allow_empty=True), document, [f.to_abi() for f in factors]],
    )
    return keccak(encoded)


@dataclass(frozen=True)
class VersionDraft:
    """The parameters of a version to publish: GWP set label, document, factors.

    Factors are kept sorted by id (the order the contract requires, which also makes
    :attr:`parameters_hash` independent of the order they were given in). Nothing is
    range-checked here; :meth:`check` raises what the contract would.
    """

    gwp_set: str
    document: str
    factors: tuple[Factor, ...] = field(default=())

    def __post_init__(self) -> None:
        encode_name(self.gwp_set, allow_empty=True)
        if not isinstance(self.document, str) or not self.document.strip():
            raise InvalidRuleError("a methodology version must name its document")
        ordered = tuple(sorted(self.factors, key=lambda f: f.key))
        object.__setattr__(self, "factors", ordered)

    @property
    def parameters_hash(self) -> bytes:
        """The hash the contract will publish these parameters under."""
        return parameters_hash(self.gwp_set, self.document, self.factors)

    def check(self) -> None:
        """Raise what ``publishVersion`` would raise about these parameters, if anything:
        duplicate ids (``RuleRegistryFactorIdsNotIncreasing``), then each factor's
        bounds and value, in id order."""
        previous = bytes(32)
        for factor in self.factors:
            if factor.key <= previous:
                raise contract_error("RuleRegistryFactorIdsNotIncreasing", {
                    "previous": "0x" + previous.hex(), "got": hex32(factor.id)})
            previous = factor.key
            factor.check_plausible()


class VersionStatus(enum.IntEnum):
    """``IRuleRegistry.VersionStatus``."""

    PENDING = 0
    IN_FORCE = 1
    SUPERSEDED = 2


@dataclass(frozen=True)
class MethodologyVersion:
    """A published version: immutable once on chain."""

    methodology_id: str
    version: int
    effective_from: int
    published_at: int
    publisher: str
    parameters_hash: bytes
    gwp_set: str
    document: str
    factors: tuple[Factor, ...]

    def __post_init__(self) -> None:
        encode_name(self.methodology_id)
        _uint("version", self.version, _UINT32_MAX)
        if self.version == 0:
            raise InvalidRuleError("versions are numbered from 1")
        _uint("effective_from", self.effective_from, _UINT64_MAX)
        expected = parameters_hash(self.gwp_set, self.document, self.factors)
        if expected != self.parameters_hash:
            # To prevent computing with parameters other than the published ones (a
            # node, a cache or a file that altered a factor), the hash must match.
            raise InvalidRuleError(
                f"parameters of {self.methodology_id} v{self.version} do not match their "
                f"published hash: expected 0x{self.parameters_hash.hex()}, "
                f"got 0x{expected.hex()}")

    def factor(self, factor_id: str) -> Factor:
        """The factor ``factor_id`` (``RuleRegistryUnknownFactor`` if absent)."""
        for f in self.factors:
            if f.id == factor_id:
                return f
        raise contract_error("RuleRegistryUnknownFactor", {
            "methodologyId": hex32(self.methodology_id), "version": self.version,
            "factor": hex32(factor_id)})


# -- computation inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class RuleRef:
    """The rule a line claims: methodology, version, and time ``at`` (Unix seconds)."""

    methodology_id: str
    version: int
    at: int

    def __post_init__(self) -> None:
        encode_name(self.methodology_id)
        _uint("version", self.version, _UINT32_MAX)
        _uint("at", self.at, _UINT64_MAX)

    def to_abi(self) -> tuple[bytes, int, int]:
        """The ABI tuple ``(methodologyId, version, at)``."""
        return (encode_name(self.methodology_id), self.version, self.at)


@dataclass(frozen=True)
class Param:
    """A parameter: factor ``factor``'s published default, or a measured ``value``.

    Build it with :meth:`default` or :meth:`measured_value`. A default carrying a
    non-zero value is refused when resolved (``RuleRegistryDefaultWithValue``), as on
    chain; it can be built so that this can be tested.
    """

    factor: str
    measured: bool = False
    value: int = 0

    def __post_init__(self) -> None:
        encode_name(self.factor)
        if not isinstance(self.measured, bool):
            raise InvalidRuleError(f"measured must be a bool, got {self.measured!r}")
        _uint("value", self.value, UINT256_MAX)

    @classmethod
    def default(cls, factor: str) -> Param:
        """The published default of ``factor``."""
        return cls(factor)

    @classmethod
    def measured_value(cls, factor: str, value: int) -> Param:
        """A measured ``value`` (fixed point), checked against ``factor``'s range."""
        return cls(factor, True, value)

    def to_abi(self) -> tuple[bytes, bool, int]:
        """The ABI tuple ``(factor, measured, value)``."""
        return (encode_name(self.factor), self.measured, self.value)


@dataclass(frozen=True)
class FuelUse:
    """One fuel of a combustion source with parameters resolved by a rule."""

    consumption: int
    net_calorific_value: Param
    carbon_content: Param
    oxidation_rate: Param

    def __post_init__(self) -> None:
        _uint("consumption", self.consumption, UINT256_MAX)

    @classmethod
    def with_defaults(cls, fuel: str, consumption: int) -> FuelUse:
        """``fuel``'s published defaults ``ncv.<fuel>``, ``cc.<fuel>``, ``of.<fuel>``."""
        return cls(consumption, Param(f"ncv.{fuel}"), Param(f"cc.{fuel}"), Param(f"of.{fuel}"))

    def to_abi(self) -> tuple[int, tuple[bytes, bool, int], tuple[bytes, bool, int],
                              tuple[bytes, bool, int]]:
        """The ABI tuple of ``IRuleRegistry.FuelUse``."""
        return (self.consumption, self.net_calorific_value.to_abi(),
                self.carbon_content.to_abi(), self.oxidation_rate.to_abi())


@dataclass(frozen=True)
class ProcessUse:
    """One process-emission line with parameters resolved by a rule."""

    amount: int
    emission_factor: Param
    gwp: Param

    def __post_init__(self) -> None:
        _uint("amount", self.amount, UINT256_MAX)

    def to_abi(self) -> tuple[int, tuple[bytes, bool, int], tuple[bytes, bool, int]]:
        """The ABI tuple of ``IRuleRegistry.ProcessUse``."""
        return (self.amount, self.emission_factor.to_abi(), self.gwp.to_abi())


# -- a methodology's history ------------------------------------------------------------


@dataclass(frozen=True)
class Methodology:
    """Every version of one methodology, as published: the registry's answers, offline.

    Methods mirror the contract's views and raise the same errors, in the same order.
    """

    id: str
    versions: tuple[MethodologyVersion, ...]

    def __post_init__(self) -> None:
        encode_name(self.id)
        previous = 0
        for number, v in enumerate(self.versions, start=1):
            if v.methodology_id != self.id or v.version != number:
                raise InvalidRuleError(
                    f"version {number} of {self.id} is {v.methodology_id} v{v.version}")
            if number > 1 and v.effective_from < previous:
                raise InvalidRuleError(f"{self.id} v{number} takes effect before v{number - 1}")
            previous = v.effective_from

    def _args(self, **more: Any) -> dict[str, Any]:
        return {"methodologyId": hex32(self.id), **more}

    def version(self, number: int) -> MethodologyVersion:
        """Version ``number`` (``RuleRegistryUnknownVersion`` if absent)."""
        if not 1 <= number <= len(self.versions):
            raise contract_error("RuleRegistryUnknownVersion", self._args(version=number))
        return self.versions[number - 1]

    def effective_to(self, number: int) -> int | None:
        """When version ``number`` stops being in force (``None``: it is the latest)."""
        self.version(number)
        return self.versions[number].effective_from if number < len(self.versions) else None

    def version_at(self, at: int) -> int:
        """The version in force at ``at`` (``RuleRegistryNoVersionInForce`` if none)."""
        found = 0
        for v in self.versions:
            if v.effective_from <= at:
                found = v.version
        if found == 0:
            raise contract_error("RuleRegistryNoVersionInForce", self._args(at=at))
        return found

    def status_at(self, number: int, at: int) -> VersionStatus:
        """Whether version ``number`` is pending, in force or superseded at ``at``."""
        v = self.version(number)
        if at < v.effective_from:
            return VersionStatus.PENDING
        end = self.effective_to(number)
        if end is not None and at >= end:
            return VersionStatus.SUPERSEDED
        return VersionStatus.IN_FORCE

    def require_in_force(self, rule: RuleRef) -> MethodologyVersion:
        """The version ``rule`` names, if it is in force at ``rule.at``; else raise
        ``RuleRegistryUnknownVersion``, ``...VersionNotYetInForce`` or
        ``...VersionSuperseded``, as ``requireInForce`` does."""
        if rule.methodology_id != self.id:
            raise InvalidRuleError(f"rule names {rule.methodology_id}, this is {self.id}")
        v = self.version(rule.version)
        if rule.at < v.effective_from:
            raise contract_error("RuleRegistryVersionNotYetInForce", self._args(
                version=rule.version, effectiveFrom=v.effective_from, at=rule.at))
        end = self.effective_to(rule.version)
        if end is not None and rule.at >= end:
            raise contract_error("RuleRegistryVersionSuperseded", self._args(
                version=rule.version, supersededFrom=end, at=rule.at))
        return v

    @staticmethod
    def _resolve(version: MethodologyVersion, param: Param) -> Fixed:
        factor = version.factor(param.factor)
        if not param.measured:
            if param.value != 0:
                raise contract_error("RuleRegistryDefaultWithValue", {
                    "factor": hex32(param.factor), "value": param.value})
            return Fixed(factor.value)
        factor.check_value(param.value)
        return Fixed(param.value)

    def resolve(self, rule: RuleRef, param: Param) -> Fixed:
        """The value ``param`` stands for under ``rule`` (which must be in force)."""
        return self._resolve(self.require_in_force(rule), param)

    def compute_purchased_energy(self, rule: RuleRef, activity_data: int,
                                 emission_factor: Param) -> Fixed:
        """``computePurchasedEnergy``: ``E = AD x EF`` with EF resolved by ``rule``."""
        version = self.require_in_force(rule)
        ef = self._resolve(version, emission_factor)
        return purchased_energy(activity_data, ef)

    def compute_fuel_combustion(self, rule: RuleRef, uses: Iterable[FuelUse]) -> Fixed:
        """``computeFuelCombustion``: per line, resolve NCV, CC, OF, then compute."""
        version = self.require_in_force(rule)
        total = Fixed(0)
        for use in uses:
            ncv = self._resolve(version, use.net_calorific_value)
            cc = self._resolve(version, use.carbon_content)
            of = self._resolve(version, use.oxidation_rate)
            total = _add(total, fuel_line(FuelLine(use.consumption, ncv, cc, of)))
        return total

    def compute_process_emissions(self, rule: RuleRef, uses: Iterable[ProcessUse]) -> Fixed:
        """``computeProcessEmissions``: per line, resolve EF and GWP, then compute."""
        version = self.require_in_force(rule)
        total = Fixed(0)
        for use in uses:
            ef = self._resolve(version, use.emission_factor)
            gwp = self._resolve(version, use.gwp)
            total = _add(total, process_line(ProcessLine(use.amount, ef, gwp)))
        return total
