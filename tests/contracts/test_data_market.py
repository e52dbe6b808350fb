"""``DataMarket`` on the in-process EVM: who may write, every custom error, every event,
and ``isActive`` across expiry and revocation (the chain's clock moved by time travel)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from ledger_service._internal.chain import ChainClient
from ledger_service.market.contract import OPERATOR_ROLE, DataMarketClient, chain_key
from ledger_service.market.errors import MarketContractError

OWNER = "86.1000.1/ent.owner"
BUYER = "86.1000.1/ent.buyer"
CONTENT = bytes.fromhex("11" * 32)


@pytest.fixture(scope="module")
def market() -> DataMarketClient:
    return DataMarketClient.deploy(ChainClient.embedded())


def _error(exc: pytest.ExceptionInfo[MarketContractError]) -> tuple[Any, Any]:
    return exc.value.details["error"], exc.value.details["args"]


def _listed(market: DataMarketClient, name: str) -> str:
    dataset = f"86.1000.1/ds.{name}"
    market.list_dataset(dataset, CONTENT, "accounting", OWNER)
    return dataset


def _later(market: DataMarketClient, seconds: int) -> int:
    return market.block_time() + seconds


def test_listing_emits_and_reads_back(market: DataMarketClient) -> None:
    dataset = "86.1000.1/ds.list-1"
    tx = market.list_dataset(dataset, CONTENT, "verification", OWNER)
    (event,) = tx.events
    assert event.name == "DatasetListed"
    assert event.args == {"datasetKey": "0x" + chain_key(dataset).hex(),
                          "ownerKey": "0x" + chain_key(OWNER).hex(),
                          "contentHash": "0x" + CONTENT.hex(), "scene": 1,
                          "operator": market.chain.account}
    listing = market.listing(dataset)
    assert (listing.content_hash, listing.owner_key, listing.scene) == (
        CONTENT.hex(), chain_key(OWNER).hex(), "verification")
    assert listing.listed_at == market.chain.block(tx.block_number)[1]


def test_listing_twice_and_zero_values_are_refused(market: DataMarketClient) -> None:
    dataset = _listed(market, "twice")
    with pytest.raises(MarketContractError) as err:
        market.list_dataset(dataset, CONTENT, "accounting", OWNER)
    assert _error(err) == ("DataMarketAlreadyListed",
                           {"datasetKey": "0x" + chain_key(dataset).hex()})
    with pytest.raises(MarketContractError) as err:
        market.list_dataset("86.1000.1/ds.zero", bytes(32), "accounting", OWNER)
    assert _error(err) == ("DataMarketZeroValue", {"field": "contentHash"})
    with pytest.raises(MarketContractError) as err:
        market.listing("86.1000.1/ds.never")
    assert _error(err)[0] == "DataMarketUnknownDataset"


def test_grant_emits_is_active_and_refuses_a_second_grant(market: DataMarketClient) -> None:
    dataset = _listed(market, "grant")
    expires = _later(market, 3600)
    tx = market.grant("86.1000.1/dg.1", dataset, BUYER, "benchmarking", expires, "sale", 5000)
    (event,) = tx.events
    assert event.name == "AccessGranted"
    assert event.args["grantKey"] == "0x" + chain_key("86.1000.1/dg.1").hex()
    assert event.args["buyerKey"] == "0x" + chain_key(BUYER).hex()
    assert event.args["purposeHash"] == "0x" + chain_key("benchmarking").hex()
    assert (event.args["expiresAt"], event.args["kind"], event.args["price"]) == (expires, 1,
                                                                                  5000)
    assert market.is_active("86.1000.1/dg.1")
    grant = market.grant_of("86.1000.1/dg.1")
    assert (grant.kind, grant.price, grant.expires_at, grant.revoked_at) == ("sale", 5000,
                                                                             expires, 0)
    with pytest.raises(MarketContractError) as err:
        market.grant("86.1000.1/dg.1", dataset, BUYER, "other", expires, "grant", 0)
    assert _error(err) == ("DataMarketAlreadyGranted",
                           {"grantKey": "0x" + chain_key("86.1000.1/dg.1").hex()})
    assert market.grant_of("86.1000.1/dg.1").purpose_hash == chain_key("benchmarking").hex()


def test_grant_refusals(market: DataMarketClient) -> None:
    dataset = _listed(market, "refusals")
    expires = _later(market, 3600)
    with pytest.raises(MarketContractError) as err:
        market.grant("86.1000.1/dg.r1", "86.1000.1/ds.unlisted", BUYER, "p", expires, "grant",
                     0)
    assert _error(err) == ("DataMarketUnknownDataset",
                           {"datasetKey": "0x" + chain_key("86.1000.1/ds.unlisted").hex()})
    now = market.block_time()
    with pytest.raises(MarketContractError) as err:
        market.grant("86.1000.1/dg.r2", dataset, BUYER, "p", now - 1, "grant", 0)
    assert _error(err)[0] == "DataMarketExpiryNotInFuture"
    assert _error(err)[1]["expiresAt"] == now - 1
    with pytest.raises(MarketContractError) as err:
        market.grant("86.1000.1/dg.r3", dataset, BUYER, "p", expires, "grant", 10)
    assert _error(err) == ("DataMarketInvalidPrice", {"kind": 0, "price": 10})
    with pytest.raises(MarketContractError) as err:
        market.grant("86.1000.1/dg.r4", dataset, BUYER, "p", expires, "sale", 0)
    assert _error(err) == ("DataMarketInvalidPrice", {"kind": 1, "price": 0})
    assert not market.is_active("86.1000.1/dg.r2")
    with pytest.raises(MarketContractError) as err:
        market.grant_of("86.1000.1/dg.r2")
    assert _error(err)[0] == "DataMarketUnknownGrant"


def test_revoke_emits_and_deactivates(market: DataMarketClient) -> None:
    dataset = _listed(market, "revoke")
    market.grant("86.1000.1/dg.v1", dataset, BUYER, "p", _later(market, 3600), "grant", 0)
    tx = market.revoke("86.1000.1/dg.v1")
    (event,) = tx.events
    assert event.name == "GrantRevoked"
    assert event.args == {"grantKey": "0x" + chain_key("86.1000.1/dg.v1").hex(),
                          "datasetKey": "0x" + chain_key(dataset).hex(),
                          "operator": market.chain.account}
    assert not market.is_active("86.1000.1/dg.v1")
    revoked_at = market.grant_of("86.1000.1/dg.v1").revoked_at
    assert revoked_at == market.chain.block(tx.block_number)[1]
    with pytest.raises(MarketContractError) as err:
        market.revoke("86.1000.1/dg.v1")
    assert _error(err) == ("DataMarketAlreadyRevoked",
                           {"grantKey": "0x" + chain_key("86.1000.1/dg.v1").hex(),
                            "revokedAt": revoked_at})
    with pytest.raises(MarketContractError) as err:
        market.revoke("86.1000.1/dg.never")
    assert _error(err)[0] == "DataMarketUnknownGrant"


def test_a_grant_expires_with_the_chain_clock(market: DataMarketClient) -> None:
    dataset = _listed(market, "expiry")
    expires = _later(market, 100)
    market.grant("86.1000.1/dg.e1", dataset, BUYER, "p", expires, "grant", 0)
    assert market.is_active("86.1000.1/dg.e1")
    market.chain.w3.provider.ethereum_tester.time_travel(expires)  # type: ignore[attr-defined]
    market.chain.w3.provider.ethereum_tester.mine_blocks()  # type: ignore[attr-defined]
    assert market.block_time() >= expires
    assert not market.is_active("86.1000.1/dg.e1")
    market.revoke("86.1000.1/dg.e1")  # an expired grant may still be revoked


def test_only_operators_write(market: DataMarketClient) -> None:
    outsider = Account.create()
    w3 = market.chain.w3
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": outsider.address,
                                  "value": 10**20})  # type: ignore[typeddict-item]
    w3.eth.wait_for_transaction_receipt(tx)
    other = DataMarketClient(market.chain.with_signer(outsider.key), market.address)
    assert not other.has_role(OPERATOR_ROLE, outsider.address)
    with pytest.raises(MarketContractError) as err:
        other.list_dataset("86.1000.1/ds.outsider", CONTENT, "trading", OWNER)
    assert _error(err)[0] == "AccessControlUnauthorizedAccount"
    market.grant_operator(outsider.address)
    assert other.has_role(OPERATOR_ROLE, outsider.address)
    (event,) = other.list_dataset("86.1000.1/ds.outsider", CONTENT, "trading", OWNER).events
    assert event.args["operator"] == outsider.address


def test_the_zero_admin_is_refused(market: DataMarketClient) -> None:
    with pytest.raises(MarketContractError) as err:
        DataMarketClient.deploy(market.chain, admin="0x" + "00" * 20)
    assert _error(err) == ("DataMarketInvalidAdmin", {"admin": "0x" + "00" * 20})
