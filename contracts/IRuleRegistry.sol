// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {EmissionFormulas} from "./EmissionFormulas.sol";

/**
 * @dev Interface of the carbon-ledger rule registry: versioned accounting methodologies
 * with their parameters (emission factors with provenance and plausible ranges, the GWP
 * set, units), published on chain by an industry association, and executable on chain
 * so that anyone can recompute an inventory line from its inputs.
 *
 * Names on chain are short printable-ASCII strings right-padded with zero bytes to
 * `bytes32` (like `bytes32("ef.grid.CN")`): methodology ids, factor ids, units, regions
 * and the GWP set label. All quantities are 18-decimal fixed point, see
 * {EmissionFormulas}.
 *
 * Versions of a methodology are numbered 1, 2, 3, ... in publication order, and their
 * `effectiveFrom` times never decrease. Version `v` is in force from its `effectiveFrom`
 * until the `effectiveFrom` of version `v + 1` (exclusive), or forever if it is the
 * latest. A published version never changes; only its end is set, by the next version.
 */
interface IRuleRegistry {
    /**
     * @dev Where a version stands at a given time: not yet in force, in force, or
     * superseded by the next version.
     */
    enum VersionStatus {
        Pending,
        InForce,
        Superseded
    }

    /**
     * @dev A methodology parameter with its provenance. `value`, `minValue` and
     * `maxValue` are fixed point; `[minValue, maxValue]` is the plausible range, checked
     * against the default `value` when published and against every measured value used
     * in a computation. `year` and `source` name the document the value comes from
     * (issuer, title, number), `region` where it applies (zero for global).
     */
    struct Factor {
        bytes32 id;
        uint256 value;
        uint256 minValue;
        uint256 maxValue;
        bytes32 unit;
        bytes32 region;
        uint16 year;
        string source;
    }

    /**
     * @dev A published version as {versionOf} returns it. `effectiveTo` is the
     * `effectiveFrom` of the next version, or zero while this is the latest version.
     */
    struct VersionInfo {
        uint32 version;
        uint64 effectiveFrom;
        uint64 effectiveTo;
        uint64 publishedAt;
        address publisher;
        bytes32 parametersHash;
        bytes32 gwpSet;
        string document;
        bytes32[] factorIds;
    }

    /**
     * @dev The rule an inventory line claims: methodology, version, and the time `at`
     * (seconds since the epoch) of the activity it accounts for.
     */
    struct RuleRef {
        bytes32 methodologyId;
        uint32 version;
        uint64 at;
    }

    /**
     * @dev A parameter of a computation: the published default of factor `factor`
     * (`measured == false`, `value` must be zero) or a measured `value` that must lie in
     * that factor's plausible range (`measured == true`).
     */
    struct Param {
        bytes32 factor;
        bool measured;
        uint256 value;
    }

    /// @dev One fuel of a combustion source, with its parameters resolved by the rule.
    struct FuelUse {
        uint256 consumption;
        Param netCalorificValue;
        Param carbonContent;
        Param oxidationRate;
    }

    /// @dev One process-emission line, with its parameters resolved by the rule.
    struct ProcessUse {
        uint256 amount;
        Param emissionFactor;
        Param gwp;
    }

    /**
     * @dev The `admin` given to the constructor cannot hold the admin role (zero address).
     */
    error RuleRegistryInvalidAdmin(address admin);

    /**
     * @dev The methodology id is zero, the value reserved for "none".
     */
    error RuleRegistryEmptyMethodologyId();

    /**
     * @dev A later version of `methodologyId` would take effect at `effectiveFrom`, not
     * after the current block time `currentTime`. Only a methodology's first version may
     * take effect in the past.
     */
    error RuleRegistryRetroactiveVersion(bytes32 methodologyId, uint64 effectiveFrom, uint64 currentTime);

    /**
     * @dev A new version of `methodologyId` would take effect at `got`, before the latest
     * version, which takes effect at `previous`.
     */
    error RuleRegistryEffectiveFromBeforePrevious(bytes32 methodologyId, uint64 previous, uint64 got);

    /**
     * @dev Factor ids must be non-zero and strictly increasing: `got` follows `previous`
     * (zero before the first factor).
     */
    error RuleRegistryFactorIdsNotIncreasing(bytes32 previous, bytes32 got);

    /**
     * @dev The plausible range `[minValue, maxValue]` of `factor` is empty or exceeds
     * {EmissionFormulas-MAX_VALUE}.
     */
    error RuleRegistryInvalidFactorBounds(bytes32 factor, uint256 minValue, uint256 maxValue);

    /**
     * @dev `value` of `factor` lies outside its plausible range `[minValue, maxValue]`.
     */
    error RuleRegistryFactorOutOfRange(bytes32 factor, uint256 value, uint256 minValue, uint256 maxValue);

    /**
     * @dev `methodologyId` has no version `version`.
     */
    error RuleRegistryUnknownVersion(bytes32 methodologyId, uint32 version);

    /**
     * @dev Version `version` of `methodologyId` has no factor `factor`.
     */
    error RuleRegistryUnknownFactor(bytes32 methodologyId, uint32 version, bytes32 factor);

    /**
     * @dev No version of `methodologyId` is in force at time `at`.
     */
    error RuleRegistryNoVersionInForce(bytes32 methodologyId, uint64 at);

    /**
     * @dev Version `version` of `methodologyId` takes effect at `effectiveFrom`, after `at`.
     */
    error RuleRegistryVersionNotYetInForce(bytes32 methodologyId, uint32 version, uint64 effectiveFrom, uint64 at);

    /**
     * @dev Version `version` of `methodologyId` was superseded at `supersededFrom`, not
     * after `at`.
     */
    error RuleRegistryVersionSuperseded(bytes32 methodologyId, uint32 version, uint64 supersededFrom, uint64 at);

    /**
     * @dev A parameter asks for the published default of `factor` but carries a
     * non-zero `value`, which would be ignored.
     */
    error RuleRegistryDefaultWithValue(bytes32 factor, uint256 value);

    /**
     * @dev Emitted when `publisher` publishes version `version` of `methodologyId`,
     * in force from `effectiveFrom`, with parameters hashing to `parametersHash`
     * (see {parametersHashOf}).
     */
    event MethodologyVersionPublished(
        bytes32 indexed methodologyId,
        uint32 indexed version,
        uint64 effectiveFrom,
        bytes32 parametersHash,
        address publisher
    );

    /**
     * @dev Emitted when version `version` of `methodologyId` gets an end: it is superseded
     * by `supersededBy` from `supersededFrom` on.
     */
    event MethodologyVersionSuperseded(
        bytes32 indexed methodologyId,
        uint32 indexed version,
        uint32 indexed supersededBy,
        uint64 supersededFrom
    );

    /**
     * @dev Publishes the next version of `methodologyId` and returns its number.
     *
     * Requirements:
     *
     * - the caller must have the association role.
     * - `methodologyId` must not be zero.
     * - unless it is the methodology's first version, `effectiveFrom` must be later than
     *   the current block time and not earlier than the latest version's `effectiveFrom`.
     * - factor ids must be non-zero and strictly increasing.
     * - each factor's range must satisfy `minValue <= maxValue <= MAX_VALUE` and contain
     *   its `value`.
     *
     * Emits a {MethodologyVersionPublished} event, and a {MethodologyVersionSuperseded}
     * event for the previous version if there is one.
     */
    function publishVersion(
        bytes32 methodologyId,
        uint64 effectiveFrom,
        bytes32 gwpSet,
        string calldata document,
        Factor[] calldata factors
    ) external returns (uint32 version);

    /**
     * @dev The number of versions of `methodologyId` (zero if it is unknown).
     */
    function versionCount(bytes32 methodologyId) external view returns (uint32);

    /**
     * @dev The version of `methodologyId` in force at time `at`.
     *
     * Requirements:
     *
     * - some version must be in force at `at`.
     */
    function versionAt(bytes32 methodologyId, uint64 at) external view returns (uint32);

    /**
     * @dev Whether version `version` of `methodologyId` is pending, in force or
     * superseded at time `at`.
     *
     * Requirements:
     *
     * - the version must exist.
     */
    function statusAt(bytes32 methodologyId, uint32 version, uint64 at) external view returns (VersionStatus);

    /**
     * @dev Version `version` of `methodologyId`.
     *
     * Requirements:
     *
     * - the version must exist.
     */
    function versionOf(bytes32 methodologyId, uint32 version) external view returns (VersionInfo memory);

    /**
     * @dev Factor `factor` of version `version` of `methodologyId`.
     *
     * Requirements:
     *
     * - the version and the factor must exist.
     */
    function factorOf(bytes32 methodologyId, uint32 version, bytes32 factor) external view returns (Factor memory);

    /**
     * @dev The hash a version's parameters are published under:
     * `keccak256(abi.encode(gwpSet, document, factors))`.
     */
    function parametersHashOf(
        bytes32 gwpSet,
        string calldata document,
        Factor[] calldata factors
    ) external pure returns (bytes32);

    /**
     * @dev Reverts unless `rule.version` of `rule.methodologyId` is in force at `rule.at`.
     */
    function requireInForce(RuleRef calldata rule) external view;

    /**
     * @dev `E = AD x EF` for purchased electricity or heat, see {EmissionFormulas}.
     */
    function purchasedEnergyEmissions(uint256 activityData, uint256 emissionFactor) external pure returns (uint256);

    /**
     * @dev `E = sum of FC x NCV x CC x OF x 44/12` over `lines`, see {EmissionFormulas}.
     */
    function fuelCombustionEmissions(EmissionFormulas.FuelLine[] calldata lines) external pure returns (uint256);

    /**
     * @dev `E = sum of amount x EF x GWP` over `lines`, see {EmissionFormulas}.
     */
    function processEmissions(EmissionFormulas.ProcessLine[] calldata lines) external pure returns (uint256);

    /**
     * @dev `baseline - project - leakage`, see {EmissionFormulas}.
     */
    function projectReductions(
        uint256 baseline,
        uint256 projectEmissions,
        uint256 leakage
    ) external pure returns (int256);

    /**
     * @dev {purchasedEnergyEmissions} with the emission factor resolved by `rule`.
     *
     * Requirements:
     *
     * - the rule's version must be in force at `rule.at` (see {requireInForce}).
     * - the factor must exist in that version; a measured value must lie in its range.
     */
    function computePurchasedEnergy(
        RuleRef calldata rule,
        uint256 activityData,
        Param calldata emissionFactor
    ) external view returns (uint256);

    /**
     * @dev {fuelCombustionEmissions} with every parameter resolved by `rule`. Lines are
     * processed in order; each resolves NCV, CC and OF, then computes.
     *
     * Requirements: as for {computePurchasedEnergy}, for every parameter.
     */
    function computeFuelCombustion(RuleRef calldata rule, FuelUse[] calldata uses) external view returns (uint256);

    /**
     * @dev {processEmissions} with every parameter resolved by `rule`. Lines are
     * processed in order; each resolves EF and GWP, then computes.
     *
     * Requirements: as for {computePurchasedEnergy}, for every parameter.
     */
    function computeProcessEmissions(
        RuleRef calldata rule,
        ProcessUse[] calldata uses
    ) external view returns (uint256);
}
