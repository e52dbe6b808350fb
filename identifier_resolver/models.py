"""Wire models of the resolver: typed records, their signed form, answers and custody graphs.

Parse, don't validate: every model is frozen, forbids unknown fields and is strict, so
an object that exists is well-formed. A :class:`Record` is what a prefix owner signs
(its RFC 8785 bytes, see :mod:`identifier_resolver.records`); a :class:`SignedRecord`
is what a node stores, appends to its Merkle log and serves. Every change is a new
version whose ``prev`` is the digest of the version before, so a record's history is a
hash chain ending in the version the log proves.

The custody graph is made of typed links. Each relation has a fixed orientation
(:data:`RELATIONS`): its target lies *up* from the source (what the source belongs to
or feeds: site ``part_of`` enterprise, reading range ``logged_in`` tree head) or *down*
(what the source is made of: report ``summarises`` inventory, inventory
``computed_from`` reading ranges). Walking down from an enterprise reaches its sites,
devices and reading ranges; walking down from a report reaches the readings it used;
walking up from a reading range reaches its device, tree head, anchor, inventories and
reports.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from carbon_protocol.canonical import MAX_SAFE_INTEGER
from carbon_protocol.identifiers import PREFIX_PATTERN, IdentifierStr, PrefixStr
from carbon_protocol.models import (
    AnchorRef,
    PublicKeyHex,
    PublicKeyInfo,
    SignedTreeHead,
    SuiteField,
    UtcTimestamp,
)

__all__ = [
    "RECORD_TYPES",
    "RELATIONS",
    "ANSWER_FORMAT",
    "CUSTODY_FORMAT",
    "RecordType",
    "Relation",
    "Direction",
    "Status",
    "DataValue",
    "HashRef",
    "RecordKey",
    "Link",
    "Signer",
    "Record",
    "SignedRecord",
    "RecordProof",
    "Answer",
    "CustodyNode",
    "CustodyEdge",
    "CustodyGraph",
    "NodeInfo",
    "TrustRoot",
    "RecordReceipt",
    "RecordBatch",
    "RecordQuery",
    "RecordsFound",
    "AuthorityInstall",
    "relation_direction",
]

ANSWER_FORMAT: Final = "carbon-ledger/resolution/v1"
CUSTODY_FORMAT: Final = "carbon-ledger/custody/v1"

RecordType = Literal[
    "enterprise", "site", "device", "gateway", "reading_range", "tree_head", "anchor",
    "inventory", "report", "attestation", "grant", "maintenance", "calibration",
    "delegation",
]
RECORD_TYPES: tuple[str, ...] = (
    "enterprise", "site", "device", "gateway", "reading_range", "tree_head", "anchor",
    "inventory", "report", "attestation", "grant", "maintenance", "calibration",
    "delegation",
)

Relation = Literal[
    "part_of", "connected_via", "measured_by", "logged_in", "anchors", "computed_from",
    "summarises", "attests", "grants_access_to", "performed_on", "calibrates",
    "derived_from",
]
Direction = Literal["up", "down"]
Status = Literal["active", "deactivated"]

RELATIONS: Final[dict[str, tuple[Direction, frozenset[str]]]] = {
    # relation: (where the target lies from the source, source types that may use it)
    "part_of": ("up", frozenset({"site", "gateway", "device"})),
    "connected_via": ("up", frozenset({"device"})),
    "measured_by": ("up", frozenset({"reading_range"})),
    "logged_in": ("up", frozenset({"reading_range"})),
    "performed_on": ("up", frozenset({"maintenance"})),
    "calibrates": ("up", frozenset({"calibration"})),
    "anchors": ("down", frozenset({"anchor"})),
    "computed_from": ("down", frozenset({"inventory", "report"})),
    "summarises": ("down", frozenset({"report"})),
    "attests": ("down", frozenset({"attestation"})),
    "grants_access_to": ("down", frozenset({"grant"})),
    "derived_from": ("down", frozenset(RECORD_TYPES) - {"delegation"}),
}
"""Every relation's orientation and the record types allowed to declare it."""


def relation_direction(rel: str) -> Direction:
    """Where a relation's target lies from its source: ``"up"`` or ``"down"``."""
    return RELATIONS[rel][0]


Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Hex16 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
SafeInt = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]
DataKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
DataText = Annotated[str, StringConstraints(max_length=4096)]
DataInt = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
DataValue = DataText | DataInt | bool | None
"""A record attribute: text, a safe integer, a boolean or null (never a float)."""

_URL_RE: Final = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(?::[0-9]{1,5})?(?:/[\x21-\x7e]*)?$")
_PREFIX_RE: Final = re.compile(rf"^{PREFIX_PATTERN}$")


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class HashRef(_Wire):
    """A digest of the thing a record stands for, with its algorithm."""

    alg: Literal["sm3", "sha256"]
    value: Hex32


class RecordKey(_Wire):
    """A public key a record publishes, with its role and validity.

    Roles: ``owner`` (signs records under a delegated prefix), ``node`` (signs a
    node's tree heads), ``device`` (signs readings), ``signer`` (signed the thing the
    record stands for, e.g. a log key for a tree head).
    """

    role: Literal["owner", "node", "device", "signer"]
    suite: SuiteField
    public_key: PublicKeyHex
    key_id: Hex16
    valid_from: UtcTimestamp | None = None
    revoked_at: UtcTimestamp | None = None


class Link(_Wire):
    """A typed edge of the custody graph, declared by the record that holds it."""

    rel: Relation
    target: IdentifierStr


class Signer(_Wire):
    """The key that signed a record version: a prefix owner key."""

    suite: SuiteField
    key_id: Hex16


class Record(_Wire):
    """One version of an identifier's record, as its prefix owner signs it."""

    v: Literal[1] = 1
    id: IdentifierStr
    type: RecordType
    version: PositiveInt
    status: Status = "active"
    owner: IdentifierStr
    """Who answers for the thing: an enterprise, a log, a verifier."""
    keys: list[RecordKey] = Field(default_factory=list, max_length=64)
    hash: HashRef | None = None
    links: list[Link] = Field(default_factory=list, max_length=50_000)
    data: dict[DataKey, DataValue] = Field(default_factory=dict, max_length=64)
    prev: Hex32 | None = None
    """Digest of the previous signed version (``None`` for version 1)."""
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    """Why this version was made; required to deactivate."""
    updated_at: UtcTimestamp
    signer: Signer

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        if (self.version == 1) != (self.prev is None):
            raise ValueError("version 1 has no prev, and every later version names its prev")
        if self.status == "deactivated" and self.reason is None:
            raise ValueError("a deactivation must give a reason")
        seen: set[tuple[str, str]] = set()
        for link in self.links:
            allowed = RELATIONS[link.rel][1]
            if self.type not in allowed:
                raise ValueError(f"a {self.type} record cannot declare a {link.rel} link")
            if link.target == self.id:
                raise ValueError(f"record {self.id} links to itself")
            if (link.rel, link.target) in seen:
                raise ValueError(f"duplicate link {link.rel} -> {link.target}")
            seen.add((link.rel, link.target))
        if self.type == "delegation":
            self._check_delegation()
        return self

    def _check_delegation(self) -> None:
        prefix = self.data.get("prefix")
        url = self.data.get("url")
        log_id = self.data.get("log_id")
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ValueError("a delegation names the delegated prefix in data.prefix")
        if self.id.partition("/")[2] != f"na.{prefix}":
            raise ValueError(f"a delegation of {prefix} must have the suffix na.{prefix}")
        if not isinstance(url, str) or not _URL_RE.match(url):
            raise ValueError("a delegation names the node's http(s) URL in data.url")
        if not isinstance(log_id, str) or "/" not in log_id:
            raise ValueError("a delegation names the node's log id in data.log_id")
        roles = [k.role for k in self.keys]
        if "owner" not in roles or roles.count("node") != 1:
            raise ValueError("a delegation publishes the prefix owner key(s) and one node key")
        if self.links:
            raise ValueError("a delegation has no custody links")

    @property
    def prefix(self) -> str:
        """The identifier's prefix (the naming authority part)."""
        return self.id.partition("/")[0]


class SignedRecord(_Wire):
    """A record version with its owner's signature; the log leaf is its RFC 8785 form."""

    record: Record
    signature: SignatureHex


class RecordProof(_Wire):
    """Where a signed record sits in the answering node's log, and how that log is
    anchored: RFC 9162 inclusion proof, signed tree head, anchor (``None`` until the
    node's next anchoring round)."""

    log_id: IdentifierStr
    log_key: PublicKeyInfo
    leaf_index: SafeInt
    tree_size: PositiveInt
    leaf_hash: Hex32
    inclusion_proof: list[Hex32] = Field(max_length=64)
    signed_tree_head: SignedTreeHead
    anchor: AnchorRef | None = None


class Answer(_Wire):
    """A resolution answer: a record (or a referral to the node that holds it) with
    everything needed to check it against the trust root.

    ``kind == "record"``: ``record`` is the current version of the identifier asked,
    ``history`` its earlier versions (oldest first). ``kind == "referral"``: ``record``
    is the active delegation record of the longest delegated prefix covering the
    identifier, pointing at the node to ask next. ``delegations`` is the chain of
    delegation records from the root to the authority that signed ``record``.
    """

    format: Literal["carbon-ledger/resolution/v1"] = ANSWER_FORMAT
    kind: Literal["record", "referral"]
    query: IdentifierStr
    node_id: str
    record: SignedRecord
    history: list[SignedRecord] = Field(default_factory=list, max_length=10_000)
    proof: RecordProof
    delegations: list[SignedRecord] = Field(default_factory=list, max_length=8)


class CustodyNode(_Wire):
    """One identifier reached by a custody walk.

    ``state``: ``present`` (a record on this node), ``missing`` (linked to, but no
    record here although this node is authoritative), ``external`` (another node is
    authoritative; a client continues the walk there).
    """

    id: IdentifierStr
    depth: SafeInt
    state: Literal["present", "missing", "external"]
    type: RecordType | None = None
    status: Status | None = None
    owner: IdentifierStr | None = None
    version: PositiveInt | None = None
    hash: HashRef | None = None
    data: dict[DataKey, DataValue] = Field(default_factory=dict)
    record: SignedRecord | None = None
    proof: RecordProof | None = None


class CustodyEdge(_Wire):
    """A link as its source record declares it."""

    source: IdentifierStr
    rel: Relation
    target: IdentifierStr


class CustodyGraph(_Wire):
    """The part of the custody graph within ``depth`` hops of ``root`` in ``direction``.

    With ``proofs``, every present node carries its signed record and an inclusion
    proof against one signed (and, once anchored, anchored) tree head, and
    ``delegations`` holds the chains that authorise their signers.
    """

    format: Literal["carbon-ledger/custody/v1"] = CUSTODY_FORMAT
    root: IdentifierStr
    direction: Direction
    depth: SafeInt
    node_id: str
    nodes: list[CustodyNode]
    edges: list[CustodyEdge]
    truncated: bool = False
    delegations: list[SignedRecord] = Field(default_factory=list)


class NodeInfo(_Wire):
    """What a node says about itself (``GET /node``)."""

    node_id: str
    root: bool
    root_prefix: PrefixStr
    trust_root: PublicKeyInfo
    log_id: IdentifierStr
    log_key: PublicKeyInfo
    prefixes: list[PrefixStr]
    delegated: list[PrefixStr]
    tree_size: SafeInt
    chain_id: int | None = None
    contract: str | None = None


class TrustRoot(_Wire):
    """What a client pins to verify any answer: the root's owner key, log key and URL.

    Everything else (owner keys and node keys of delegated prefixes, node URLs) is
    learnt from delegation records that chain up to this root.
    """

    root_prefix: PrefixStr = "0"
    owner_keys: list[PublicKeyInfo] = Field(min_length=1, max_length=8)
    log_id: IdentifierStr
    log_key: PublicKeyInfo
    url: str | None = None

    @model_validator(mode="after")
    def _url_ok(self) -> TrustRoot:
        if self.url is not None and not _URL_RE.match(self.url):
            raise ValueError("the root URL must be http(s)")
        return self


class RecordReceipt(_Wire):
    """What a node answers for a stored record version."""

    id: IdentifierStr
    version: PositiveInt
    status: Status
    leaf_index: SafeInt
    digest: HashRef


class RecordBatch(_Wire):
    """``POST /records``: record versions to store, in order."""

    records: list[SignedRecord] = Field(min_length=1, max_length=2_000)


class RecordQuery(_Wire):
    """``POST /records/query``: current versions of these identifiers."""

    ids: list[IdentifierStr] = Field(min_length=1, max_length=5_000)


class RecordsFound(_Wire):
    """The current signed versions found (identifiers not held are absent)."""

    records: dict[str, SignedRecord]


class AuthorityInstall(_Wire):
    """``POST /authority``: the delegation chain, root first, that makes this node
    authoritative for the last record's prefix."""

    delegations: list[SignedRecord] = Field(min_length=1, max_length=8)
