"""The inventory wire object: what a gateway signs and the ledger logs and anchors.

An inventory is an emissions statement for one gateway's devices over one period. It
names everything a stranger needs to re-derive it bit for bit:

* the rule: methodology id and version on a ``RuleRegistry`` (chain id and address) and
  the version's parameters hash, so the factors cannot be swapped for others;
* per line (one emission source, i.e. one meter), the exact readings used: the device,
  its sequence range and the Merkle leaf indices of those readings in the ledger's log
  (as ranges), with the activity data computed from them and the factors applied;
* the emissions of each line and the totals per scope, as 18-decimal fixed-point
  strings (the numbers ``carbon_rules.fixed_point`` and ``EmissionFormulas.sol`` share);
* a data quality summary: readings per quality flag and sequence gaps.

It is signed like every other object here: the gateway's key signs the RFC 8785 JSON of
:class:`Inventory` (suite and key id inside it), and the ledger's Merkle leaf is the
RFC 8785 JSON of :class:`SignedInventory`. This module is the format only; computing and
checking the numbers is :mod:`carbon_rules.inventory`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from .canonical import canonical_json
from .chain_view import ChainLookupError, ChainView, log_key
from .errors import BundleVerificationError, ProtocolError, SignatureError
from .identifiers import IdentifierStr
from .merkle import HashFn, leaf_hash, node_hash, root_from_inclusion_proof
from .models import (
    Address,
    AnchorRef,
    DeviceKeyInfo,
    Domain,
    Hex16,
    Hex32,
    PositiveInt,
    PublicKeyInfo,
    Quantity,
    SafeInt,
    SignatureHex,
    SignedReading,
    SignedTreeHead,
    SuiteField,
    UtcTimestamp,
    parse_utc,
)
from .signing import check_readings_in_order, leaf_bytes, verify_tree_head
from .suites import PrivateKey, PublicKey, SuiteName, hash_fn

__all__ = [
    "INVENTORY_FORMAT",
    "INVENTORY_PROOF_FORMAT",
    "INVENTORY_PROOF_STEPS",
    "InventoryProof",
    "ProvenReadings",
    "leaf_set_proof_nodes",
    "root_from_leaf_set",
    "verify_inventory_proof",
    "ActivityData",
    "DataQuality",
    "FactorApplied",
    "FixedStr",
    "Inventory",
    "InventoryLine",
    "LeafRange",
    "Period",
    "ReadingSet",
    "RuleVersionRef",
    "Scope",
    "SignedInventory",
    "SourceKind",
    "Totals",
    "inventory_bytes",
    "inventory_id",
    "inventory_leaf_bytes",
    "inventory_leaf_hash",
    "sign_inventory",
    "verify_inventory_signature",
]

INVENTORY_FORMAT: Literal["carbon-ledger/inventory/v1"] = "carbon-ledger/inventory/v1"
INVENTORY_PROOF_FORMAT: Literal["carbon-ledger/inventory-proof/v1"] = (
    "carbon-ledger/inventory-proof/v1")

FixedStr = Annotated[
    str, StringConstraints(pattern=r"^(?:0|[1-9][0-9]{0,38})(?:\.[0-9]{0,17}[1-9])?$")
]
"""A non-negative 18-decimal fixed-point number as a plain decimal: no sign, no
exponent, no trailing zeros after the point (``carbon_rules.fixed_point.to_decimal``)."""

RuleName = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,32}$")]
"""A name as the ``RuleRegistry`` stores it (``bytes32``): 1-32 printable ASCII."""

SourceKind = Literal["purchased_electricity", "purchased_heat", "fuel_combustion"]
"""The emission source a line accounts for (GB/T 32151 source categories)."""

Scope = Literal[1, 2]
"""ISO 14064-1 / GHG Protocol scope: 1 direct (combustion), 2 purchased energy."""


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class RuleVersionRef(_Wire):
    """The rule version an inventory was computed with, and where it is published."""

    chain_id: PositiveInt
    registry: Address
    methodology_id: RuleName
    version: PositiveInt
    parameters_hash: Hex32
    """``keccak256`` of the version's parameters as the registry publishes it."""


class Period(_Wire):
    """The accounting period ``[start, end)``; a reading belongs to it when the interval
    it measures ends inside ``(start, end]`` (``measured_at`` is the interval's end)."""

    label: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    """``2026-10`` (month), ``2026-Q4``, ``2026``, ``2026-10-05`` or a free label."""
    start: UtcTimestamp
    end: UtcTimestamp

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if parse_utc(self.end) <= parse_utc(self.start):
            raise ValueError(f"period end {self.end} is not after its start {self.start}")
        return self


class LeafRange(_Wire):
    """Leaf indices ``first, first + step, ..., last`` of the ledger's Merkle log.

    A step, because a gateway delivers its meters' readings interleaved: one meter's
    leaves in a batch of eight meters are every eighth leaf, one progression rather than
    hundreds of single-leaf ranges (a month of a meter in tens of ranges, not thousands).
    """

    first: SafeInt
    last: SafeInt
    step: PositiveInt = 1
    """Absent from the JSON when 1 (a contiguous range), so the form is one."""

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.step == 1:
            data.pop("step", None)
        return data

    def __str__(self) -> str:
        return f"{self.first}..{self.last}" + (f" every {self.step}" if self.step > 1 else "")

    @model_validator(mode="after")
    def _ordered(self) -> LeafRange:
        if self.last < self.first:
            raise ValueError(f"leaf range {self.first}..{self.last} is empty")
        if (self.last - self.first) % self.step:
            raise ValueError(f"leaf range {self.first}..{self.last} is not a whole number "
                             f"of steps of {self.step}")
        return self

    @property
    def count(self) -> int:
        """How many leaves the range names."""
        return (self.last - self.first) // self.step + 1

    def indices(self) -> range:
        """The leaf indices, ascending."""
        return range(self.first, self.last + 1, self.step)


class ReadingSet(_Wire):
    """The exact readings of one device a line used: every one of them, no other."""

    device: IdentifierStr
    quantity: Quantity
    unit: Annotated[str, StringConstraints(min_length=1, max_length=8)]
    count: PositiveInt
    first_seq: PositiveInt
    last_seq: PositiveInt
    leaves: list[LeafRange] = Field(min_length=1, max_length=1_000_000)
    """Ranges one after the other (each starts after the previous one's last leaf), in
    the canonical form :func:`carbon_rules.inventory.leaf_ranges` makes, whose sizes
    add up to ``count``."""

    @model_validator(mode="after")
    def _consistent(self) -> ReadingSet:
        if self.last_seq < self.first_seq:
            raise ValueError(f"sequence range {self.first_seq}..{self.last_seq} is empty")
        total = 0
        previous = -1
        for r in self.leaves:
            if r.first <= previous:
                raise ValueError("leaf ranges must follow one another in ascending order")
            total += r.count
            previous = r.last
        if total != self.count:
            raise ValueError(f"leaf ranges hold {total} leaves, count says {self.count}")
        return self

    def leaf_indices(self) -> list[int]:
        """Every leaf index named, ascending."""
        return [i for r in self.leaves for i in r.indices()]


class ActivityData(_Wire):
    """Activity data (AD) of a line, in the unit the formula takes."""

    value: FixedStr
    unit: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    """``MWh`` (electricity), ``GJ`` (heat), ``10^4Nm3`` (natural gas)."""
    metered: FixedStr
    """The consumption the readings show, in the meter's own unit: register deltas
    where the register is read, interval values otherwise (``carbon_rules.activity``)."""
    metered_unit: Annotated[str, StringConstraints(min_length=1, max_length=8)]


class FactorApplied(_Wire):
    """A parameter as applied: the registry's published default or a measured value."""

    id: RuleName
    value: FixedStr
    unit: RuleName
    measured: bool
    """``True``: ``value`` was measured (and must lie in the factor's plausible range)."""
    source: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    """The document the registry cites for the factor (its default's provenance)."""
    year: SafeInt


class DataQuality(_Wire):
    """How the activity data was obtained, and what is missing.

    ``measured`` .. ``substituted`` count readings by their quality flag;
    ``sequence_gaps`` the sequence numbers missing inside the readings' range; the
    rest are the activity-data counters (``carbon_rules.activity``): absent intervals
    a register delta spanned (``missing_bridged``) or that were filled with the larger
    neighbouring interval (``missing_filled``, an estimate: never silent), register
    rollovers, meter replacements and register anomalies (never used).
    """

    readings: SafeInt
    measured: SafeInt
    estimated: SafeInt
    manual: SafeInt
    substituted: SafeInt
    sequence_gaps: SafeInt
    missing_bridged: SafeInt = 0
    missing_filled: SafeInt = 0
    rollovers: SafeInt = 0
    replacements: SafeInt = 0
    anomalies: SafeInt = 0


class InventoryLine(_Wire):
    """One emission source: a meter's readings, activity data, factors, emissions."""

    line: PositiveInt
    source: SourceKind
    scope: Scope
    site: IdentifierStr | None = None
    readings: ReadingSet
    activity: ActivityData
    factors: list[FactorApplied] = Field(min_length=1, max_length=8)
    formula: Literal["E = AD x EF", "E = FC x NCV x CC x OF x 44/12"]
    emissions: FixedStr
    """tCO2e."""
    quality: DataQuality


class Totals(_Wire):
    """Emissions in tCO2e: per scope and altogether (exact sums of the lines)."""

    scope1: FixedStr
    scope2: FixedStr
    total: FixedStr


class Inventory(_Wire):
    """An emissions inventory as a gateway signs it."""

    format: Literal["carbon-ledger/inventory/v1"] = INVENTORY_FORMAT
    suite: SuiteField
    key_id: Hex16
    gateway: IdentifierStr
    domain: Domain
    """The ledger deployment whose log holds the readings (replay protection)."""
    period: Period
    rule: RuleVersionRef
    lines: list[InventoryLine] = Field(min_length=1, max_length=10_000)
    totals: Totals
    quality: DataQuality
    computed_at: UtcTimestamp

    @model_validator(mode="after")
    def _numbered(self) -> Inventory:
        devices = set()
        for n, line in enumerate(self.lines, start=1):
            if line.line != n:
                raise ValueError(f"line {n} is numbered {line.line}")
            if line.readings.device in devices:
                raise ValueError(f"device {line.readings.device} has two lines")
            devices.add(line.readings.device)
        return self

    def devices(self) -> list[str]:
        """The devices the inventory covers, in line order."""
        return [line.readings.device for line in self.lines]


class SignedInventory(_Wire):
    """An inventory with the gateway's signature; the Merkle leaf is its canonical form."""

    inventory: Inventory
    signature: SignatureHex


def inventory_bytes(inventory: Inventory) -> bytes:
    """The exact bytes a gateway signs: RFC 8785 JSON of the inventory."""
    return canonical_json(inventory.model_dump(mode="json"))


def sign_inventory(inventory: Inventory, key: PrivateKey) -> SignedInventory:
    """Sign ``inventory`` with the gateway key whose suite and id it names."""
    pub = key.public_key()
    if (inventory.suite, inventory.key_id) != (pub.suite, pub.key_id):
        raise SignatureError(f"inventory names key {inventory.key_id} ({inventory.suite}) "
                             f"but the signing key is {pub.key_id} ({pub.suite})")
    return SignedInventory(inventory=inventory,
                           signature=key.sign(inventory_bytes(inventory)).hex())


def verify_inventory_signature(signed: SignedInventory, key: PublicKey) -> None:
    """Raise :class:`SignatureError` unless ``key`` signed ``signed.inventory``."""
    inv = signed.inventory
    if (inv.suite, inv.key_id) != (key.suite, key.key_id):
        raise SignatureError(f"inventory names key {inv.key_id} ({inv.suite}) but the key "
                             f"given is {key.key_id} ({key.suite})")
    key.verify(bytes.fromhex(signed.signature), inventory_bytes(inv))


def inventory_leaf_bytes(signed: SignedInventory) -> bytes:
    """The Merkle leaf data of a signed inventory: its RFC 8785 JSON."""
    return canonical_json(signed.model_dump(mode="json"))


def inventory_leaf_hash(signed: SignedInventory, log_suite: SuiteName) -> bytes:
    """RFC 6962 leaf hash ``H(0x00 || leaf_bytes)`` with the log's hash function."""
    return leaf_hash(hash_fn(log_suite), inventory_leaf_bytes(signed))


def inventory_id(prefix: str, leaf: bytes) -> str:
    """The identifier of a logged inventory: anyone holding the leaf can derive it."""
    return f"{prefix}/inv.{leaf[:16].hex()}"


# -- proofs -------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (RFC 9162 §2.1.1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def leaf_set_proof_nodes(size: int, indices: Sequence[int]) -> list[tuple[int, int]]:
    """The subtrees ``[lo, hi)`` of the RFC 9162 tree of ``size`` leaves whose hashes
    prove the leaves at ``indices`` (ascending): the maximal subtrees holding none of
    them, in the order :func:`root_from_leaf_set` consumes them."""
    out: list[tuple[int, int]] = []

    def walk(lo: int, hi: int, a: int, b: int) -> None:
        # indices[a:b] are the named leaves inside [lo, hi)
        if a == b:
            out.append((lo, hi))
            return
        if hi - lo == 1:
            return
        mid = lo + _split(hi - lo)
        m = bisect_left(indices, mid, a, b)
        walk(lo, mid, a, m)
        walk(mid, hi, m, b)

    walk(0, size, 0, len(indices))
    return out


def root_from_leaf_set(h: HashFn, size: int, leaves: Mapping[int, bytes],
                       proof: Sequence[bytes]) -> bytes:
    """The root of a tree of ``size`` leaves from some of its leaf hashes
    (index -> hash) and the hashes of :func:`leaf_set_proof_nodes`.

    Raises :class:`ProtocolError` if the proof has too few or too many hashes or an
    index lies outside the tree.
    """
    indices = sorted(leaves)
    if not indices or indices[0] < 0 or indices[-1] >= size:
        raise ProtocolError(f"leaf indices must lie in 0..{size - 1}")
    nodes = iter(proof)
    used = 0

    def walk(lo: int, hi: int, a: int, b: int) -> bytes:
        nonlocal used
        if a == b:
            used += 1
            try:
                return next(nodes)
            except StopIteration:
                raise ProtocolError("leaf-set proof has too few hashes") from None
        if hi - lo == 1:
            return leaves[lo]
        mid = lo + _split(hi - lo)
        m = bisect_left(indices, mid, a, b)
        return node_hash(h, walk(lo, mid, a, m), walk(mid, hi, m, b))

    root = walk(0, size, 0, len(indices))
    if used != len(proof):
        raise ProtocolError(f"leaf-set proof has {len(proof)} hashes, {used} were needed")
    return root


class ProvenReadings(_Wire):
    """Every reading an inventory names, and the proof that the anchored tree holds
    them at the leaf indices the inventory claims."""

    indices: list[SafeInt] = Field(max_length=50_000_000)
    """Ascending; the union of the lines' leaf ranges."""
    readings: list[SignedReading] = Field(max_length=50_000_000)
    """``readings[i]`` is the leaf at ``indices[i]``."""
    proof: list[Hex32]
    """The hashes of :func:`leaf_set_proof_nodes` for the anchored tree size."""
    device_keys: list[DeviceKeyInfo] = Field(default_factory=list, max_length=100_000)
    """The registered keys that signed the readings, with their validity periods."""


class InventoryProof(_Wire):
    """An inventory, its place in the log, the anchor, and the readings it used."""

    format: Literal["carbon-ledger/inventory-proof/v1"] = INVENTORY_PROOF_FORMAT
    inventory_id: IdentifierStr
    signed_inventory: SignedInventory
    gateway_key: PublicKeyInfo
    leaf_index: SafeInt
    leaf_hash: Hex32
    inclusion_proof: list[Hex32] = Field(max_length=64)
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef
    readings: ProvenReadings | None = None


INVENTORY_PROOF_STEPS: tuple[str, ...] = (
    "gateway signature", "leaf", "inclusion", "tree head signature", "domain", "anchor",
    "readings", "chain",
)


def _fail(step: int, message: str, expected: object = None, found: object = None) -> NoReturn:
    raise BundleVerificationError(step, INVENTORY_PROOF_STEPS[step - 1], message,
                                  expected=None if expected is None else str(expected),
                                  found=None if found is None else str(found))


def verify_inventory_proof(
    proof: InventoryProof, *, chain: ChainView | None = None, check_signatures: bool = True,
) -> dict[int, SignedReading]:
    """Check an inventory proof step by step (:data:`INVENTORY_PROOF_STEPS`), raising
    :class:`BundleVerificationError` at the first failure; return the proven readings
    by leaf index (empty when the proof carries none).

    With ``check_signatures`` every reading's signature is verified under the device
    key the proof carries for it, and that key must have been valid when the tree head
    was anchored (as step 9 of a reading's bundle). That is one SM2 verification per
    reading (about 1.5 ms; Ed25519 about 0.1 ms): without it, the readings are proven
    to be in the log, whose ledger checked their signatures on receipt.

    What this does not do is recompute the numbers: that needs the rule, and lives in
    ``carbon_rules.inventory_verify``. The gateway key is taken from the proof; a
    caller that knows the gateway's key compares ``proof.gateway_key`` itself.
    """
    signed, sth, anchor = proof.signed_inventory, proof.signed_tree_head, proof.anchor
    inv, head = signed.inventory, sth.tree_head
    try:  # 1. gateway signature
        key = PublicKey.from_hex(proof.gateway_key.suite, proof.gateway_key.public_key)
        verify_inventory_signature(signed, key)
    except ProtocolError as exc:
        _fail(1, str(exc))
    h = hash_fn(head.suite)
    leaf = leaf_hash(h, inventory_leaf_bytes(signed))  # 2. leaf
    if leaf.hex() != proof.leaf_hash:
        _fail(2, "leaf hash of the signed inventory differs", proof.leaf_hash, leaf.hex())
    prefix = proof.inventory_id.rsplit("/", 1)[0]
    if inventory_id(prefix, leaf) != proof.inventory_id:
        _fail(2, "inventory id is not derived from its leaf", inventory_id(prefix, leaf),
              proof.inventory_id)
    try:  # 3. inclusion
        root = root_from_inclusion_proof(h, proof.leaf_index, head.tree_size, leaf,
                                         [bytes.fromhex(p) for p in proof.inclusion_proof])
    except ProtocolError as exc:
        _fail(3, str(exc))
    if root.hex() != head.root_hash:
        _fail(3, "inclusion proof leads to another root", head.root_hash, root.hex())
    try:  # 4. tree head signature
        log_pub = PublicKey.from_hex(proof.log_key.suite, proof.log_key.public_key)
        if (log_pub.key_id, log_pub.suite) != (head.key_id, head.suite):
            _fail(4, "the log key is not the one the tree head names", head.key_id,
                  log_pub.key_id)
        verify_tree_head(sth, log_pub)
    except ProtocolError as exc:
        _fail(4, str(exc))
    d = inv.domain  # 5. domain
    if (d.chain_id, d.contract, d.log_id) != (anchor.chain_id, anchor.contract, head.log_id):
        _fail(5, "inventory was signed for another deployment",
              (anchor.chain_id, anchor.contract, head.log_id), (d.chain_id, d.contract, d.log_id))
    if (anchor.log_key, anchor.tree_size, anchor.root_hash) != (  # 6. anchor
            log_key(head.log_id).hex(), head.tree_size, head.root_hash):
        _fail(6, "anchor is not this log's tree head", head.root_hash, anchor.root_hash)
    proven = _check_readings(proof, h, check_signatures) if proof.readings is not None else {}
    if chain is not None:  # 8. chain
        try:
            on_chain = chain.anchor_of(anchor.contract, bytes.fromhex(anchor.log_key),
                                       anchor.tree_size)
            chain_id = chain.chain_id()
        except ChainLookupError as exc:
            _fail(8, f"chain look-up failed: {exc}")
        if chain_id != anchor.chain_id:
            _fail(8, "the endpoint serves another chain", anchor.chain_id, chain_id)
        if on_chain is None or on_chain.root.hex() != anchor.root_hash:
            _fail(8, "anchored root on chain differs", anchor.root_hash,
                  None if on_chain is None else on_chain.root.hex())
    return proven


def _check_signatures(proof: InventoryProof, by_index: Mapping[int, SignedReading]) -> None:
    """Each reading's key (parsed and judged once per key), then its signature, in leaf
    order; the signatures are checked in threads."""
    assert proof.readings is not None
    keys = {k.key_id: k for k in proof.readings.device_keys}
    anchored_at = proof.anchor.block_timestamp
    checked: dict[str, PublicKey] = {}
    order = list(by_index.items())

    def key_of(pos: int) -> tuple[SignedReading, PublicKey]:
        i, signed = order[pos]
        r = signed.reading
        info = keys.get(r.key_id)
        if info is None or info.device != r.device:
            _fail(7, f"the proof carries no key {r.key_id} of {r.device} (leaf {i})",
                  r.key_id, "nothing")
        pub = checked.get(r.key_id)
        if pub is None:
            try:
                pub = PublicKey.from_hex(info.suite, info.public_key)
            except ProtocolError as exc:
                _fail(7, f"device key {r.key_id} does not parse: {exc}")
            if pub.key_id != info.key_id:
                _fail(7, "device key id is not derived from the key", pub.key_id, info.key_id)
            if not info.valid_at(anchored_at):
                _fail(7, f"device key {r.key_id} was not valid when the tree head was "
                         "anchored", f"{info.valid_from}..{info.revoked_at or ''}",
                      f"block time {anchored_at}")
            checked[r.key_id] = pub
        return signed, pub

    def bad_signature(pos: int, exc: ProtocolError) -> NoReturn:
        _fail(7, f"leaf {order[pos][0]}: {exc}")

    check_readings_in_order(len(order), key_of, lambda pos: None, bad_signature)


def _check_readings(proof: InventoryProof, h: HashFn,
                    check_signatures: bool) -> dict[int, SignedReading]:
    proven = proof.readings
    assert proven is not None
    inv, head = proof.signed_inventory.inventory, proof.signed_tree_head.tree_head
    claimed = sorted(i for line in inv.lines for i in line.readings.leaf_indices())
    if proven.indices != claimed:
        _fail(7, "the proof's leaves are not the ones the inventory names",
              f"{len(claimed)} leaves", f"{len(proven.indices)} leaves")
    if len(proven.readings) != len(proven.indices):
        _fail(7, "one reading per leaf index is needed", len(proven.indices),
              len(proven.readings))
    by_index = dict(zip(proven.indices, proven.readings, strict=True))
    leaves = {i: leaf_hash(h, leaf_bytes(r)) for i, r in by_index.items()}
    try:
        root = root_from_leaf_set(h, head.tree_size, leaves,
                                  [bytes.fromhex(p) for p in proven.proof])
    except ProtocolError as exc:
        _fail(7, str(exc))
    if root.hex() != head.root_hash:
        _fail(7, "the readings and their proof lead to another root", head.root_hash,
              root.hex())
    for line in inv.lines:
        rs = line.readings
        for i in rs.leaf_indices():
            r = by_index[i].reading
            if r.device != rs.device or not rs.first_seq <= r.seq <= rs.last_seq:
                _fail(7, f"leaf {i} of line {line.line} is not a reading of {rs.device} "
                         f"in {rs.first_seq}..{rs.last_seq}", rs.device, f"{r.device}#{r.seq}")
            if r.domain != inv.domain:
                _fail(7, f"leaf {i} was signed for another deployment", inv.domain,
                      r.domain)
    if check_signatures:
        _check_signatures(proof, by_index)
    return by_index
