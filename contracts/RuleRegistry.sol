// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EmissionFormulas} from "./EmissionFormulas.sol";
import {IRuleRegistry} from "./IRuleRegistry.sol";

/**
 * @dev Implementation of {IRuleRegistry} with role-based access control.
 *
 * Accounts with {ASSOCIATION_ROLE} publish methodology versions; accounts with
 * `DEFAULT_ADMIN_ROLE` grant and revoke roles, see {AccessControl}. Nothing can change
 * or remove a published version: a correction is a new version.
 *
 * To prevent rewriting which rule applied on a past date (an inventory computed and
 * anchored with the old version would stop verifying), a methodology's second and later
 * versions must take effect after the block that publishes them. Only the first version
 * may be back-dated: before it, no version was in force, so no earlier answer changes.
 * A version that has not taken effect yet can be replaced by publishing another with
 * the same `effectiveFrom`; the replaced version is then never in force.
 *
 * Storage per version: its record (effective time, publication time and publisher,
 * parameters hash, GWP set label, document, factor ids) and one record per factor
 * (value and range packed as `uint128`s, which {EmissionFormulas-MAX_VALUE} allows).
 */
contract RuleRegistry is AccessControl, IRuleRegistry {
    /// @dev Role allowed to call {publishVersion}: the industry association.
    bytes32 public constant ASSOCIATION_ROLE = keccak256("ASSOCIATION_ROLE");

    struct VersionRecord {
        uint64 effectiveFrom;
        address publisher;
        uint64 publishedAt;
        bytes32 parametersHash;
        bytes32 gwpSet;
        string document;
        bytes32[] factorIds;
    }

    struct FactorRecord {
        uint128 value;
        uint128 minValue;
        uint128 maxValue;
        uint16 year;
        bool exists;
        bytes32 unit;
        bytes32 region;
        string source;
    }

    mapping(bytes32 methodologyId => VersionRecord[]) private _versions;
    mapping(bytes32 methodologyId => mapping(uint32 version => mapping(bytes32 factor => FactorRecord)))
        private _factors;

    /**
     * @dev Grants `DEFAULT_ADMIN_ROLE` and {ASSOCIATION_ROLE} to `admin`.
     *
     * Requirements:
     *
     * - `admin` must not be the zero address.
     */
    constructor(address admin) {
        if (admin == address(0)) {
            revert RuleRegistryInvalidAdmin(address(0));
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ASSOCIATION_ROLE, admin);
    }

    // -- publication ------------------------------------------------------------------

    /// @inheritdoc IRuleRegistry
    function publishVersion(
        bytes32 methodologyId,
        uint64 effectiveFrom,
        bytes32 gwpSet,
        string calldata document,
        Factor[] calldata factors
    ) external onlyRole(ASSOCIATION_ROLE) returns (uint32 version) {
        if (methodologyId == bytes32(0)) {
            revert RuleRegistryEmptyMethodologyId();
        }
        VersionRecord[] storage versions = _versions[methodologyId];
        uint256 count = versions.length;
        if (count > 0) {
            uint64 currentTime = SafeCast.toUint64(block.timestamp);
            if (effectiveFrom <= currentTime) {
                revert RuleRegistryRetroactiveVersion(methodologyId, effectiveFrom, currentTime);
            }
            uint64 previous = versions[count - 1].effectiveFrom;
            if (effectiveFrom < previous) {
                revert RuleRegistryEffectiveFromBeforePrevious(methodologyId, previous, effectiveFrom);
            }
        }
        version = SafeCast.toUint32(count + 1);

        VersionRecord storage record = versions.push();
        record.effectiveFrom = effectiveFrom;
        record.publisher = _msgSender();
        record.publishedAt = SafeCast.toUint64(block.timestamp);
        record.gwpSet = gwpSet;
        record.document = document;
        _storeFactors(record, _factors[methodologyId][version], factors);
        bytes32 parametersHash = _parametersHash(gwpSet, document, factors);
        record.parametersHash = parametersHash;

        emit MethodologyVersionPublished(methodologyId, version, effectiveFrom, parametersHash, _msgSender());
        if (version > 1) {
            emit MethodologyVersionSuperseded(methodologyId, version - 1, version, effectiveFrom);
        }
    }

    function _storeFactors(
        VersionRecord storage record,
        mapping(bytes32 => FactorRecord) storage stored,
        Factor[] calldata factors
    ) private {
        bytes32 previousId = bytes32(0);
        for (uint256 i = 0; i < factors.length; ++i) {
            Factor calldata f = factors[i];
            if (f.id <= previousId) {
                revert RuleRegistryFactorIdsNotIncreasing(previousId, f.id);
            }
            previousId = f.id;
            if (f.minValue > f.maxValue || f.maxValue > EmissionFormulas.MAX_VALUE) {
                revert RuleRegistryInvalidFactorBounds(f.id, f.minValue, f.maxValue);
            }
            if (f.value < f.minValue || f.value > f.maxValue) {
                revert RuleRegistryFactorOutOfRange(f.id, f.value, f.minValue, f.maxValue);
            }
            // The three values are at most MAX_VALUE = type(uint128).max, checked above.
            stored[f.id] = FactorRecord({
                value: uint128(f.value),
                minValue: uint128(f.minValue),
                maxValue: uint128(f.maxValue),
                year: f.year,
                exists: true,
                unit: f.unit,
                region: f.region,
                source: f.source
            });
            record.factorIds.push(f.id);
        }
    }

    function _parametersHash(
        bytes32 gwpSet,
        string calldata document,
        Factor[] calldata factors
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(gwpSet, document, factors));
    }

    // -- versions ---------------------------------------------------------------------

    /// @inheritdoc IRuleRegistry
    function versionCount(bytes32 methodologyId) external view returns (uint32) {
        return SafeCast.toUint32(_versions[methodologyId].length);
    }

    /// @inheritdoc IRuleRegistry
    function versionAt(bytes32 methodologyId, uint64 at) external view returns (uint32) {
        VersionRecord[] storage versions = _versions[methodologyId];
        // Effective times never decrease with the version number: find the first
        // version taking effect after `at`; the one before it is in force.
        uint256 low = 0;
        uint256 high = versions.length;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (versions[mid].effectiveFrom > at) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        if (low == 0) {
            revert RuleRegistryNoVersionInForce(methodologyId, at);
        }
        return SafeCast.toUint32(low);
    }

    /// @inheritdoc IRuleRegistry
    function statusAt(bytes32 methodologyId, uint32 version, uint64 at) external view returns (VersionStatus) {
        VersionRecord storage record = _version(methodologyId, version);
        if (at < record.effectiveFrom) {
            return VersionStatus.Pending;
        }
        (bool superseded, uint64 supersededFrom) = _supersededFrom(methodologyId, version);
        if (superseded && at >= supersededFrom) {
            return VersionStatus.Superseded;
        }
        return VersionStatus.InForce;
    }

    /// @inheritdoc IRuleRegistry
    function versionOf(bytes32 methodologyId, uint32 version) external view returns (VersionInfo memory) {
        VersionRecord storage record = _version(methodologyId, version);
        (, uint64 effectiveTo) = _supersededFrom(methodologyId, version);
        return
            VersionInfo({
                version: version,
                effectiveFrom: record.effectiveFrom,
                effectiveTo: effectiveTo,
                publishedAt: record.publishedAt,
                publisher: record.publisher,
                parametersHash: record.parametersHash,
                gwpSet: record.gwpSet,
                document: record.document,
                factorIds: record.factorIds
            });
    }

    /// @inheritdoc IRuleRegistry
    function factorOf(bytes32 methodologyId, uint32 version, bytes32 factor) external view returns (Factor memory) {
        _version(methodologyId, version);
        FactorRecord storage f = _factor(methodologyId, version, factor);
        return
            Factor({
                id: factor,
                value: f.value,
                minValue: f.minValue,
                maxValue: f.maxValue,
                unit: f.unit,
                region: f.region,
                year: f.year,
                source: f.source
            });
    }

    /// @inheritdoc IRuleRegistry
    function parametersHashOf(
        bytes32 gwpSet,
        string calldata document,
        Factor[] calldata factors
    ) external pure returns (bytes32) {
        return _parametersHash(gwpSet, document, factors);
    }

    /// @inheritdoc IRuleRegistry
    function requireInForce(RuleRef calldata rule) external view {
        _requireInForce(rule);
    }

    function _version(bytes32 methodologyId, uint32 version) private view returns (VersionRecord storage) {
        VersionRecord[] storage versions = _versions[methodologyId];
        if (version == 0 || version > versions.length) {
            revert RuleRegistryUnknownVersion(methodologyId, version);
        }
        return versions[version - 1];
    }

    /// @dev Whether `version` (which exists) has a successor, and that successor's start.
    function _supersededFrom(bytes32 methodologyId, uint32 version) private view returns (bool, uint64) {
        VersionRecord[] storage versions = _versions[methodologyId];
        if (version < versions.length) {
            return (true, versions[version].effectiveFrom);
        }
        return (false, 0);
    }

    function _factor(
        bytes32 methodologyId,
        uint32 version,
        bytes32 factor
    ) private view returns (FactorRecord storage f) {
        f = _factors[methodologyId][version][factor];
        if (!f.exists) {
            revert RuleRegistryUnknownFactor(methodologyId, version, factor);
        }
    }

    function _requireInForce(RuleRef calldata rule) private view {
        VersionRecord storage record = _version(rule.methodologyId, rule.version);
        if (rule.at < record.effectiveFrom) {
            revert RuleRegistryVersionNotYetInForce(rule.methodologyId, rule.version, record.effectiveFrom, rule.at);
        }
        (bool superseded, uint64 supersededFrom) = _supersededFrom(rule.methodologyId, rule.version);
        if (superseded && rule.at >= supersededFrom) {
            revert RuleRegistryVersionSuperseded(rule.methodologyId, rule.version, supersededFrom, rule.at);
        }
    }

    /// @dev The value `param` stands for under `rule` (whose version exists).
    function _resolve(RuleRef calldata rule, Param calldata param) private view returns (uint256) {
        FactorRecord storage f = _factor(rule.methodologyId, rule.version, param.factor);
        if (!param.measured) {
            if (param.value != 0) {
                revert RuleRegistryDefaultWithValue(param.factor, param.value);
            }
            return f.value;
        }
        if (param.value < f.minValue || param.value > f.maxValue) {
            revert RuleRegistryFactorOutOfRange(param.factor, param.value, f.minValue, f.maxValue);
        }
        return param.value;
    }

    // -- formulas ---------------------------------------------------------------------

    /// @inheritdoc IRuleRegistry
    function purchasedEnergyEmissions(uint256 activityData, uint256 emissionFactor) external pure returns (uint256) {
        return EmissionFormulas.purchasedEnergy(activityData, emissionFactor);
    }

    /// @inheritdoc IRuleRegistry
    function fuelCombustionEmissions(
        EmissionFormulas.FuelLine[] calldata lines
    ) external pure returns (uint256 total) {
        for (uint256 i = 0; i < lines.length; ++i) {
            total = EmissionFormulas.add(total, EmissionFormulas.fuelLine(lines[i]));
        }
    }

    /// @inheritdoc IRuleRegistry
    function processEmissions(EmissionFormulas.ProcessLine[] calldata lines) external pure returns (uint256 total) {
        for (uint256 i = 0; i < lines.length; ++i) {
            total = EmissionFormulas.add(total, EmissionFormulas.processLine(lines[i]));
        }
    }

    /// @inheritdoc IRuleRegistry
    function projectReductions(
        uint256 baseline,
        uint256 projectEmissions,
        uint256 leakage
    ) external pure returns (int256) {
        return EmissionFormulas.projectReductions(baseline, projectEmissions, leakage);
    }

    /// @inheritdoc IRuleRegistry
    function computePurchasedEnergy(
        RuleRef calldata rule,
        uint256 activityData,
        Param calldata emissionFactor
    ) external view returns (uint256) {
        _requireInForce(rule);
        uint256 ef = _resolve(rule, emissionFactor);
        return EmissionFormulas.purchasedEnergy(activityData, ef);
    }

    /// @inheritdoc IRuleRegistry
    function computeFuelCombustion(RuleRef calldata rule, FuelUse[] calldata uses) external view returns (uint256 total) {
        _requireInForce(rule);
        for (uint256 i = 0; i < uses.length; ++i) {
            FuelUse calldata use = uses[i];
            // One statement per parameter: resolution order is part of the rule.
            uint256 ncv = _resolve(rule, use.netCalorificValue);
            uint256 cc = _resolve(rule, use.carbonContent);
            uint256 oxidation = _resolve(rule, use.oxidationRate);
            EmissionFormulas.FuelLine memory line = EmissionFormulas.FuelLine({
                consumption: use.consumption,
                netCalorificValue: ncv,
                carbonContent: cc,
                oxidationRate: oxidation
            });
            total = EmissionFormulas.add(total, EmissionFormulas.fuelLine(line));
        }
    }

    /// @inheritdoc IRuleRegistry
    function computeProcessEmissions(
        RuleRef calldata rule,
        ProcessUse[] calldata uses
    ) external view returns (uint256 total) {
        _requireInForce(rule);
        for (uint256 i = 0; i < uses.length; ++i) {
            ProcessUse calldata use = uses[i];
            uint256 ef = _resolve(rule, use.emissionFactor);
            uint256 gwp = _resolve(rule, use.gwp);
            EmissionFormulas.ProcessLine memory line = EmissionFormulas.ProcessLine({
                amount: use.amount,
                emissionFactor: ef,
                gwp: gwp
            });
            total = EmissionFormulas.add(total, EmissionFormulas.processLine(line));
        }
    }

    /// @inheritdoc AccessControl
    function supportsInterface(bytes4 interfaceId) public view virtual override returns (bool) {
        return interfaceId == type(IRuleRegistry).interfaceId || super.supportsInterface(interfaceId);
    }
}
