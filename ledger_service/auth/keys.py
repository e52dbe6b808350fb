"""API keys: issued once, stored as a hash, checked in constant time, revocable.

A key of a bank or a verifier names its *party*: the identifier of the organisation it
belongs to (``86.1000.1/bank.icbc-ln``, ``86.1000.1/vfr.acme``). What such a caller does
belongs to the organisation, not to the key: a bank's loan projects, a verifier's
verifications. A second key of the same organisation (a rotation, a second employee)
reaches them; another organisation's key does not.

A key is ``clk_<key id>_<secret>``: the key id (16 hex digits) is public and finds the
row; the secret is 32 random bytes (base64url) shown once, when the key is issued.
The table keeps only SHA-256 of the whole key. A slow password hash (scrypt, Argon2)
exists to make guessing a *low-entropy* password from its hash expensive; a 256-bit
random secret cannot be guessed at any speed, so a plain SHA-256 is enough and keeps
authentication to one hash per request. The stored hash is compared with
:func:`hmac.compare_digest`, and an unknown key id costs the same comparison.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import Connection, insert, select, update

from carbon_protocol.identifiers import IdentifierStr

from .._internal.clock import utc_text
from .._internal.db import api_key_scopes, api_keys
from ..errors import ConflictError, InvalidInputError, NotFoundError
from .errors import UnauthenticatedError
from .roles import PARTY_OPTIONAL_ROLES, PARTY_ROLES, SCOPED_ROLES, UNSCOPED_ROLES, Role

__all__ = ["ApiKeyPublic", "IssuedKey", "KeyCreate", "Principal", "authenticate",
           "create_key", "generate_key", "list_keys", "revoke_key"]

_KEY = re.compile(r"^clk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()


class KeyCreate(BaseModel):
    """What a new key is for: its role, the enterprises it may touch, the organisation it
    belongs to, a label."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    enterprises: list[IdentifierStr] = Field(default_factory=list, max_length=1000)
    """Exactly one for enterprise, gateway and buyer; none for regulator, bank,
    association and admin; any number for a verifier (none: every enterprise)."""
    label: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "unnamed"
    party: IdentifierStr | None = None
    """The organisation the key belongs to: required for bank and verifier keys,
    optional for regulator and admin keys, refused for the others (whose enterprise
    already says whose they are)."""

    @model_validator(mode="after")
    def _scope_fits_role(self) -> KeyCreate:
        if self.role in PARTY_ROLES and self.party is None:
            raise ValueError(f"a {self.role} key names its party: the identifier of the "
                             f"{self.role} organisation it belongs to")
        if self.party is not None and self.role not in PARTY_ROLES | PARTY_OPTIONAL_ROLES:
            raise ValueError(f"a {self.role} key names no party (its enterprise says whose "
                             "it is)")
        if self.role in SCOPED_ROLES and len(self.enterprises) != 1:
            raise ValueError(f"a {self.role} key names exactly one enterprise")
        if self.role in UNSCOPED_ROLES and self.enterprises:
            raise ValueError(f"a {self.role} key names no enterprise")
        if len(set(self.enterprises)) != len(self.enterprises):
            raise ValueError("an enterprise is named twice")
        return self


class ApiKeyPublic(BaseModel):
    """A key as listed: everything but its secret (which is not stored)."""

    key_id: str
    role: Role
    enterprises: list[str]
    party: str | None
    label: str
    created_at: str
    revoked_at: str | None


class IssuedKey(ApiKeyPublic):
    """A key just issued: the only time its ``api_key`` is shown."""

    api_key: str


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    key_id: str
    role: Role
    enterprises: frozenset[str]
    party: str | None = None
    """The organisation the key belongs to (always set for bank and verifier keys
    issued since keys name one)."""

    @property
    def scoped(self) -> bool:
        """Whether this caller may touch only the enterprises it names."""
        return self.role in SCOPED_ROLES or bool(self.enterprises)


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def generate_key() -> str:
    """A new key (not registered anywhere): ``clk_<key id>_<32 random bytes>``."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"clk_{secrets.token_hex(8)}_{secret}"


def create_key(conn: Connection, request: KeyCreate, key: str | None = None) -> IssuedKey:
    """Register ``key`` (default: a new one) for ``request``; the returned ``api_key`` is
    the only copy of its secret the ledger ever holds.

    Registering a given key lets a deployment hand the same secret to a gateway's
    environment and to this call, so the ledger stores its hash and never the key."""
    key = generate_key() if key is None else key
    match = _KEY.fullmatch(key)
    if match is None:
        raise InvalidInputError("an API key is clk_<16 hex digits>_<43 base64url characters>")
    key_id = match.group(1)
    if conn.execute(select(api_keys.c.key_id).where(api_keys.c.key_id == key_id)).first():
        raise ConflictError(f"API key {key_id} is already registered", key_id=key_id)
    now = utc_text()
    conn.execute(insert(api_keys).values(key_id=key_id, role=request.role.value,
                                         key_hash=_hash(key), label=request.label,
                                         created_at=now, revoked_at=None,
                                         party=request.party))
    if request.enterprises:
        conn.execute(insert(api_key_scopes), [{"key_id": key_id, "enterprise_id": e}
                                              for e in request.enterprises])
    return IssuedKey(key_id=key_id, role=request.role, enterprises=list(request.enterprises),
                     party=request.party, label=request.label, created_at=now, revoked_at=None,
                     api_key=key)


def list_keys(conn: Connection, *, include_revoked: bool = True) -> list[ApiKeyPublic]:
    """Every key (without secrets), oldest first."""
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    rows = conn.execute(query).mappings().all()
    scopes: dict[str, list[str]] = {}
    for key_id, enterprise in conn.execute(
            select(api_key_scopes.c.key_id, api_key_scopes.c.enterprise_id)
            .order_by(api_key_scopes.c.enterprise_id)):
        scopes.setdefault(key_id, []).append(enterprise)
    return [ApiKeyPublic(key_id=r["key_id"], role=Role(r["role"]),
                         enterprises=scopes.get(r["key_id"], []), party=r["party"],
                         label=r["label"],
                         created_at=r["created_at"], revoked_at=r["revoked_at"])
            for r in rows]


def revoke_key(conn: Connection, key_id: str) -> ApiKeyPublic:
    """Revoke a key from now on; 404 if unknown, 409 if already revoked."""
    done = conn.execute(update(api_keys).where(api_keys.c.key_id == key_id,
                                               api_keys.c.revoked_at.is_(None))
                        .values(revoked_at=utc_text()))
    found = [k for k in list_keys(conn) if k.key_id == key_id]
    if not found:
        raise NotFoundError(f"no API key {key_id!r}", key_id=key_id)
    if done.rowcount == 0:
        raise ConflictError(f"API key {key_id} was revoked at {found[0].revoked_at}",
                            key_id=key_id)
    return found[0]


def authenticate(conn: Connection, authorization: str | None) -> Principal:
    """The principal of an ``Authorization: Bearer <key>`` header value.

    Raises :class:`UnauthenticatedError` for a missing, malformed, unknown or revoked
    key, with one message for all of them."""
    if not authorization:
        raise UnauthenticatedError("an API key is required: Authorization: Bearer <key>")
    scheme, _, key = authorization.partition(" ")
    match = _KEY.fullmatch(key.strip()) if scheme.lower() == "bearer" else None
    if match is None:
        raise UnauthenticatedError("the API key is not valid")
    key_id = match.group(1)
    # One round trip: the key's row once per enterprise it names (once if none).
    rows = conn.execute(
        select(api_keys.c.role, api_keys.c.key_hash, api_keys.c.revoked_at,
               api_keys.c.party, api_key_scopes.c.enterprise_id)
        .outerjoin(api_key_scopes, api_key_scopes.c.key_id == api_keys.c.key_id)
        .where(api_keys.c.key_id == key_id)).all()
    stored = bytes(rows[0].key_hash) if rows else _DUMMY_HASH
    if not hmac.compare_digest(_hash(key.strip()), stored) or not rows \
            or rows[0].revoked_at is not None:
        raise UnauthenticatedError("the API key is not valid")
    enterprises = frozenset(r.enterprise_id for r in rows if r.enterprise_id is not None)
    return Principal(key_id=key_id, role=Role(rows[0].role), enterprises=enterprises,
                     party=rows[0].party)

