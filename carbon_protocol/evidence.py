"""The offline evidence bundle: one file carrying an enterprise's whole chain for a period.

A regulator or a bank wants one file it can check without asking the ledger anything:
the readings with their signatures and the device keys, the leaves' proofs, the log's
tree heads with their anchors and the consistency proofs that make them one
append-only log, the rule version, the gateway-signed inventories, the reports and the
log records (attestations, financing codes, grants...). :class:`EvidenceBundle` is that
file (``carbon-ledger/evidence/v1``, specified in ``docs/evidence-bundle.md``) and
:func:`verify_evidence` checks it in a fixed order (:data:`EVIDENCE_STEPS`), stopping at
the first failure and naming it with the expected and found values.

Everything is proven against ONE tree head, the last of ``heads`` (the latest final
anchor when the bundle was exported). The earlier heads are every final anchor from the
first one that covers a leaf of the bundle, and consecutive heads are linked by RFC 9162
consistency proofs: so the verifier knows the first anchor that covered each leaf (the
time a device key must have been valid at, the anchor a report cites) and that no head
the bundle shows was forked from the others.

Readings are proven together by one leaf-set proof (the hashes of the maximal subtrees
holding none of them): a month of 20 meters is ~60k readings, and per-reading paths
would be ~2 KB each. Inventories, reports and records are few and carry their own
audit paths, so a failure names the item.

Two parts of the check need the accounting rules, which live outside this package
(``carbon_rules`` depends on it, not the other way round): re-deriving each inventory
from its readings and re-building each report from its inventories. A caller passes a
:class:`Recomputer` for them (``carbon_rules.evidence_check.RulesRecomputer``, which
``carbon-ledger verify`` uses); without one those steps are reported ``not-checked``,
never passed. Log records are checked per format by
``carbon_protocol.evidence_records.RECORD_CHECKERS``; a record of a format nobody
registered is reported as not checked.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, NoReturn, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .canonical import canonical_json
from .chain_view import ChainLookupError, ChainView, log_key
from .errors import ProtocolError, VerificationError
from .identifiers import IdentifierStr
from .inventory import (
    FixedStr,
    Inventory,
    Period,
    SignedInventory,
    inventory_id,
    inventory_leaf_bytes,
    root_from_leaf_set,
    verify_inventory_signature,
)
from .merkle import leaf_hash, root_from_inclusion_proof, verify_consistency
from .models import (
    AnchorRef,
    DeviceKeyInfo,
    Hex32,
    PublicKeyInfo,
    Reading,
    SafeInt,
    SignedReading,
    SignedTreeHead,
    UtcTimestamp,
    parse_utc,
)
from .signing import check_readings_in_order, leaf_bytes, verify_tree_head
from .suites import PublicKey, hash_fn

__all__ = [
    "EVIDENCE_FORMAT",
    "EVIDENCE_STEPS",
    "AnchoredHead",
    "CheckContext",
    "EvidenceBundle",
    "EvidenceCheckError",
    "EvidenceReadings",
    "EvidenceReport",
    "InventoryItem",
    "MethodologyDoc",
    "Recomputer",
    "RecordChecker",
    "RecordItem",
    "ReportItem",
    "StepResult",
    "record_format",
    "verify_evidence",
]

EVIDENCE_FORMAT: Literal["carbon-ledger/evidence/v1"] = "carbon-ledger/evidence/v1"

EVIDENCE_STEPS: tuple[str, ...] = (
    "log key",
    "tree heads",
    "consistency",
    "anchors",
    "chain",
    "device keys",
    "reading signatures",
    "reading inclusion",
    "rule version",
    "inventory signatures",
    "inventory inclusion",
    "inventory readings",
    "inventory recomputation",
    "report inclusion",
    "report recomputation",
    "log record inclusion",
    "log record formats",
)
"""The verification steps, in the order they run (numbered from 1)."""

_MAX_ITEMS = 100_000
_MAX_READINGS = 50_000_000


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# -- the bundle ---------------------------------------------------------------------------


class AnchoredHead(_Wire):
    """A signed tree head and the anchor transaction that put its root on chain."""

    signed_tree_head: SignedTreeHead
    anchor: AnchorRef


class EvidenceReadings(_Wire):
    """Every reading the bundle's inventories name, and one leaf-set proof for all of
    them against the last head (``carbon_protocol.inventory.leaf_set_proof_nodes``)."""

    indices: list[SafeInt] = Field(max_length=_MAX_READINGS)
    """Leaf indices, strictly ascending; ``readings[i]`` is the leaf at ``indices[i]``."""
    readings: list[SignedReading] = Field(max_length=_MAX_READINGS)
    proof: list[Hex32] = Field(max_length=_MAX_READINGS)


class InventoryItem(_Wire):
    """A logged inventory with the gateway key that signed it and its audit path."""

    inventory_id: IdentifierStr
    signed_inventory: SignedInventory
    gateway_key: PublicKeyInfo
    leaf_index: SafeInt
    inclusion_proof: list[Hex32] = Field(max_length=64)


class ReportItem(_Wire):
    """A logged report (``carbon-ledger/inventory-report/v1``, as JSON: its model lives
    with the accounting rules) and its audit path."""

    report_id: IdentifierStr
    report: dict[str, Any]
    leaf_index: SafeInt
    inclusion_proof: list[Hex32] = Field(max_length=64)


class RecordItem(_Wire):
    """A log record: one JSON document whose RFC 8785 bytes are one leaf."""

    record_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    leaf_index: SafeInt
    document: dict[str, Any]
    inclusion_proof: list[Hex32] = Field(max_length=64)


RuleName = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{0,32}$")]


class MethodologyFactor(_Wire):
    """A published factor (``IRuleRegistry.Factor``), fixed point as decimal text."""

    id: RuleName
    value: FixedStr
    min: FixedStr
    max: FixedStr
    unit: RuleName
    region: RuleName
    year: SafeInt
    source: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class MethodologyVersionDoc(_Wire):
    """One published version of a methodology, as the ``RuleRegistry`` holds it."""

    version: Annotated[int, Field(ge=1, le=2**32 - 1)]
    effective_from: SafeInt
    published_at: SafeInt
    publisher: Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
    parameters_hash: Hex32
    gwp_set: RuleName
    document: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    factors: list[MethodologyFactor] = Field(max_length=1000)


class MethodologyDoc(_Wire):
    """Every published version of one methodology (``carbon_rules.inventory_rules.
    methodology_to_json``): the rule an inventory names, carried so it is recomputed
    offline; its parameters hash binds it to the registry on chain."""

    id: RuleName
    versions: list[MethodologyVersionDoc] = Field(min_length=1, max_length=10_000)


class EvidenceBundle(_Wire):
    """One enterprise's evidence for one period (``docs/evidence-bundle.md``)."""

    format: Literal["carbon-ledger/evidence/v1"] = EVIDENCE_FORMAT
    enterprise: IdentifierStr
    period: Period
    exported_at: UtcTimestamp
    log_key: PublicKeyInfo
    heads: list[AnchoredHead] = Field(min_length=1, max_length=1_000_000)
    """Ascending tree sizes; everything is proven against the last one."""
    consistency: list[list[Hex32]] = Field(max_length=1_000_000)
    """``consistency[i]`` proves ``heads[i]`` is a prefix of ``heads[i + 1]``."""
    device_keys: list[DeviceKeyInfo] = Field(max_length=_MAX_ITEMS)
    readings: EvidenceReadings
    rules: list[MethodologyDoc] = Field(max_length=1000)
    inventories: list[InventoryItem] = Field(max_length=_MAX_ITEMS)
    reports: list[ReportItem] = Field(max_length=_MAX_ITEMS)
    records: list[RecordItem] = Field(max_length=_MAX_ITEMS)


# -- extension points ---------------------------------------------------------------------


class EvidenceCheckError(VerificationError):
    """A check outside this package's own steps refused something (a recomputation, a
    record format's checker); the message says what differed."""

    code = "evidence_check_failed"

    def __init__(self, message: str, *, expected: object = None, found: object = None) -> None:
        super().__init__(message)
        self.expected = None if expected is None else str(expected)
        self.found = None if found is None else str(found)


class Recomputer(Protocol):
    """Re-derives what needs the accounting rules; raises :class:`EvidenceCheckError`."""

    def rule(self, methodology: MethodologyDoc, registries: Sequence[tuple[int, str]]) -> None:
        """Check the methodology's factors against each version's parameters hash and,
        if it can reach a chain, that each version is what the ``RuleRegistry`` at each
        ``(chain_id, address)`` the inventories name publishes."""

    def inventory(self, inventory: Inventory, methodology: MethodologyDoc,
                  readings: Mapping[str, Sequence[tuple[int, Reading]]]) -> None:
        """Recompute ``inventory`` from its readings (device -> ``(leaf, reading)`` in
        leaf order) with ``methodology``; raise unless every field matches."""

    def report(self, report: Mapping[str, Any],
               inventories: Sequence[tuple[InventoryItem, AnchorRef | None]]) -> None:
        """Rebuild ``report`` from the inventories it names (with the anchor the report
        cites for each); raise unless the bytes match."""


@dataclass(frozen=True)
class CheckContext:
    """What a record checker may rely on: already verified by the earlier steps."""

    bundle: EvidenceBundle
    log_public_key: PublicKey
    anchored_at: Callable[[int], AnchorRef]
    """The first head's anchor covering a leaf index."""
    now: datetime | None


RecordChecker = Callable[[RecordItem, CheckContext], str | None]
"""Checks one record of its format; raises :class:`EvidenceCheckError` (or any
:class:`ProtocolError`) when it fails, and may return a note (an expired code)."""


def record_format(document: Mapping[str, Any]) -> str | None:
    """A record's format: its ``format`` field, or for a signed wrapper
    (``{"<object>": {"format": ...}, "signature": ...}``) the wrapped object's."""
    fmt = document.get("format")
    if isinstance(fmt, str):
        return fmt
    for value in document.values():
        if isinstance(value, dict) and isinstance(value.get("format"), str):
            return str(value["format"])
    return None


# -- the report ---------------------------------------------------------------------------

Status = Literal["pass", "fail", "not-checked"]


@dataclass
class StepResult:
    """One step's outcome; ``expected``/``found`` are set when two values disagreed."""

    number: int
    name: str
    status: Status
    detail: str = ""
    expected: str | None = None
    found: str | None = None


@dataclass
class EvidenceReport:
    """Every step in order; after the first failure the rest are ``not-checked``."""

    steps: list[StepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Facts that are not failures (an expired financing code in an old bundle)."""

    @property
    def ok(self) -> bool:
        """No step failed (some may not have been checked)."""
        return self.first_failure is None

    @property
    def first_failure(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "fail"), None)

    def summary(self) -> str:
        """One line: the verdict and the counts per status."""
        counts = {s: sum(1 for x in self.steps if x.status == s)
                  for s in ("pass", "fail", "not-checked")}
        failed = self.first_failure
        head = ("OK" if failed is None else
                f"step {failed.number} ({failed.name}) failed: {failed.detail}"
                + (f": expected {failed.expected}, found {failed.found}"
                   if failed.expected is not None or failed.found is not None else ""))
        return (f"{head} ({counts['pass']} passed, {counts['fail']} failed, "
                f"{counts['not-checked']} not checked)")


class _Failed(Exception):
    def __init__(self, detail: str, expected: object = None, found: object = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expected = None if expected is None else str(expected)
        self.found = None if found is None else str(found)


class _Skip(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _fail(detail: str, expected: object = None, found: object = None) -> NoReturn:
    raise _Failed(detail, expected, found)


# -- the verifier -------------------------------------------------------------------------


class _Verifier:
    def __init__(self, bundle: EvidenceBundle, chain: ChainView | None,
                 recomputer: Recomputer | None, min_confirmations: int,
                 now: datetime | None) -> None:
        self.b = bundle
        self.chain = chain
        self.recomputer = recomputer
        self.min_confirmations = min_confirmations
        self.now = now
        self.last = bundle.heads[-1].signed_tree_head.tree_head
        self.h = hash_fn(self.last.suite)
        self.sizes = [x.signed_tree_head.tree_head.tree_size for x in bundle.heads]
        self.log_pub: PublicKey | None = None
        self.readings: dict[int, SignedReading] = {}
        self.notes: list[str] = []

    # helpers
    def anchored_at(self, index: int) -> AnchorRef:
        """The anchor of the first head covering leaf ``index``."""
        return self.b.heads[bisect_right(self.sizes, index)].anchor

    def included(self, what: str, index: int, leaf: bytes, path: Sequence[str]) -> None:
        size = self.last.tree_size
        try:
            root = root_from_inclusion_proof(self.h, index, size, leaf,
                                             [bytes.fromhex(p) for p in path])
        except ProtocolError as exc:
            _fail(f"{what}: inclusion proof is malformed: {exc}")
        if root.hex() != self.last.root_hash:
            _fail(f"{what}: the inclusion proof of leaf {index} leads to another root",
                  self.last.root_hash, root.hex())

    def recompute(self, what: str, run: Callable[[], None]) -> None:
        try:
            run()
        except EvidenceCheckError as exc:
            _fail(f"{what}: {exc}", exc.expected, exc.found)
        except ProtocolError as exc:
            _fail(f"{what}: {exc}")

    # 1
    def log_key(self) -> None:
        lk = self.b.log_key
        try:
            pub = PublicKey.from_hex(lk.suite, lk.public_key)
        except ProtocolError as exc:
            _fail(f"log key does not parse: {exc}")
        if pub.key_id != lk.key_id:
            _fail("log key id is not derived from the key", pub.key_id, lk.key_id)
        self.log_pub = pub

    # 2
    def tree_heads(self) -> None:
        assert self.log_pub is not None
        previous = -1
        for n, item in enumerate(self.b.heads):
            head = item.signed_tree_head.tree_head
            if (head.log_id, head.suite, head.key_id) != (
                    self.last.log_id, self.log_pub.suite, self.log_pub.key_id):
                _fail(f"head {n} is not of this log and key",
                      f"{self.last.log_id} {self.log_pub.suite}:{self.log_pub.key_id}",
                      f"{head.log_id} {head.suite}:{head.key_id}")
            if head.tree_size <= previous:
                _fail(f"head {n} does not grow the tree", f"> {previous}", head.tree_size)
            previous = head.tree_size
            try:
                verify_tree_head(item.signed_tree_head, self.log_pub)
            except ProtocolError as exc:
                _fail(f"head {n} (size {head.tree_size}): {exc}")

    # 3
    def consistency(self) -> None:
        heads = self.b.heads
        if len(self.b.consistency) != len(heads) - 1:
            _fail("one consistency proof is needed between each two consecutive heads",
                  len(heads) - 1, len(self.b.consistency))
        for n, proof in enumerate(self.b.consistency):
            a = heads[n].signed_tree_head.tree_head
            b = heads[n + 1].signed_tree_head.tree_head
            try:
                verify_consistency(self.h, a.tree_size, b.tree_size,
                                   [bytes.fromhex(p) for p in proof],
                                   bytes.fromhex(a.root_hash), bytes.fromhex(b.root_hash))
            except ProtocolError as exc:
                _fail(f"head of size {a.tree_size} is not a prefix of the head of size "
                      f"{b.tree_size}: {exc}")

    # 4
    def anchors(self) -> None:
        key_hex = log_key(self.last.log_id).hex()
        first = self.b.heads[0].anchor
        for item in self.b.heads:
            head, anchor = item.signed_tree_head.tree_head, item.anchor
            where = f"anchor of size {head.tree_size}"
            if anchor.log_key != key_hex:
                _fail(f"{where} is for another log", key_hex, anchor.log_key)
            if anchor.tree_size != head.tree_size:
                _fail(f"{where} names another tree size", head.tree_size, anchor.tree_size)
            if anchor.root_hash != head.root_hash:
                _fail(f"{where}: anchored root differs from the tree head", head.root_hash,
                      anchor.root_hash)
            if (anchor.chain_id, anchor.contract) != (first.chain_id, first.contract):
                _fail(f"{where} is on another chain or contract",
                      f"{first.chain_id} {first.contract}",
                      f"{anchor.chain_id} {anchor.contract}")

    # 5
    def on_chain(self) -> None:
        if self.chain is None:
            raise _Skip("no chain endpoint given (--rpc)")
        try:
            self._on_chain(self.chain)
        except ChainLookupError as exc:
            _fail(f"chain look-up failed: {exc}")

    def _on_chain(self, chain: ChainView) -> None:
        chain_id = chain.chain_id()
        head_block = chain.head_block()
        for item in self.b.heads:
            a = item.anchor
            where = f"anchor of size {a.tree_size}"
            if chain_id != a.chain_id:
                _fail("the endpoint serves another chain", a.chain_id, chain_id)
            held = chain.anchor_of(a.contract, bytes.fromhex(a.log_key), a.tree_size)
            if held is None:
                _fail(f"{where}: nothing anchored on chain", a.root_hash, "nothing")
            if held.root.hex() != a.root_hash or held.block_number != a.block_number:
                _fail(f"{where}: the contract holds another root or block",
                      f"{a.root_hash} in block {a.block_number}",
                      f"{held.root.hex()} in block {held.block_number}")
            receipt = chain.receipt(a.tx_hash)
            if receipt is None or receipt.status != 1 or receipt.block_hash != a.block_hash:
                _fail(f"{where}: the transaction is not mined in the named block",
                      a.block_hash, None if receipt is None else receipt.block_hash)
            canonical = chain.block_hash(a.block_number)
            if canonical != a.block_hash:
                _fail(f"{where}: its block is not on the canonical chain", a.block_hash,
                      canonical)
            if head_block - a.block_number + 1 < self.min_confirmations:
                _fail(f"{where} is not confirmed deeply enough",
                      f">= {self.min_confirmations}", head_block - a.block_number + 1)

    # 6
    def device_keys(self) -> dict[str, tuple[DeviceKeyInfo, PublicKey]]:
        if not self.b.readings.readings and not self.b.device_keys:
            raise _Skip("the bundle holds no readings")
        keys: dict[str, tuple[DeviceKeyInfo, PublicKey]] = {}
        for info in self.b.device_keys:
            try:
                pub = PublicKey.from_hex(info.suite, info.public_key)
            except ProtocolError as exc:
                _fail(f"device key {info.key_id} does not parse: {exc}")
            if pub.key_id != info.key_id:
                _fail("device key id is not derived from the key", pub.key_id, info.key_id)
            if info.key_id in keys:
                _fail(f"device key {info.key_id} is listed twice")
            keys[info.key_id] = (info, pub)
        for signed in self.b.readings.readings:
            r = signed.reading
            found = keys.get(r.key_id)
            if found is None:
                _fail(f"the bundle carries no key {r.key_id} for {r.device} #{r.seq}",
                      r.key_id, "nothing")
            if (found[0].device, found[0].suite) != (r.device, r.suite):
                _fail(f"key {r.key_id} is not a {r.suite} key of {r.device}",
                      f"{r.device} {r.suite}", f"{found[0].device} {found[0].suite}")
        return keys

    # 7
    def reading_signatures(self, keys: Mapping[str, tuple[DeviceKeyInfo, PublicKey]]) -> None:
        ev = self.b.readings
        if not ev.readings and not ev.indices:
            raise _Skip("the bundle holds no readings")
        if len(ev.indices) != len(ev.readings):
            _fail("one reading per leaf index is needed", len(ev.indices), len(ev.readings))
        anchor0 = self.b.heads[-1].anchor
        domain = (anchor0.chain_id, anchor0.contract, self.last.log_id)

        def key_of(pos: int) -> tuple[SignedReading, PublicKey]:
            signed = ev.readings[pos]
            return signed, keys[signed.reading.key_id][1]

        def bad_signature(pos: int, exc: ProtocolError) -> NoReturn:
            _fail(f"{self._where(pos)}: {exc}")

        check_readings_in_order(len(ev.readings), key_of,
                                lambda pos: self._reading_facts(pos, keys, domain),
                                bad_signature)

    def _where(self, pos: int) -> str:
        r = self.b.readings.readings[pos].reading
        return f"leaf {self.b.readings.indices[pos]} ({r.device} #{r.seq})"

    def _reading_facts(self, pos: int, keys: Mapping[str, tuple[DeviceKeyInfo, PublicKey]],
                       domain: tuple[int, str, str]) -> None:
        """Step 7 for one reading, but its signature: deployment, position, key validity."""
        index, r = self.b.readings.indices[pos], self.b.readings.readings[pos].reading
        info = keys[r.key_id][0]
        dom = r.domain
        if (dom.chain_id, dom.contract, dom.log_id) != domain:
            _fail(f"{self._where(pos)} was signed for another deployment", domain,
                  (dom.chain_id, dom.contract, dom.log_id))
        if index >= self.last.tree_size:
            _fail(f"{self._where(pos)} lies beyond the last head", f"< {self.last.tree_size}",
                  index)
        at = self.anchored_at(index).block_timestamp
        if not info.valid_at(at):
            _fail(f"{self._where(pos)}: key {r.key_id} was not valid when the leaf was first "
                  "anchored", f"{info.valid_from}..{info.revoked_at or ''}",
                  f"block time {at}")

    # 8
    def reading_inclusion(self) -> None:
        ev = self.b.readings
        if not ev.indices:
            if ev.proof:
                _fail("a proof without readings", 0, len(ev.proof))
            raise _Skip("the bundle holds no readings")
        if any(b <= a for a, b in zip(ev.indices, ev.indices[1:], strict=False)):
            _fail("leaf indices must be strictly ascending")
        leaves = {i: leaf_hash(self.h, leaf_bytes(r))
                  for i, r in zip(ev.indices, ev.readings, strict=True)}
        try:
            root = root_from_leaf_set(self.h, self.last.tree_size, leaves,
                                      [bytes.fromhex(p) for p in ev.proof])
        except ProtocolError as exc:
            _fail(f"the readings' leaf-set proof is malformed: {exc}")
        if root.hex() != self.last.root_hash:
            _fail("the readings and their leaf-set proof lead to another root",
                  self.last.root_hash, root.hex())
        self.readings = dict(zip(ev.indices, ev.readings, strict=True))

    # 9
    def rule_version(self) -> dict[str, MethodologyDoc]:
        if not self.b.inventories and not self.b.rules:
            raise _Skip("the bundle holds no inventories")
        rules: dict[str, MethodologyDoc] = {}
        for doc in self.b.rules:
            if doc.id in rules:
                _fail(f"methodology {doc.id} is carried twice")
            rules[doc.id] = doc
        for item in self.b.inventories:
            inv = item.signed_inventory.inventory
            rule = inv.rule
            found = rules.get(rule.methodology_id)
            if found is None:
                _fail(f"{item.inventory_id} names methodology {rule.methodology_id}, which "
                      "the bundle does not carry", rule.methodology_id, sorted(rules))
            doc = found
            if not 1 <= rule.version <= len(doc.versions) or (
                    doc.versions[rule.version - 1].version != rule.version):
                _fail(f"{item.inventory_id} names version {rule.version} of "
                      f"{rule.methodology_id}, which the bundle does not carry")
            version = doc.versions[rule.version - 1]
            if version.parameters_hash != rule.parameters_hash:
                _fail(f"{item.inventory_id}: parameters hash of {rule.methodology_id} "
                      f"v{rule.version}", rule.parameters_hash, version.parameters_hash)
            start = int(parse_utc(inv.period.start).timestamp())
            end = int(parse_utc(inv.period.end).timestamp())
            following = doc.versions[rule.version:]
            if version.effective_from > start or (following
                                                  and following[0].effective_from < end):
                _fail(f"{item.inventory_id}: {rule.methodology_id} v{rule.version} is not in "
                      f"force on the whole period {inv.period.label}",
                      f"{inv.period.start}..{inv.period.end}",
                      f"from {version.effective_from}"
                      + (f" to {following[0].effective_from}" if following else ""))
        if self.recomputer is not None:
            for doc in rules.values():
                where = sorted({(i.signed_inventory.inventory.rule.chain_id,
                                 i.signed_inventory.inventory.rule.registry)
                                for i in self.b.inventories
                                if i.signed_inventory.inventory.rule.methodology_id == doc.id})
                self.recompute(f"methodology {doc.id}",
                               partial(self.recomputer.rule, doc, where))
        return rules

    # 10
    def inventory_signatures(self) -> None:
        if not self.b.inventories:
            raise _Skip("the bundle holds no inventories")
        anchor = self.b.heads[-1].anchor
        domain = (anchor.chain_id, anchor.contract, self.last.log_id)
        for item in self.b.inventories:
            inv = item.signed_inventory.inventory
            try:
                key = PublicKey.from_hex(item.gateway_key.suite, item.gateway_key.public_key)
            except ProtocolError as exc:
                _fail(f"{item.inventory_id}: gateway key does not parse: {exc}")
            if key.key_id != item.gateway_key.key_id:
                _fail(f"{item.inventory_id}: gateway key id is not derived from the key",
                      key.key_id, item.gateway_key.key_id)
            try:
                verify_inventory_signature(item.signed_inventory, key)
            except ProtocolError as exc:
                _fail(f"{item.inventory_id}: {exc}")
            d = inv.domain
            if (d.chain_id, d.contract, d.log_id) != domain:
                _fail(f"{item.inventory_id} was signed for another deployment", domain,
                      (d.chain_id, d.contract, d.log_id))

    # 11
    def inventory_inclusion(self) -> None:
        if not self.b.inventories:
            raise _Skip("the bundle holds no inventories")
        for item in self.b.inventories:
            leaf = leaf_hash(self.h, inventory_leaf_bytes(item.signed_inventory))
            prefix = item.inventory_id.rsplit("/", 1)[0]
            if inventory_id(prefix, leaf) != item.inventory_id:
                _fail("inventory id is not derived from its leaf", inventory_id(prefix, leaf),
                      item.inventory_id)
            self.included(item.inventory_id, item.leaf_index, leaf, item.inclusion_proof)

    # 12
    def inventory_readings(self) -> None:
        if not self.b.inventories and not self.readings:
            raise _Skip("the bundle holds no inventories")
        named: dict[int, str] = {}
        bundle_start = parse_utc(self.b.period.start)
        bundle_end = parse_utc(self.b.period.end)
        reported = {row.get("inventory") for r in self.b.reports
                    for row in r.report.get("anchors", []) if isinstance(row, dict)}
        for item in self.b.inventories:
            inv = item.signed_inventory.inventory
            start, end = parse_utc(inv.period.start), parse_utc(inv.period.end)
            if not (start < bundle_end and bundle_start < end) and (
                    item.inventory_id not in reported):
                _fail(f"{item.inventory_id} covers {inv.period.label}, outside the bundle's "
                      "period, and no report of the bundle names it", self.b.period.label,
                      inv.period.label)
            for line in inv.lines:
                rs = line.readings
                for i in rs.leaf_indices():
                    where = f"{item.inventory_id} line {line.line} ({rs.device}) leaf {i}"
                    named.setdefault(i, where)
                    signed = self.readings.get(i)
                    if signed is None:
                        _fail(f"{where}: the bundle lacks this reading", f"leaf {i}",
                              "nothing")
                    r = signed.reading
                    if r.device != rs.device or not rs.first_seq <= r.seq <= rs.last_seq:
                        _fail(f"{where} is not a reading of {rs.device} in "
                              f"{rs.first_seq}..{rs.last_seq}", rs.device,
                              f"{r.device} #{r.seq}")
                    if not start < parse_utc(r.measured_at) <= end:
                        _fail(f"{where} was measured outside {inv.period.label}",
                              f"{inv.period.start}..{inv.period.end}", r.measured_at)
                    if (r.quantity, r.unit) != (rs.quantity, rs.unit):
                        _fail(f"{where} measures another quantity",
                              f"{rs.quantity} {rs.unit}", f"{r.quantity} {r.unit}")
        extra = sorted(set(self.readings) - set(named))
        if extra:
            r = self.readings[extra[0]].reading
            _fail(f"the bundle holds {len(extra)} reading(s) no inventory names, first leaf "
                  f"{extra[0]} ({r.device} #{r.seq})", "none", f"leaf {extra[0]}")

    # 13
    def inventory_recomputation(self, rules: Mapping[str, MethodologyDoc]) -> None:
        if self.recomputer is None:
            raise _Skip("no recomputer given (the accounting rules live in carbon_rules)")
        if not self.b.inventories:
            raise _Skip("the bundle holds no inventories")
        recomputer = self.recomputer
        for item in self.b.inventories:
            inv = item.signed_inventory.inventory
            by_device: dict[str, list[tuple[int, Reading]]] = {}
            for line in inv.lines:
                by_device[line.readings.device] = [
                    (i, self.readings[i].reading) for i in line.readings.leaf_indices()]
            doc = rules[inv.rule.methodology_id]
            self.recompute(item.inventory_id,
                           partial(recomputer.inventory, inv, doc, by_device))

    # 14
    def report_inclusion(self) -> list[list[tuple[InventoryItem, AnchorRef | None]]]:
        if not self.b.reports:
            raise _Skip("the bundle holds no reports")
        by_id = {i.inventory_id: i for i in self.b.inventories}
        cited_all = []
        for item in self.b.reports:
            data = canonical_json(item.report)
            prefix = item.report_id.rsplit("/", 1)[0]
            derived = f"{prefix}/rpt.{self.h(data)[:16].hex()}"
            if derived != item.report_id:
                _fail("report id is not derived from the report's hash", derived,
                      item.report_id)
            self.included(item.report_id, item.leaf_index, leaf_hash(self.h, data),
                          item.inclusion_proof)
            enterprise = item.report.get("enterprise")
            if not isinstance(enterprise, dict) or enterprise.get("id") != self.b.enterprise:
                _fail(f"{item.report_id} is another enterprise's report", self.b.enterprise,
                      None if not isinstance(enterprise, dict) else enterprise.get("id"))
            rows = item.report.get("anchors")
            if not isinstance(rows, list) or not rows:
                _fail(f"{item.report_id} names no inventory", "anchors", rows)
            cited = []
            for row in rows:
                name = row.get("inventory") if isinstance(row, dict) else None
                inv = by_id.get(str(name))
                if inv is None:
                    _fail(f"{item.report_id} names inventory {name}, which the bundle lacks",
                          name, "nothing")
                if row.get("leaf_index") != inv.leaf_index:
                    _fail(f"{item.report_id} cites {name} at another leaf", inv.leaf_index,
                          row.get("leaf_index"))
                anchor = None
                if row.get("anchor") is not None:
                    try:
                        anchor = AnchorRef.model_validate(row["anchor"])
                    except ValidationError:
                        _fail(f"{item.report_id} cites a malformed anchor for {name}")
                    first = self.anchored_at(inv.leaf_index)
                    if anchor != first:
                        _fail(f"{item.report_id} cites another anchor for {name} than the "
                              "first that covered it", first.tx_hash, anchor.tx_hash)
                cited.append((inv, anchor))
            cited_all.append(cited)
        return cited_all

    # 15
    def report_recomputation(
            self, cited: Sequence[Sequence[tuple[InventoryItem, AnchorRef | None]]]) -> None:
        if self.recomputer is None:
            raise _Skip("no recomputer given (the report structure lives in carbon_rules)")
        if not self.b.reports:
            raise _Skip("the bundle holds no reports")
        recomputer = self.recomputer
        for item, inventories in zip(self.b.reports, cited, strict=True):
            self.recompute(item.report_id, partial(recomputer.report, item.report, inventories))

    # 16
    def record_inclusion(self) -> None:
        if not self.b.records:
            raise _Skip("the bundle holds no log records")
        seen: set[str] = set()
        for item in self.b.records:
            if item.record_id in seen:
                _fail(f"record {item.record_id} is carried twice")
            seen.add(item.record_id)
            leaf = leaf_hash(self.h, canonical_json(item.document))
            self.included(f"record {item.record_id}", item.leaf_index, leaf,
                          item.inclusion_proof)

    # 17
    def record_formats(self) -> None:
        if not self.b.records:
            raise _Skip("the bundle holds no log records")
        from .evidence_records import RECORD_CHECKERS  # it imports this module's types

        assert self.log_pub is not None
        ctx = CheckContext(self.b, self.log_pub, self.anchored_at, self.now)
        unchecked: list[str] = []
        for item in self.b.records:
            fmt = record_format(item.document)
            checker = None if fmt is None else RECORD_CHECKERS.get(fmt)
            if checker is None:
                unchecked.append(f"{item.record_id} ({fmt or item.kind})")
                continue
            try:
                note = checker(item, ctx)
            except EvidenceCheckError as exc:
                _fail(f"record {item.record_id} ({fmt}): {exc}", exc.expected, exc.found)
            except ProtocolError as exc:
                _fail(f"record {item.record_id} ({fmt}): {exc}")
            if note:
                self.notes.append(note)
        if unchecked:
            raise _Skip(f"{len(unchecked)} record(s) of formats without a checker: "
                        + ", ".join(unchecked[:5]) + (" ..." if len(unchecked) > 5 else ""))


def verify_evidence(
    bundle: EvidenceBundle,
    *,
    chain: ChainView | None = None,
    recomputer: Recomputer | None = None,
    min_confirmations: int = 1,
    now: datetime | None = None,
    on_step: Callable[[int, str], None] | None = None,
) -> EvidenceReport:
    """Check ``bundle`` step by step (:data:`EVIDENCE_STEPS`); never raises for a bad
    bundle: the report says which step failed first, with expected and found values.

    ``chain`` adds the on-chain look-up of every anchor (step 5); ``recomputer``
    re-derives inventories and reports (steps 13 and 15, and the factors of step 9).
    ``now`` (aware) is the time financing codes' expiry is noted against.
    ``on_step(number, name)`` is told as each step starts (a month's bundle takes tens of
    seconds, so a command line can show where it is).
    """
    v = _Verifier(bundle, chain, recomputer, min_confirmations, now)
    state: dict[str, Any] = {}
    actions: list[Callable[[], object]] = [
        v.log_key, v.tree_heads, v.consistency, v.anchors, v.on_chain,
        lambda: state.__setitem__("keys", v.device_keys()),
        lambda: v.reading_signatures(state.get("keys", {})),
        v.reading_inclusion,
        lambda: state.__setitem__("rules", v.rule_version()),
        v.inventory_signatures, v.inventory_inclusion, v.inventory_readings,
        lambda: v.inventory_recomputation(state.get("rules", {})),
        lambda: state.__setitem__("cited", v.report_inclusion()),
        lambda: v.report_recomputation(state.get("cited", [])),
        v.record_inclusion, v.record_formats,
    ]
    report = EvidenceReport()
    stopped: StepResult | None = None
    for number, (name, action) in enumerate(zip(EVIDENCE_STEPS, actions, strict=True), 1):
        if stopped is not None:
            report.steps.append(StepResult(number, name, "not-checked",
                                           f"not reached: step {stopped.number} failed"))
            continue
        if on_step is not None:
            on_step(number, name)
        try:
            action()
        except _Failed as exc:
            stopped = StepResult(number, name, "fail", exc.detail, exc.expected, exc.found)
            report.steps.append(stopped)
        except _Skip as exc:
            report.steps.append(StepResult(number, name, "not-checked", exc.detail))
        else:
            report.steps.append(StepResult(number, name, "pass"))
    report.notes = v.notes
    return report
