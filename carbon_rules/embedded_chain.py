"""The in-process chain (py-evm behind web3's tester provider), safe to share by threads.

``carbon-ledger serve`` on the embedded default shares one in-process chain between its
anchor loop and the request threads that write to it (opening a verification anchors,
a grant or a listing is a transaction, an inventory reads the rule registry). The
eth-tester backend is not thread-safe: two threads sending and mining at once made py-evm
look up blocks it had not finished writing ("BlockNotFound"), and the anchor caught in it
was marked failed. :class:`SerialTesterProvider` runs every request to the backend under
one lock, which a real node's JSON-RPC server does for it.
"""

from __future__ import annotations

import threading
from typing import Any

from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

__all__ = ["SerialTesterProvider", "embedded_web3"]


class SerialTesterProvider(EthereumTesterProvider):
    """An ``EthereumTesterProvider`` whose requests reach py-evm one at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Re-entrant: web3's middleware may ask the provider again inside a request.
        self._serial = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._serial:
            return super().make_request(method, params)


def embedded_web3(ethereum_tester: Any = None) -> Web3:
    """A ``Web3`` over a new in-process chain (or over ``ethereum_tester``)."""
    return Web3(SerialTesterProvider(ethereum_tester))
