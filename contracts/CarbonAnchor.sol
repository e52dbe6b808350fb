// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";
import {ICarbonAnchor} from "./ICarbonAnchor.sol";

/**
 * @dev Implementation of {ICarbonAnchor} with role-based access control.
 *
 * Accounts with {ANCHORER_ROLE} anchor tree heads; accounts with `DEFAULT_ADMIN_ROLE`
 * grant and revoke roles, see {AccessControl}. The contract has no owner-only escape
 * hatch: an anchored tree head can never be changed or removed.
 *
 * Log keys are `keccak256(bytes(logId))` of the UTF-8 log identifier string,
 * e.g. `keccak256("86.1000.1/log.main")`.
 *
 * Each anchor uses two storage slots: the root, and the packed
 * (`uint48` timestamp, `address` submitter, `uint48` block number). Timepoints are kept
 * as `uint48` like {Time}, and returned as `uint64`.
 */
contract CarbonAnchor is AccessControl, ICarbonAnchor {
    /// @dev Role allowed to call {anchor}.
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    struct AnchorRecord {
        bytes32 root;
        uint48 timestamp;
        address submitter;
        uint48 blockNumber;
    }

    mapping(bytes32 logKey => mapping(uint64 treeSize => AnchorRecord)) private _anchors;
    mapping(bytes32 logKey => uint64) private _latest;

    /**
     * @dev Grants `DEFAULT_ADMIN_ROLE` and {ANCHORER_ROLE} to `admin`.
     *
     * Requirements:
     *
     * - `admin` must not be the zero address.
     */
    constructor(address admin) {
        if (admin == address(0)) {
            revert CarbonAnchorInvalidAdmin(address(0));
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHORER_ROLE, admin);
    }

    /// @inheritdoc ICarbonAnchor
    function anchor(bytes32 logKey, uint64 treeSize, bytes32 root) external onlyRole(ANCHORER_ROLE) {
        if (root == bytes32(0)) {
            revert CarbonAnchorEmptyRoot();
        }
        if (treeSize == 0) {
            revert CarbonAnchorZeroTreeSize();
        }
        uint64 latest = _latest[logKey];
        if (treeSize <= latest) {
            revert CarbonAnchorTreeSizeNotIncreasing(logKey, latest, treeSize);
        }

        uint48 timestamp = Time.timestamp();
        _latest[logKey] = treeSize;
        _anchors[logKey][treeSize] = AnchorRecord({
            root: root,
            timestamp: timestamp,
            submitter: _msgSender(),
            blockNumber: Time.blockNumber()
        });
        emit TreeHeadAnchored(logKey, treeSize, root, timestamp, _msgSender());
    }

    /// @inheritdoc ICarbonAnchor
    function anchorOf(
        bytes32 logKey,
        uint64 treeSize
    ) external view returns (bytes32 root, uint64 timestamp, address submitter, uint64 blockNumber) {
        AnchorRecord storage record = _anchors[logKey][treeSize];
        return (record.root, record.timestamp, record.submitter, record.blockNumber);
    }

    /// @inheritdoc ICarbonAnchor
    function latestTreeSize(bytes32 logKey) external view returns (uint64) {
        return _latest[logKey];
    }

    /// @inheritdoc AccessControl
    function supportsInterface(bytes4 interfaceId) public view virtual override returns (bool) {
        return interfaceId == type(ICarbonAnchor).interfaceId || super.supportsInterface(interfaceId);
    }
}
