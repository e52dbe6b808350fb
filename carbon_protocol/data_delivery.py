"""Marketplace deliveries: the plaintext a buyer finds inside a delivery envelope.

A data owner lists a *dataset* (a set of its readings) in the data window with a
*content hash*, and the ledger records that hash on chain. Under a grant the buyer
receives, encrypted to its key (:mod:`.envelope`), a :class:`DataDelivery`
(``carbon-ledger/data-delivery/v2``): exactly the dataset's signed readings, the
device keys that signed them, and ONE leaf-set proof that all of them are leaves of
one signed tree head that a final anchor covers. The buyer checks everything offline
with :func:`verify_delivery`, in the order of :data:`DELIVERY_STEPS`.

Why one proof for the set and not one path per reading (``v1``): a month of 17 meters
is ~50,000 readings, and per-reading paths of ~17 hashes made the delivery 140 MB and
its build 28 s (``benchmarks/market_delivery.py``). The leaf-set proof is the hashes of
the maximal subtrees that hold none of the delivered leaves
(:func:`.inventory.leaf_set_proof_nodes`, as the evidence bundle uses): none for a
contiguous run, about one per reading when the readings are every other leaf, against
~17 per reading for separate paths. It discloses no leaf beyond the grant: each hash
covers only leaves the buyer was not given (``docs/marketplace.md`` §5 says what a
hash could still give away).

So a delivery can hold neither more nor less than what was listed: the readings must
lie inside the listing's selection, the proof must reproduce the signed root, and one
reading added, dropped or swapped changes the content hash. ``docs/marketplace.md``
specifies the format for an independent implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .chain_view import ChainLookupError, ChainView, log_key
from .errors import ProtocolError, VerificationError
from .identifiers import IdentifierStr
from .inventory import root_from_leaf_set
from .merkle import leaf_hash, root_from_leaf_hashes
from .models import (
    AnchorRef,
    DeviceKeyInfo,
    Hex32,
    PositiveInt,
    PublicKeyInfo,
    SafeInt,
    SignedReading,
    SignedTreeHead,
    UtcTimestamp,
)
from .signing import check_readings_in_order, leaf_bytes, reading_id, verify_tree_head
from .suites import PublicKey, SuiteName, hash_fn

__all__ = [
    "DELIVERY_FORMAT",
    "DELIVERY_STEPS",
    "MAX_DELIVERY_READINGS",
    "DataDelivery",
    "DeliveryReport",
    "DeliverySelection",
    "DeliveryVerificationError",
    "content_hash",
    "parse_delivery",
    "verify_delivery",
]

DELIVERY_FORMAT: Final = "carbon-ledger/data-delivery/v2"
MAX_DELIVERY_READINGS: Final = 200_000
"""The most readings one delivery (hence one dataset) may hold (see
``benchmarks/README.md``, ``market_delivery``, for why this bound)."""
_MAX_KEYS: Final = 10_000
_MAX_PROOF: Final = 64 * (MAX_DELIVERY_READINGS + 1)
"""A leaf-set proof has at most one hash per level per gap between delivered leaves."""

DELIVERY_STEPS: tuple[str, ...] = (
    "log key",
    "tree head signature",
    "anchor",
    "chain",
    "device keys",
    "readings",
    "leaf-set proof",
    "content hash",
)
"""The verification steps, in the order they run (``docs/marketplace.md`` §5)."""


class DeliveryVerificationError(VerificationError):
    """A delivery failed a check: ``step`` names it (one of :data:`DELIVERY_STEPS`,
    or ``"format"``) and ``reading`` the reading at fault, when one is."""

    code = "delivery_verification_failed"

    def __init__(self, message: str, *, step: str = "format",
                 reading: str | None = None) -> None:
        where = "" if reading is None else f"reading {reading}: "
        super().__init__(f"{step}: {where}{message}")
        self.step = step
        self.reading = reading


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DeliverySelection(_Wire):
    """Which readings the dataset holds, exactly as its listing states them: those of
    ``devices`` measured in ``(period_from, period_to]`` among the log's first
    ``tree_size`` leaves."""

    devices: list[IdentifierStr] = Field(min_length=1, max_length=1000)
    period_from: UtcTimestamp
    period_to: UtcTimestamp
    tree_size: PositiveInt


class DataDelivery(_Wire):
    """What a buyer decrypts: the dataset's readings proven together against one
    anchored head."""

    format: Literal["carbon-ledger/data-delivery/v2"] = DELIVERY_FORMAT
    grant: IdentifierStr
    dataset: IdentifierStr
    content_hash: Hex32
    """MTH of the readings' leaf hashes in leaf order (see :func:`content_hash`)."""
    delivered_at: UtcTimestamp
    selection: DeliverySelection
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef
    device_keys: list[DeviceKeyInfo] = Field(min_length=1, max_length=_MAX_KEYS)
    """Every key that signed a delivered reading, once."""
    indices: list[SafeInt] = Field(min_length=1, max_length=MAX_DELIVERY_READINGS)
    """Leaf indices, strictly ascending; ``readings[i]`` is the leaf at ``indices[i]``."""
    readings: list[SignedReading] = Field(min_length=1, max_length=MAX_DELIVERY_READINGS)
    proof: list[Hex32] = Field(max_length=_MAX_PROOF)
    """The leaf-set proof of ``indices`` against ``signed_tree_head``."""

    @model_validator(mode="after")
    def _paired(self) -> DataDelivery:
        if len(self.indices) != len(self.readings):
            raise ValueError(f"{len(self.indices)} leaf indices for {len(self.readings)} "
                             "readings: one index per reading is needed")
        return self

    def reading_ids(self) -> Iterator[tuple[int, str, SignedReading]]:
        """``(leaf index, reading id, signed reading)`` of every reading, in leaf order
        (the id is derived from the leaf, under the dataset's prefix, as the ledger
        names it)."""
        h = hash_fn(self.signed_tree_head.tree_head.suite)
        prefix = self.dataset.partition("/")[0]
        for index, signed in zip(self.indices, self.readings, strict=True):
            yield index, reading_id(prefix, leaf_hash(h, leaf_bytes(signed))), signed


def content_hash(suite: SuiteName, leaf_hashes: list[bytes]) -> bytes:
    """A dataset's content hash: the RFC 9162 Merkle Tree Hash, with the log's hash
    function, of its readings' leaf hashes in increasing leaf index."""
    return root_from_leaf_hashes(hash_fn(suite), leaf_hashes)


def parse_delivery(data: str | bytes) -> DataDelivery:
    """Parse a delivery from JSON; :class:`DeliveryVerificationError` says what is wrong."""
    try:
        return DataDelivery.model_validate_json(data)
    except ValidationError as exc:
        raise DeliveryVerificationError(f"not a valid {DELIVERY_FORMAT} delivery: "
                                        f"{exc}") from None


@dataclass
class DeliveryReport:
    """What :func:`verify_delivery` checked; ``steps`` lists the passed step names."""

    readings: int = 0
    content_hash: str = ""
    chain_checked: bool = False
    proof_hashes: int = 0
    steps: list[str] = field(default_factory=list)


class _Check:
    """The running step: failures name it, passes are recorded in the report."""

    def __init__(self, report: DeliveryReport) -> None:
        self.report = report
        self.step = DELIVERY_STEPS[0]

    def begin(self, step: str) -> None:
        self.step = step

    def fail(self, message: str, *, reading: str | None = None) -> NoReturn:
        raise DeliveryVerificationError(message, step=self.step, reading=reading)

    def done(self) -> None:
        self.report.steps.append(self.step)


def verify_delivery(
    delivery: DataDelivery,
    *,
    expected_content_hash: str | None = None,
    chain: ChainView | None = None,
    trusted_log_keys: Collection[str] | None = None,
    min_confirmations: int = 1,
) -> DeliveryReport:
    """Run :data:`DELIVERY_STEPS` in order; raise at the first failure.

    ``expected_content_hash`` is the hash listed on chain for the dataset (hex); a
    ``chain`` view also checks the anchor on chain; ``trusted_log_keys`` pins log key
    ids (hex). The caller compares ``delivery.selection`` with the listing it bought
    (the ``data_listing`` record's ``selection``) if it holds that record.
    """
    report = DeliveryReport()
    c = _Check(report)
    sth = delivery.signed_tree_head
    head = sth.tree_head
    anchor = delivery.anchor

    c.begin("log key")
    lk = delivery.log_key
    try:
        log_pub = PublicKey.from_hex(lk.suite, lk.public_key)
    except ProtocolError as exc:
        c.fail(f"log key does not parse: {exc}")
    if log_pub.key_id != lk.key_id:
        c.fail(f"log key id is {lk.key_id}, the key's is {log_pub.key_id}")
    if (lk.suite, lk.key_id) != (head.suite, head.key_id):
        c.fail(f"the tree head names log key {head.suite}:{head.key_id}, the delivery "
               f"carries {lk.suite}:{lk.key_id}")
    if trusted_log_keys is not None and lk.key_id not in trusted_log_keys:
        c.fail(f"log key {lk.key_id} is not one of the trusted "
               f"{', '.join(sorted(trusted_log_keys))}")
    c.done()

    c.begin("tree head signature")
    try:
        verify_tree_head(sth, log_pub)
    except ProtocolError as exc:
        c.fail(str(exc))
    c.done()

    c.begin("anchor")
    key_hex = log_key(head.log_id).hex()
    if anchor.log_key != key_hex:
        c.fail(f"the anchor is for log key {anchor.log_key}, the tree head's log is {key_hex}")
    if (anchor.tree_size, anchor.root_hash) != (head.tree_size, head.root_hash):
        c.fail(f"the anchor holds root {anchor.root_hash} at size {anchor.tree_size}, the "
               f"tree head {head.root_hash} at size {head.tree_size}")
    c.done()

    c.begin("chain")
    if chain is not None:
        try:
            _check_chain(c, anchor, chain, min_confirmations)
        except ChainLookupError as exc:
            c.fail(f"chain look-up failed: {exc}")
        report.chain_checked = True
        c.done()

    c.begin("device keys")
    keys = _device_keys(c, delivery.device_keys)
    c.done()

    c.begin("readings")
    leaves = _readings(c, delivery, keys)
    c.done()

    c.begin("leaf-set proof")
    try:
        root = root_from_leaf_set(hash_fn(head.suite), head.tree_size,
                                  dict(zip(delivery.indices, leaves, strict=True)),
                                  [bytes.fromhex(p) for p in delivery.proof])
    except ProtocolError as exc:
        c.fail(f"the proof does not fit the {len(leaves)} delivered leaf indices ({exc}): "
               "a reading was added or removed, or the proof was altered")
    if root.hex() != head.root_hash:
        c.fail(f"the {len(leaves)} readings and the proof lead to root {root.hex()}, the "
               f"signed tree head has {head.root_hash}: a reading or a proof hash was "
               "altered, or a reading is not the leaf at its index")
    report.proof_hashes = len(delivery.proof)
    c.done()

    c.begin("content hash")
    computed = content_hash(head.suite, leaves).hex()
    if computed != delivery.content_hash:
        c.fail(f"the delivered readings hash to {computed}, the delivery says "
               f"{delivery.content_hash}")
    if expected_content_hash is not None and computed != expected_content_hash.lower():
        c.fail(f"the delivered readings hash to {computed}, the listing says "
               f"{expected_content_hash}: the delivery holds other readings than were listed")
    c.done()
    report.readings = len(leaves)
    report.content_hash = computed
    return report


def _check_chain(c: _Check, anchor: AnchorRef, chain: ChainView, min_conf: int) -> None:
    chain_id = chain.chain_id()
    if chain_id != anchor.chain_id:
        c.fail(f"the endpoint serves chain {chain_id}, the anchor is on {anchor.chain_id}")
    on_chain = chain.anchor_of(anchor.contract, bytes.fromhex(anchor.log_key), anchor.tree_size)
    if on_chain is None:
        c.fail(f"no anchor on chain for this log at tree size {anchor.tree_size}")
    if on_chain.root.hex() != anchor.root_hash:
        c.fail(f"the root anchored on chain is {on_chain.root.hex()}, the delivery's "
               f"{anchor.root_hash}")
    if on_chain.block_number != anchor.block_number:
        c.fail(f"the anchor is in block {on_chain.block_number} on chain, the delivery "
               f"says {anchor.block_number}")
    receipt = chain.receipt(anchor.tx_hash)
    if receipt is None or receipt.status != 1:
        c.fail(f"anchor transaction {anchor.tx_hash} is not mined successfully")
    if receipt.block_hash != anchor.block_hash:
        c.fail(f"the anchor transaction is in block {receipt.block_hash}, the delivery "
               f"says {anchor.block_hash}")
    canonical = chain.block_hash(anchor.block_number)
    if canonical != anchor.block_hash:
        c.fail(f"anchor block {anchor.block_hash} is not on the canonical chain ({canonical})")
    if chain.head_block() - anchor.block_number + 1 < min_conf:
        c.fail(f"the anchor has fewer than {min_conf} confirmations")


def _device_keys(c: _Check, infos: list[DeviceKeyInfo]
                 ) -> dict[str, tuple[DeviceKeyInfo, PublicKey]]:
    keys: dict[str, tuple[DeviceKeyInfo, PublicKey]] = {}
    for info in infos:
        try:
            pub = PublicKey.from_hex(info.suite, info.public_key)
        except ProtocolError as exc:
            c.fail(f"device key {info.key_id} does not parse: {exc}")
        if pub.key_id != info.key_id:
            c.fail(f"device key id is {info.key_id}, the key's is {pub.key_id}")
        if info.key_id in keys:
            c.fail(f"device key {info.key_id} is listed twice")
        keys[info.key_id] = (info, pub)
    return keys


def _readings(c: _Check, delivery: DataDelivery,
              keys: dict[str, tuple[DeviceKeyInfo, PublicKey]]) -> list[bytes]:
    """Check each reading on its own (index order, key, signature, domain, selection,
    key validity); return the leaf hashes. Signatures are checked in threads, and the
    failure reported is the first a loop in this order meets."""
    head = delivery.signed_tree_head.tree_head
    anchor = delivery.anchor
    sel = delivery.selection
    devices = set(sel.devices)
    domain = (anchor.chain_id, anchor.contract, head.log_id)
    at = anchor.block_timestamp

    def where(pos: int) -> str:
        r = delivery.readings[pos].reading
        return f"leaf {delivery.indices[pos]} ({r.device} #{r.seq})"

    def before(pos: int) -> tuple[SignedReading, PublicKey]:
        index, signed = delivery.indices[pos], delivery.readings[pos]
        r = signed.reading
        if pos and index <= delivery.indices[pos - 1]:
            c.fail(f"leaf index {index} does not follow {delivery.indices[pos - 1]}: readings "
                   "must be in strictly increasing leaf order, each once", reading=where(pos))
        if r.device not in devices or not sel.period_from < r.measured_at <= sel.period_to \
                or index >= sel.tree_size:
            c.fail(f"measured at {r.measured_at} is outside the dataset (devices "
                   f"{', '.join(sel.devices[:5])}{'…' if len(sel.devices) > 5 else ''}, "
                   f"{sel.period_from}..{sel.period_to}, leaves below {sel.tree_size})",
                   reading=where(pos))
        found = keys.get(r.key_id)
        if found is None:
            c.fail(f"the delivery carries no device key {r.key_id}", reading=where(pos))
        info, pub = found
        if (info.device, info.suite) != (r.device, r.suite):
            c.fail(f"key {r.key_id} is a {info.suite} key of {info.device}", reading=where(pos))
        return signed, pub

    def after(pos: int) -> None:
        r = delivery.readings[pos].reading
        dom = r.domain
        if (dom.chain_id, dom.contract, dom.log_id) != domain:
            c.fail(f"signed for chain {dom.chain_id}, contract {dom.contract}, log "
                   f"{dom.log_id}; the delivery's are {domain[0]}, {domain[1]}, {domain[2]}",
                   reading=where(pos))
        info = keys[r.key_id][0]
        if not info.valid_at(at):
            c.fail(f"key {r.key_id} (valid {info.valid_from}..{info.revoked_at or ''}) was "
                   f"not valid at the anchor's block time {at}", reading=where(pos))

    def bad_signature(pos: int, exc: ProtocolError) -> NoReturn:
        c.fail(str(exc), reading=where(pos))

    check_readings_in_order(len(delivery.readings), before, after, bad_signature)
    h = hash_fn(head.suite)
    return [leaf_hash(h, leaf_bytes(signed)) for signed in delivery.readings]
