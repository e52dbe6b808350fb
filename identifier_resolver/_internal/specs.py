"""What the bridge means to register, before it is signed: one :class:`Spec` per record.

Shared by :mod:`identifier_resolver.bridge` (registry, log windows) and
:mod:`identifier_resolver.statements` (reports, attestations, grants), so both build
their records the same way and the bridge signs, compares and batches them in one place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from carbon_protocol.suites import SuiteName

from ..models import HashRef, Link, RecordKey

__all__ = ["Spec", "suffixed", "hash_alg"]


@dataclass
class Spec:
    """The content of a record the ledger's facts call for (unsigned, unversioned)."""

    id: str
    type: str
    owner: str
    keys: list[RecordKey] = field(default_factory=list)
    hash: HashRef | None = None
    links: list[Link] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def suffixed(prefix: str, tag: str, base: str, tail: str = "") -> str:
    """``<prefix>/<tag>.<base><tail>``, with ``base`` hashed if the suffix would exceed
    the grammar's 128 characters."""
    suffix = f"{tag}.{base}{tail}"
    if len(suffix) > 128:
        suffix = f"{tag}.h{hashlib.sha256(base.encode()).hexdigest()[:32]}{tail}"
    return f"{prefix}/{suffix}"


def hash_alg(suite: SuiteName) -> Literal["sm3", "sha256"]:
    """The :class:`HashRef` algorithm of a suite's hash (the ledger log's leaves)."""
    return "sm3" if suite == "sm" else "sha256"
