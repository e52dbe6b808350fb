"""The rule package's error family.

Every error :mod:`carbon_rules` raises on purpose derives from :class:`RulesError`, with
``diagnostics()`` like the ledger's errors. Errors that the ``RuleRegistry`` contract
(or its ``EmissionFormulas`` library) can also raise *mirror* it: they derive from
:class:`ContractRuleError` and carry ``details == {"error": <Solidity error name>,
"args": {...}}`` with the same JSON-ready arguments the contract's revert decodes to,
and the same message ``Name(arg=value, ...)``. The Python computation and the contract
therefore fail identically, and :mod:`carbon_rules.registry_client` re-raises a decoded
revert as the very class the Python side would have raised
(:func:`contract_error`).

Each mirrored class is also the builtin it stands in for where one fits
(``FixedPointOverflowError`` is an ``OverflowError``, ``UnknownRuleError`` a
``LookupError``), like web3.py's exceptions.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ActivityDataError",
    "ActivityInputError",
    "ColumnarRangeError",
    "DuplicateReadingError",
    "ContractRuleError",
    "FixedPointOverflowError",
    "ImplausibleFactorError",
    "InvalidDecimalError",
    "InvalidParameterError",
    "IncompatibleUnitsError",
    "InvalidRuleError",
    "NoVersionInForceError",
    "OffsetCapExceededError",
    "OffsetDoubleClaimError",
    "OffsetError",
    "OffsetNotAllowedError",
    "OverclaimedConsumptionError",
    "QuotaAlreadyIssuedError",
    "QuotaError",
    "QuotaInputError",
    "QuotaNotIssuedError",
    "QuotaRefusedError",
    "QuotaUnauthorizedError",
    "ReportError",
    "PublicationRefusedError",
    "ReadingOrderError",
    "RegisterAnomalyError",
    "RegistryError",
    "RegistryUnavailableError",
    "RulesError",
    "UnitError",
    "UnknownRuleError",
    "UnknownUnitError",
    "VersionNotInForceError",
    "VersionNotYetInForceError",
    "VersionSupersededError",
    "contract_error",
]


class RulesError(Exception):
    """Base of every error raised by :mod:`carbon_rules`."""

    code: ClassVar[str] = "rules_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-ready problem description: stable ``code``, human ``message``, details."""
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details:
            out["details"] = self.details
        return out


class InvalidDecimalError(RulesError, ValueError):
    """A decimal string is not a plain non-negative decimal with at most 18 places."""

    code = "invalid_decimal"


class InvalidRuleError(RulesError, ValueError):
    """A rule object (factor, version, parameter) is malformed before any arithmetic."""

    code = "invalid_rule"


class ActivityDataError(RulesError, ValueError):
    """No activity data source is available (case 18: neither meter nor bill)."""

    code = "no_activity_data"


class ActivityInputError(RulesError, ValueError):
    """Readings or configuration cannot be turned into activity data as given
    (:mod:`carbon_rules.activity`); nothing is computed from a partial input."""

    code = "invalid_activity_input"


class UnitError(ActivityInputError):
    """A unit cannot be used for the conversion asked for."""

    code = "unit_error"


class UnknownUnitError(UnitError, LookupError):
    """The unit is not one :mod:`carbon_rules.activity.units` knows."""

    code = "unknown_unit"


class IncompatibleUnitsError(UnitError):
    """The units measure different things (kWh to t), or one device mixes units."""

    code = "incompatible_units"


class DuplicateReadingError(ActivityInputError):
    """Two readings claim the same device and sequence number, or the same Merkle leaf."""

    code = "duplicate_reading"


class ReadingOrderError(ActivityInputError):
    """A device's measurement times do not increase with its sequence numbers."""

    code = "reading_order"


class RegisterAnomalyError(ActivityInputError):
    """A register went backwards without a rollover or declared replacement (raised
    only when the configuration asks for errors instead of flagged anomalies)."""

    code = "register_anomaly"


class ColumnarRangeError(ActivityInputError, OverflowError):
    """Scaled values do not fit the columnar path's int64 arithmetic; use fewer
    decimals or the exact per-reading path."""

    code = "columnar_range"


class QuotaInputError(RulesError, ValueError):
    """Quota or reconciliation input is malformed (a month out of range, a negative
    quantity); nothing is computed from it."""

    code = "invalid_quota_input"


class OffsetError(RulesError, ValueError):
    """An offset claim cannot be netted as given; nothing of the claim is consumed."""

    code = "offset_error"


class OffsetDoubleClaimError(OffsetError):
    """A certificate or credit serial, or a green power purchase's MWh, was already
    claimed: counting it again would count one tonne twice."""

    code = "offset_double_claim"


class OverclaimedConsumptionError(OffsetError):
    """Green power and certificates claimed against a period's purchased electricity
    exceed the MWh actually consumed."""

    code = "offset_overclaimed_consumption"


class OffsetNotAllowedError(OffsetError):
    """The netting rules do not let this kind of offset reduce the scope claimed."""

    code = "offset_not_allowed"


class OffsetCapExceededError(OffsetError):
    """The claim would take an offset kind past its cap (CCER: 5 % of verified
    emissions in the national ETS)."""

    code = "offset_cap_exceeded"


class ReportError(RulesError, ValueError):
    """An inventory report cannot be built from the inputs given."""

    code = "report_error"


class RegistryUnavailableError(RulesError):
    """The chain endpoint holding the registry cannot be reached or answers nonsense."""

    code = "registry_unavailable"


# -- errors the contract raises too ---------------------------------------------------


def _shown(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("0x") else repr(value)


class ContractRuleError(RulesError):
    """An error the contract raises too; ``details`` holds its name and arguments."""

    code = "rule_refused"

    @property
    def error(self) -> str:
        """The Solidity error name, e.g. ``"RuleRegistryVersionSuperseded"``."""
        return str(self.details["error"])

    @property
    def error_args(self) -> dict[str, Any]:
        """The Solidity error's arguments, JSON-ready (bytes32 as 0x-hex)."""
        args: dict[str, Any] = self.details["args"]
        return args


class RegistryError(ContractRuleError):
    """The registry refused a call for a reason with no closer class (e.g. access
    control, an unknown error selector, a node refusing a transaction)."""

    code = "registry_error"


class FixedPointOverflowError(ContractRuleError, OverflowError):
    """A value left ``[0, MAX_VALUE]`` (``EmissionFormulasOverflow``)."""

    code = "fixed_point_overflow"


class ImplausibleFactorError(ContractRuleError, ValueError):
    """A factor lies outside its plausible range, or the range itself is invalid."""

    code = "implausible_factor"


class InvalidParameterError(ContractRuleError, ValueError):
    """A computation parameter is malformed (a default that carries a value)."""

    code = "invalid_parameter"


class UnknownRuleError(ContractRuleError, LookupError):
    """The named methodology version or factor does not exist."""

    code = "unknown_rule"


class VersionNotInForceError(ContractRuleError):
    """The rule version named is not the one in force at the time asked about."""

    code = "version_not_in_force"


class VersionNotYetInForceError(VersionNotInForceError):
    """The version takes effect after the time asked about."""

    code = "version_not_yet_in_force"


class VersionSupersededError(VersionNotInForceError):
    """The version was superseded at or before the time asked about."""

    code = "version_superseded"


class NoVersionInForceError(VersionNotInForceError):
    """No version of the methodology is in force at the time asked about."""

    code = "no_version_in_force"


class PublicationRefusedError(ContractRuleError):
    """A methodology version cannot be published as given."""

    code = "publication_refused"


class QuotaError(ContractRuleError):
    """The ``QuotaRegistry`` refused a call, or a quota asked for does not exist."""

    code = "quota_error"


class QuotaRefusedError(QuotaError, ValueError):
    """A quota cannot be issued or adjusted as given (empty enterprise or document,
    a year outside ``1..9999``)."""

    code = "quota_refused"


class QuotaAlreadyIssuedError(QuotaError):
    """The enterprise already has a quota for that year: adjust it instead."""

    code = "quota_already_issued"


class QuotaNotIssuedError(QuotaError, LookupError):
    """No quota was issued on chain for that enterprise and year (or revision)."""

    code = "quota_not_issued"


class QuotaUnauthorizedError(QuotaError, PermissionError):
    """The sender lacks ``REGULATOR_ROLE`` (``AccessControlUnauthorizedAccount``)."""

    code = "quota_unauthorized"


#: Solidity error name -> the class that mirrors it.
_MIRRORS: dict[str, type[ContractRuleError]] = {
    "EmissionFormulasOverflow": FixedPointOverflowError,
    "RuleRegistryFactorOutOfRange": ImplausibleFactorError,
    "RuleRegistryInvalidFactorBounds": ImplausibleFactorError,
    "RuleRegistryDefaultWithValue": InvalidParameterError,
    "RuleRegistryUnknownVersion": UnknownRuleError,
    "RuleRegistryUnknownFactor": UnknownRuleError,
    "RuleRegistryVersionNotYetInForce": VersionNotYetInForceError,
    "RuleRegistryVersionSuperseded": VersionSupersededError,
    "RuleRegistryNoVersionInForce": NoVersionInForceError,
    "RuleRegistryEmptyMethodologyId": PublicationRefusedError,
    "RuleRegistryRetroactiveVersion": PublicationRefusedError,
    "RuleRegistryEffectiveFromBeforePrevious": PublicationRefusedError,
    "RuleRegistryFactorIdsNotIncreasing": PublicationRefusedError,
    "QuotaRegistryEmptyEnterprise": QuotaRefusedError,
    "QuotaRegistryInvalidYear": QuotaRefusedError,
    "QuotaRegistryEmptyDocument": QuotaRefusedError,
    "QuotaRegistryAlreadyIssued": QuotaAlreadyIssuedError,
    "QuotaRegistryNotIssued": QuotaNotIssuedError,
    "QuotaRegistryUnknownRevision": QuotaNotIssuedError,
}


def contract_error(name: str, args: dict[str, Any], **extra: Any) -> ContractRuleError:
    """The mirrored error for Solidity error ``name(args)``.

    ``args`` are JSON-ready (ints, 0x-hex strings, checksummed addresses), in the
    error's declaration order. The message is ``Name(arg=value, ...)``, the same text
    whether Python computed the failure or the contract reverted with it.
    """
    shown = ", ".join(f"{k}={_shown(v)}" for k, v in args.items())
    cls = _MIRRORS.get(name, RegistryError)
    return cls(f"{name}({shown})", error=name, args=dict(args), **extra)
