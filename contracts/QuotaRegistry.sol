// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/**
 * @dev Annual emission quotas (配额) that a regulator allocates to enterprises.
 *
 * Accounts with {REGULATOR_ROLE} issue an enterprise's quota for a compliance year and
 * adjust it later (a supplementary allocation, a correction after verification);
 * accounts with `DEFAULT_ADMIN_ROLE` grant and revoke roles, see {AccessControl}.
 *
 * Enterprises are named by their carbon-ledger identifier (e.g. `86.1000.1/ent.acme`)
 * and stored under `keccak256(bytes(enterprise))`, so identifiers of any length fit.
 * Allocations are tCO2e in 18-decimal fixed point, like every quantity of
 * {EmissionFormulas}; `uint128` bounds them the same way.
 *
 * Nothing is overwritten: every issue and adjustment is a new revision kept on chain
 * with its allocation document, so whoever reconciles against the quota can show which
 * allocation was in force and on what authority. Revision 1 is the issue; the latest
 * revision is the quota.
 */
contract QuotaRegistry is AccessControl {
    /// @dev Role allowed to issue and adjust quotas: the competent authority (生态环境主管部门).
    bytes32 public constant REGULATOR_ROLE = keccak256("REGULATOR_ROLE");

    /// @dev The highest compliance year accepted (a typo guard, not a policy).
    uint16 public constant MAX_YEAR = 9999;

    /**
     * @dev One revision of a quota: the allocation (tCO2e, fixed point), the regulator
     * who set it, when, and the allocation document it rests on.
     */
    struct Revision {
        uint128 allocation;
        uint64 setAt;
        address regulator;
        string document;
    }

    mapping(bytes32 enterpriseKey => mapping(uint16 year => Revision[])) private _revisions;

    /// @dev The admin given to the constructor is the zero address.
    error QuotaRegistryInvalidAdmin(address admin);

    /// @dev The enterprise identifier is empty.
    error QuotaRegistryEmptyEnterprise();

    /// @dev The compliance year is zero or above {MAX_YEAR}.
    error QuotaRegistryInvalidYear(uint16 year);

    /// @dev The allocation document reference is empty.
    error QuotaRegistryEmptyDocument();

    /// @dev {issueQuota} for an enterprise and year that already have a quota.
    error QuotaRegistryAlreadyIssued(bytes32 enterpriseKey, uint16 year);

    /// @dev {adjustQuota} or a read of an enterprise and year without a quota.
    error QuotaRegistryNotIssued(bytes32 enterpriseKey, uint16 year);

    /// @dev A read of a revision that does not exist.
    error QuotaRegistryUnknownRevision(bytes32 enterpriseKey, uint16 year, uint32 revision);

    /**
     * @dev Emitted when `regulator` issues `enterprise`'s first quota for `year`.
     */
    event QuotaIssued(
        bytes32 indexed enterpriseKey,
        uint16 indexed year,
        string enterprise,
        uint128 allocation,
        string document,
        address indexed regulator
    );

    /**
     * @dev Emitted when `regulator` replaces `enterprise`'s quota for `year`: revision
     * `revision` sets `allocation` in place of `previous`.
     */
    event QuotaAdjusted(
        bytes32 indexed enterpriseKey,
        uint16 indexed year,
        uint32 revision,
        uint128 previous,
        uint128 allocation,
        string document,
        address indexed regulator
    );

    /**
     * @dev Grants `DEFAULT_ADMIN_ROLE` and {REGULATOR_ROLE} to `admin`.
     *
     * Requirements:
     *
     * - `admin` must not be the zero address.
     */
    constructor(address admin) {
        if (admin == address(0)) {
            revert QuotaRegistryInvalidAdmin(address(0));
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGULATOR_ROLE, admin);
    }

    /**
     * @dev Issues `enterprise`'s quota for compliance `year`: `allocation` tCO2e (fixed
     * point) on the authority of `document` (the allocation notice's number or URI).
     *
     * Emits a {QuotaIssued} event.
     *
     * Requirements:
     *
     * - the caller must have {REGULATOR_ROLE};
     * - `enterprise` and `document` must not be empty, `year` must be in `1..MAX_YEAR`;
     * - no quota may exist yet for `enterprise` and `year` (use {adjustQuota}).
     */
    function issueQuota(string calldata enterprise, uint16 year, uint128 allocation, string calldata document)
        external
        onlyRole(REGULATOR_ROLE)
    {
        bytes32 key = _checkedKey(enterprise, year, document);
        Revision[] storage revisions = _revisions[key][year];
        if (revisions.length != 0) {
            revert QuotaRegistryAlreadyIssued(key, year);
        }
        _push(revisions, allocation, document);
        emit QuotaIssued(key, year, enterprise, allocation, document, _msgSender());
    }

    /**
     * @dev Replaces `enterprise`'s quota for `year` with `allocation`, on the authority
     * of `document`. The earlier revisions stay readable through {revisionOf}.
     *
     * Emits a {QuotaAdjusted} event.
     *
     * Requirements:
     *
     * - the caller must have {REGULATOR_ROLE};
     * - `enterprise` and `document` must not be empty, `year` must be in `1..MAX_YEAR`;
     * - a quota must have been issued for `enterprise` and `year`.
     */
    function adjustQuota(string calldata enterprise, uint16 year, uint128 allocation, string calldata document)
        external
        onlyRole(REGULATOR_ROLE)
        returns (uint32 revision)
    {
        bytes32 key = _checkedKey(enterprise, year, document);
        Revision[] storage revisions = _revisions[key][year];
        uint256 count = revisions.length;
        if (count == 0) {
            revert QuotaRegistryNotIssued(key, year);
        }
        uint128 previous = revisions[count - 1].allocation;
        _push(revisions, allocation, document);
        revision = SafeCast.toUint32(count + 1);
        emit QuotaAdjusted(key, year, revision, previous, allocation, document, _msgSender());
    }

    /**
     * @dev The quota in force for `enterprise` and `year` (its latest revision) and that
     * revision's number. Reverts with {QuotaRegistryNotIssued} if there is none.
     */
    function quotaOf(string calldata enterprise, uint16 year)
        external
        view
        returns (uint32 revision, Revision memory quota)
    {
        bytes32 key = enterpriseKey(enterprise);
        Revision[] storage revisions = _revisions[key][year];
        uint256 count = revisions.length;
        if (count == 0) {
            revert QuotaRegistryNotIssued(key, year);
        }
        return (SafeCast.toUint32(count), revisions[count - 1]);
    }

    /// @dev How many revisions `enterprise`'s quota for `year` has (0: never issued).
    function revisionCount(string calldata enterprise, uint16 year) external view returns (uint32) {
        return SafeCast.toUint32(_revisions[enterpriseKey(enterprise)][year].length);
    }

    /**
     * @dev Revision `revision` (1-based) of `enterprise`'s quota for `year`. Reverts with
     * {QuotaRegistryUnknownRevision} if it does not exist.
     */
    function revisionOf(string calldata enterprise, uint16 year, uint32 revision)
        external
        view
        returns (Revision memory)
    {
        bytes32 key = enterpriseKey(enterprise);
        Revision[] storage revisions = _revisions[key][year];
        if (revision == 0 || revision > revisions.length) {
            revert QuotaRegistryUnknownRevision(key, year, revision);
        }
        return revisions[revision - 1];
    }

    /// @dev The storage key of an enterprise identifier: `keccak256(bytes(enterprise))`.
    function enterpriseKey(string calldata enterprise) public pure returns (bytes32) {
        return keccak256(bytes(enterprise));
    }

    function _checkedKey(string calldata enterprise, uint16 year, string calldata document)
        private
        pure
        returns (bytes32)
    {
        if (bytes(enterprise).length == 0) {
            revert QuotaRegistryEmptyEnterprise();
        }
        if (year == 0 || year > MAX_YEAR) {
            revert QuotaRegistryInvalidYear(year);
        }
        if (bytes(document).length == 0) {
            revert QuotaRegistryEmptyDocument();
        }
        return enterpriseKey(enterprise);
    }

    function _push(Revision[] storage revisions, uint128 allocation, string calldata document) private {
        Revision storage r = revisions.push();
        r.allocation = allocation;
        r.setAt = SafeCast.toUint64(block.timestamp);
        r.regulator = _msgSender();
        r.document = document;
    }
}
