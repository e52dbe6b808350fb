"""Fixtures for the resolver's tests: real keys, real SQLite files, a real in-process chain.

* ``chain``: one embedded py-evm chain with the ``CarbonAnchor`` contract per session;
  every node anchors under a log id of its own (``<unique prefix>/log.resolver``), so
  nodes never contend for a log key;
* ``node_factory``: fresh resolver nodes (root or secondary) in ``tmp_path``;
* ``root`` / ``trust``: a root node that delegated ``86.1000.1`` to itself, owned by
  ``owner`` (Ed25519, for speed; the SM2 suite has tests of its own), and its pin;
* ``world``: a custody graph on ``root``, from enterprise to attestation.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Test modules import helpers from ``resolver_support`` beside this file; make that work
# under every pytest import mode (``importlib`` does not put test directories on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolver_support import ROOT_URL, P, World, build_world  # noqa: E402

from carbon_protocol.suites import PrivateKey  # noqa: E402
from identifier_resolver.models import TrustRoot  # noqa: E402
from identifier_resolver.resolver import Resolver  # noqa: E402
from identifier_resolver.settings import ResolverSettings  # noqa: E402

_log_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def chain() -> Any:
    from ledger_service._internal.chain import ChainClient

    return ChainClient.embedded()


@pytest.fixture
def owner() -> PrivateKey:
    """The trust root's key, also the owner of ``86.1000.1`` on ``root``."""
    return PrivateKey.generate("intl")


@pytest.fixture
def node_factory(tmp_path: Path, chain: Any) -> Callable[..., Resolver]:
    made = itertools.count()

    def make(*, trust_key: PrivateKey, root: bool = True, anchored: bool = True,
             suite: str = "intl", **settings: Any) -> Resolver:
        n = next(made)
        settings.setdefault("log_prefix", f"{9000 + next(_log_numbers)}.{n}")
        s = ResolverSettings(
            data_dir=tmp_path / f"node{n}", root=root, log_suite=suite,
            trust_root_key=f"{trust_key.suite}:{trust_key.public_key().hex()}",
            chain="none", node_id=f"node{n}", **settings)
        return Resolver.open(s, chain=chain if anchored else None)

    return make


@pytest.fixture
def root(node_factory: Callable[..., Resolver], owner: PrivateKey) -> Resolver:
    node = node_factory(trust_key=owner)
    node.bootstrap(owner, [P], url=ROOT_URL)
    return node


@pytest.fixture
def trust(root: Resolver) -> TrustRoot:
    return root.trust_root(ROOT_URL)


@pytest.fixture
def world(root: Resolver, owner: PrivateKey) -> World:
    return build_world(root, owner)
