// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/**
 * @dev Interface of the carbon-ledger anchor: an append-only, on-chain record of the
 * Merkle tree heads (RFC 6962 roots) of transparency logs of signed carbon meter readings.
 *
 * A log is named on chain by its `logKey`, defined by the project as
 * `keccak256(bytes(logId))` over the UTF-8 bytes of the log identifier string,
 * e.g. `keccak256("86.1000.1/log.main")`. For each log, tree heads are anchored with
 * strictly increasing tree sizes, so a verifier holding a root for size `n` can check
 * it against the anchored root and timestamp for exactly that `(logKey, n)`.
 */
interface ICarbonAnchor {
    /**
     * @dev The root to anchor is `bytes32(0)`, the value reserved for "no anchor".
     */
    error CarbonAnchorEmptyRoot();

    /**
     * @dev The tree size to anchor is zero. An empty log has nothing to anchor.
     */
    error CarbonAnchorZeroTreeSize();

    /**
     * @dev The tree size `got` is not greater than the `latest` size already anchored
     * for `logKey`. Tree heads of one log are anchored in strictly increasing size order.
     */
    error CarbonAnchorTreeSizeNotIncreasing(bytes32 logKey, uint64 latest, uint64 got);

    /**
     * @dev The `admin` given to the constructor cannot hold the admin role (zero address).
     */
    error CarbonAnchorInvalidAdmin(address admin);

    /**
     * @dev Emitted when the tree head (`treeSize`, `root`) of log `logKey` is anchored by
     * `submitter` in a block with timestamp `timestamp`.
     */
    event TreeHeadAnchored(
        bytes32 indexed logKey,
        uint64 indexed treeSize,
        bytes32 indexed root,
        uint64 timestamp,
        address submitter
    );

    /**
     * @dev Anchors the tree head (`treeSize`, `root`) of log `logKey`.
     *
     * Requirements:
     *
     * - the caller must have the anchorer role.
     * - `root` must not be zero.
     * - `treeSize` must not be zero.
     * - `treeSize` must be greater than {latestTreeSize} of `logKey`.
     *
     * Emits a {TreeHeadAnchored} event.
     */
    function anchor(bytes32 logKey, uint64 treeSize, bytes32 root) external;

    /**
     * @dev Returns the anchor recorded for (`logKey`, `treeSize`): its `root`, the block
     * `timestamp` and `blockNumber` it was anchored in, and its `submitter`.
     * All four are zero if no tree head of that size was anchored for that log.
     */
    function anchorOf(
        bytes32 logKey,
        uint64 treeSize
    ) external view returns (bytes32 root, uint64 timestamp, address submitter, uint64 blockNumber);

    /**
     * @dev Returns the largest tree size anchored for `logKey`, or zero if none.
     */
    function latestTreeSize(bytes32 logKey) external view returns (uint64);
}
