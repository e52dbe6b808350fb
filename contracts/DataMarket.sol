// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/**
 * @dev The carbon data market (碳数据市场): which datasets are in the data window
 * (数据橱窗), who was granted or sold access to which, for what purpose, until when,
 * and which grants were revoked.
 *
 * Accounts with {OPERATOR_ROLE} (the ledger's chain account) record listings, grants
 * and revocations on behalf of the data owners who asked the ledger for them; accounts
 * with `DEFAULT_ADMIN_ROLE` grant and revoke roles, see {AccessControl}.
 *
 * Nothing personal or commercial is stored in clear: a dataset is named by
 * `keccak256(bytes(datasetId))`, an enterprise (owner or buyer) by
 * `keccak256(bytes(enterpriseId))`, a grant by `keccak256(bytes(grantId))` and a purpose
 * by `keccak256(bytes(purpose))`. The content hash is the Merkle root of the readings the
 * dataset covers (see docs/marketplace.md), so a buyer can check that a delivery holds
 * exactly what was listed.
 *
 * Nothing is overwritten or deleted: a listing is final, a grant can only be revoked
 * (once), and {isActive} is what a delivery checks.
 */
contract DataMarket is AccessControl {
    /// @dev Role allowed to list datasets, grant access and revoke grants.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @dev The business scene a dataset serves (the data window's shelves).
    enum Scene {
        Accounting,
        Verification,
        Trading
    }

    /// @dev A free grant (共享) or a sale (出售) at a price.
    enum GrantKind {
        Grant,
        Sale
    }

    /// @dev A dataset in the window: what it holds, whose it is, when it was listed.
    struct Listing {
        bytes32 contentHash;
        bytes32 ownerKey;
        uint64 listedAt;
        Scene scene;
    }

    /**
     * @dev One grant of access: to which dataset, for which buyer and purpose, until
     * when, on which terms; `revokedAt` is zero while it stands.
     */
    struct Grant {
        bytes32 datasetKey;
        bytes32 buyerKey;
        bytes32 purposeHash;
        uint64 grantedAt;
        uint64 expiresAt;
        uint64 revokedAt;
        GrantKind kind;
        uint128 price;
    }

    mapping(bytes32 datasetKey => Listing) private _listings;
    mapping(bytes32 grantKey => Grant) private _grants;

    /// @dev The admin given to the constructor is the zero address.
    error DataMarketInvalidAdmin(address admin);

    /// @dev A dataset, owner, buyer, grant or purpose key, or a content hash, is zero.
    error DataMarketZeroValue(string field);

    /// @dev {listDataset} of a dataset key that is already listed.
    error DataMarketAlreadyListed(bytes32 datasetKey);

    /// @dev {grantAccess} on a dataset key that was never listed.
    error DataMarketUnknownDataset(bytes32 datasetKey);

    /// @dev {grantAccess} with a grant key that is already used.
    error DataMarketAlreadyGranted(bytes32 grantKey);

    /// @dev {revokeGrant} or a read of a grant key that was never granted.
    error DataMarketUnknownGrant(bytes32 grantKey);

    /// @dev {grantAccess} with an expiry not after the current block's time.
    error DataMarketExpiryNotInFuture(uint64 expiresAt, uint64 blockTime);

    /// @dev A free grant with a price, or a sale without one.
    error DataMarketInvalidPrice(GrantKind kind, uint128 price);

    /// @dev {revokeGrant} of a grant that is already revoked.
    error DataMarketAlreadyRevoked(bytes32 grantKey, uint64 revokedAt);

    /**
     * @dev Emitted when `operator` lists dataset `datasetKey` of `ownerKey` in the window.
     */
    event DatasetListed(
        bytes32 indexed datasetKey,
        bytes32 indexed ownerKey,
        bytes32 contentHash,
        Scene scene,
        address indexed operator
    );

    /**
     * @dev Emitted when `operator` grants (or sells) `buyerKey` access to `datasetKey`
     * for `purposeHash` until `expiresAt`.
     */
    event AccessGranted(
        bytes32 indexed grantKey,
        bytes32 indexed datasetKey,
        bytes32 indexed buyerKey,
        bytes32 purposeHash,
        uint64 expiresAt,
        GrantKind kind,
        uint128 price,
        address operator
    );

    /**
     * @dev Emitted when `operator` revokes grant `grantKey` on `datasetKey`.
     */
    event GrantRevoked(bytes32 indexed grantKey, bytes32 indexed datasetKey, address indexed operator);

    /**
     * @dev Grants `DEFAULT_ADMIN_ROLE` and {OPERATOR_ROLE} to `admin`.
     *
     * Requirements:
     *
     * - `admin` must not be the zero address.
     */
    constructor(address admin) {
        if (admin == address(0)) {
            revert DataMarketInvalidAdmin(address(0));
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /**
     * @dev Lists dataset `datasetKey` of owner `ownerKey`, holding `contentHash`, under
     * `scene`.
     *
     * Emits a {DatasetListed} event.
     *
     * Requirements:
     *
     * - the caller must have {OPERATOR_ROLE};
     * - no key and not the content hash may be zero;
     * - `datasetKey` must not be listed yet.
     */
    function listDataset(bytes32 datasetKey, bytes32 contentHash, Scene scene, bytes32 ownerKey)
        external
        onlyRole(OPERATOR_ROLE)
    {
        _nonZero(datasetKey, "datasetKey");
        _nonZero(contentHash, "contentHash");
        _nonZero(ownerKey, "ownerKey");
        if (_listings[datasetKey].listedAt != 0) {
            revert DataMarketAlreadyListed(datasetKey);
        }
        _listings[datasetKey] = Listing({
            contentHash: contentHash,
            ownerKey: ownerKey,
            listedAt: uint64(block.timestamp),
            scene: scene
        });
        emit DatasetListed(datasetKey, ownerKey, contentHash, scene, _msgSender());
    }

    /**
     * @dev Grants `buyerKey` access to listed dataset `datasetKey` for `purposeHash`
     * until `expiresAt` (Unix seconds), free (`kind` Grant, `price` 0) or as a sale
     * (`kind` Sale, `price` > 0, in the smallest unit of the settlement currency).
     *
     * Emits an {AccessGranted} event.
     *
     * Requirements:
     *
     * - the caller must have {OPERATOR_ROLE};
     * - no key may be zero;
     * - `datasetKey` must be listed and `grantKey` unused;
     * - `expiresAt` must be after the current block's time.
     */
    function grantAccess(
        bytes32 grantKey,
        bytes32 datasetKey,
        bytes32 buyerKey,
        bytes32 purposeHash,
        uint64 expiresAt,
        GrantKind kind,
        uint128 price
    ) external onlyRole(OPERATOR_ROLE) {
        _nonZero(grantKey, "grantKey");
        _nonZero(buyerKey, "buyerKey");
        _nonZero(purposeHash, "purposeHash");
        if (_listings[datasetKey].listedAt == 0) {
            revert DataMarketUnknownDataset(datasetKey);
        }
        if (_grants[grantKey].grantedAt != 0) {
            revert DataMarketAlreadyGranted(grantKey);
        }
        if (expiresAt <= block.timestamp) {
            revert DataMarketExpiryNotInFuture(expiresAt, uint64(block.timestamp));
        }
        if ((kind == GrantKind.Grant) != (price == 0)) {
            revert DataMarketInvalidPrice(kind, price);
        }
        _grants[grantKey] = Grant({
            datasetKey: datasetKey,
            buyerKey: buyerKey,
            purposeHash: purposeHash,
            grantedAt: uint64(block.timestamp),
            expiresAt: expiresAt,
            revokedAt: 0,
            kind: kind,
            price: price
        });
        emit AccessGranted(grantKey, datasetKey, buyerKey, purposeHash, expiresAt, kind, price, _msgSender());
    }

    /**
     * @dev Revokes grant `grantKey`: from this block on {isActive} is false for it.
     *
     * Emits a {GrantRevoked} event.
     *
     * Requirements:
     *
     * - the caller must have {OPERATOR_ROLE};
     * - the grant must exist and not be revoked yet (an expired grant may be revoked).
     */
    function revokeGrant(bytes32 grantKey) external onlyRole(OPERATOR_ROLE) {
        Grant storage grant = _grants[grantKey];
        if (grant.grantedAt == 0) {
            revert DataMarketUnknownGrant(grantKey);
        }
        if (grant.revokedAt != 0) {
            revert DataMarketAlreadyRevoked(grantKey, grant.revokedAt);
        }
        grant.revokedAt = uint64(block.timestamp);
        emit GrantRevoked(grantKey, grant.datasetKey, _msgSender());
    }

    /**
     * @dev Whether grant `grantKey` exists, is not revoked, and has not expired at the
     * current block's time.
     */
    function isActive(bytes32 grantKey) external view returns (bool) {
        Grant storage grant = _grants[grantKey];
        return grant.grantedAt != 0 && grant.revokedAt == 0 && block.timestamp < grant.expiresAt;
    }

    /// @dev The listing of `datasetKey`. Reverts with {DataMarketUnknownDataset} if none.
    function listingOf(bytes32 datasetKey) external view returns (Listing memory) {
        Listing memory listing = _listings[datasetKey];
        if (listing.listedAt == 0) {
            revert DataMarketUnknownDataset(datasetKey);
        }
        return listing;
    }

    /// @dev The grant `grantKey`. Reverts with {DataMarketUnknownGrant} if none.
    function grantOf(bytes32 grantKey) external view returns (Grant memory) {
        Grant memory grant = _grants[grantKey];
        if (grant.grantedAt == 0) {
            revert DataMarketUnknownGrant(grantKey);
        }
        return grant;
    }

    function _nonZero(bytes32 value, string memory field) private pure {
        if (value == bytes32(0)) {
            revert DataMarketZeroValue(field);
        }
    }
}
