"""Gas the marketplace pays on chain: one ``DataMarket`` transaction per listing, grant
and revocation, however many readings a dataset holds.

On a fresh embedded chain (py-evm), the ledger's account deploys ``DataMarket`` and then
lists ``N`` datasets, grants each one free and once as a sale, and revokes the free
grants. Each figure is a transaction's receipt ``gasUsed`` (21,000 base, calldata,
execution), the median over the ``N`` (they differ only by a few gas of calldata):

* ``market_gas_deploy``;
* ``market_gas_list``: ``listDataset`` (two new storage slots);
* ``market_gas_grant`` and ``market_gas_sale``: ``grantAccess`` free and priced (four
  new slots; a sale also stores its price);
* ``market_gas_revoke``: ``revokeGrant`` (one slot rewritten).

The chain state is checked afterwards (every revoked grant inactive, every sale active):
a benchmark of transactions that did not do their job measures nothing.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks._common import check, emit, log

DATASETS = 50
QUICK_DATASETS = 5


def _deploy_gas(w3: Any, address: str) -> int:
    for number in range(w3.eth.block_number + 1):
        for tx_hash in w3.eth.get_block(number)["transactions"]:
            rc = w3.eth.get_transaction_receipt(tx_hash)
            if rc.get("contractAddress") == address:
                return int(rc["gasUsed"])
    raise AssertionError("the DataMarket deployment transaction was not found")


def run(suites: list[str], quick: bool) -> None:  # noqa: ARG001 - gas is suite-independent
    """Emit the gas of each kind of ``DataMarket`` transaction."""
    import secrets

    from ledger_service._internal.chain import ChainClient
    from ledger_service.market.contract import DataMarketClient

    n = QUICK_DATASETS if quick else DATASETS
    log(f"market_gas: embedded chain, {n} datasets, a grant and a sale each")
    chain = ChainClient.embedded()
    market = DataMarketClient.deploy(chain)
    expires = market.block_time() + 365 * 86400
    gas: dict[str, list[int]] = {"list": [], "grant": [], "sale": [], "revoke": []}
    for i in range(n):
        dataset = f"86.1000.1/ds.bench{i}"
        gas["list"].append(market.list_dataset(dataset, secrets.token_bytes(32), "trading",
                                               "86.1000.1/ent.bench").gas_used)
        free, sold = f"86.1000.1/dg.free{i}", f"86.1000.1/dg.sold{i}"
        gas["grant"].append(market.grant(free, dataset, "86.1000.1/ent.buyer", "benchmarking",
                                         expires, "grant", 0).gas_used)
        gas["sale"].append(market.grant(sold, dataset, "86.1000.1/ent.buyer", "benchmarking",
                                        expires, "sale", 120_000).gas_used)
        gas["revoke"].append(market.revoke(free).gas_used)
    check(all(not market.is_active(f"86.1000.1/dg.free{i}") for i in range(n)),
          "a revoked grant is still active")
    check(all(market.is_active(f"86.1000.1/dg.sold{i}") for i in range(n)),
          "a sale is not active")
    emit("market_gas_deploy", "any", _deploy_gas(chain.w3, market.address), "gas",
         contract="DataMarket", chain="embedded py-evm")
    for name, values in gas.items():
        emit(f"market_gas_{name}", "any", int(statistics.median(values)), "gas",
             transactions=len(values), min=min(values), max=max(values),
             chain="embedded py-evm",
             note="independent of the number of readings in the dataset")
