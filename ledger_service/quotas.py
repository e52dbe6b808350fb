"""The ledger's own ``QuotaRegistry``: where the regulator's quotas live by default.

A ledger with rules has one beside its ``RuleRegistry``: on the embedded chain
:func:`deploy_embedded` puts it there each time the in-memory chain is rebuilt (the
association key deploys it, at the same address every time, and grants
``REGULATOR_ROLE`` to the development regulator whose key sits in ``data_dir``); on a
real chain ``carbon-ledger devchain --rules`` deploys it and the deployment file names
it. Quota routes, reports and the demo use :func:`default_registry` when the caller
names none, so nobody has to copy an address around.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from eth_account import Account
from web3 import Web3
from web3.types import Wei

from carbon_rules.quotas_client import QuotaRegistryClient

from .errors import LedgerError

__all__ = ["NoQuotaRegistryError", "REGULATOR_KEY_FILE", "default_registry", "deploy_embedded",
           "regulator_key"]

REGULATOR_KEY_FILE = "embedded_regulator_key.hex"
"""The embedded chain's development regulator key, in the ledger's ``data_dir`` (0600)."""
_FUNDING_WEI = 10**20


class NoQuotaRegistryError(LedgerError):
    """No registry was named and this ledger's chain has none of its own."""

    code = "no_quota_registry"
    http_status = 422


def regulator_key(data_dir: Path) -> str:
    """The embedded chain's development regulator key (made on first use)."""
    from .ledger import _write_private

    path = Path(data_dir) / REGULATOR_KEY_FILE
    if not path.exists():
        _write_private(path, secrets.token_hex(32).encode())  # or lost a race: read it
    return path.read_text().strip()


def deploy_embedded(w3: Web3, deployer_key: str, data_dir: Path) -> str:
    """Deploy a ``QuotaRegistry`` on the in-process chain ``w3`` as ``deployer_key``
    (admin) and grant ``REGULATOR_ROLE`` to :func:`regulator_key`'s account, funded for
    gas. Returns the registry's address."""
    address = QuotaRegistryClient.deploy(w3, deployer_key)
    regulator = Account.from_key(regulator_key(data_dir)).address
    QuotaRegistryClient(w3, address, deployer_key).grant_regulator(regulator)
    if w3.eth.get_balance(regulator) == 0:
        tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": regulator,
                                      "value": Wei(_FUNDING_WEI)})
        w3.eth.wait_for_transaction_receipt(tx)
    return address


def default_registry(given: str | None, own: str | None) -> str:
    """``given`` if the caller named a registry, else the ledger's own ``own``."""
    if given is not None:
        return given
    if own is None:
        raise NoQuotaRegistryError(
            "name a QuotaRegistry: this ledger's chain has none of its own (open the "
            "embedded ledger with rules, or use a deployment file written by "
            "`carbon-ledger devchain --rules`)")
    return own
