"""The actors of the ledger (see ``MISSION.md``) as API roles, and how each is scoped."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PARTY_OPTIONAL_ROLES", "PARTY_ROLES", "Role", "SCOPED_ROLES", "UNSCOPED_ROLES"]


class Role(StrEnum):
    """What an API key may do is decided by its role (and, for some, its enterprises)."""

    ENTERPRISE = "enterprise"
    """A reporting enterprise: its own registry entries, inventories, reports."""
    GATEWAY = "gateway"
    """An edge gateway of one enterprise: registers its devices, posts their readings."""
    REGULATOR = "regulator"
    """Reads everything; registers enterprises."""
    VERIFIER = "verifier"
    """Reads what it verifies: every enterprise, or only those it is engaged by."""
    BANK = "bank"
    """Reads enterprises, inventories and reports to judge loans."""
    ASSOCIATION = "association"
    """Publishes rules on chain; through this API it reads what is public and the data
    window."""
    BUYER = "buyer"
    """A data buyer (its own enterprise): browses the data window, requests datasets and
    reads what an owner grants it."""
    ADMIN = "admin"
    """The operator: issues and revokes keys, may call every route."""


SCOPED_ROLES = frozenset({Role.ENTERPRISE, Role.GATEWAY, Role.BUYER})
"""Roles whose key names exactly one enterprise and touches only that one."""

UNSCOPED_ROLES = frozenset({Role.REGULATOR, Role.BANK, Role.ASSOCIATION, Role.ADMIN})
"""Roles whose key names no enterprise. A verifier may name any number, or none
(then it is unscoped like a regulator)."""

PARTY_ROLES = frozenset({Role.BANK, Role.VERIFIER})
"""Roles whose key names its party, the organisation it belongs to: what such a caller
registers or opens (loan projects, verifications) belongs to that organisation."""

PARTY_OPTIONAL_ROLES = frozenset({Role.REGULATOR, Role.ADMIN})
"""Roles whose key may name a party (which authority, which operator) but need not:
nothing they may do depends on it."""
