"""The verification workflow: open, record findings, attest or reject, and read it back.

Every state change is a log record (:mod:`ledger_service.log_records`), never a table
row, so the verification's whole history is in the Merkle log and anchored:

* ``verification_opened`` (id ``<prefix>/ver.<16 hex>``): who verifies which inventory,
  and the chain's head block when it opened. The ledger anchors right after
  appending it, which mines the *seed block* (the next one): nobody knew its hash when
  the verification opened, so nobody chose the sample.
* ``verification_finding`` (id ``<verification>/finding.<16 hex of its hash>``): one per
  finding, idempotent by content.
* ``attestation`` (id ``<verification>/attestation``): the verifier's signed verdict.
  One per verification: its id is fixed, so a second, different one cannot be
  appended even by two requests racing.

The state is derived from the records: ``open`` until an attestation exists, then
``attested`` or ``rejected`` by its verdict.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from carbon_protocol.attestation import (
    AttestationError,
    Finding,
    FindingRef,
    SignedAttestation,
    VerificationOpened,
    verify_attestation,
)
from carbon_protocol.canonical import canonical_json
from carbon_protocol.errors import SignatureError
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import Period
from carbon_protocol.models import AnchorRef
from carbon_protocol.sampling import SampleError
from carbon_protocol.suites import hash_fn

from .._internal.clock import utc_text
from .._internal.db import gateways, readings
from ..errors import (
    AnchorError,
    BadSignatureError,
    InvalidInputError,
    NotFoundError,
    SampleMismatchError,
)
from ..inventories import StoredInventory, anchor_covering
from ..inventories import get as get_inventory
from ..ledger import Ledger
from ..log_records import LoggedRecord, append_record, get_record, list_records
from .errors import (
    AttestationRefusedError,
    SeedPendingError,
    UnknownVerifierKeyError,
    VerificationClosedError,
)
from .keys import verifier_keys, verifier_public_key
from .sampling import SampleSpec, draw_sample, inventory_population, seed_block

__all__ = [
    "ATTESTATION",
    "FINDING",
    "OPENED",
    "AttestationReceipt",
    "FindingDraft",
    "FindingsPost",
    "RecordRef",
    "VerificationOpen",
    "VerificationStatus",
    "add_findings",
    "attested_inventories",
    "attested_periods",
    "expected_spec",
    "list_verifications",
    "open_verification",
    "opened",
    "status",
    "submit_attestation",
]

OPENED, FINDING, ATTESTATION = "verification_opened", "verification_finding", "attestation"
log = logging.getLogger("ledger_service.verification")


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class VerificationOpen(_Request):
    """``POST /v1/verifications``."""

    inventory_id: IdentifierStr
    verifier: IdentifierStr
    """A verifier organisation with at least one registered key."""
    sample_size: int = Field(ge=1, le=10_000)


class FindingDraft(_Request):
    """One finding as the verifier posts it: about a sampled leaf (``leaf_index``), the
    reading at one (``reading_id``), or the inventory as a whole (neither)."""

    leaf_index: int | None = Field(default=None, ge=0)
    reading_id: IdentifierStr | None = None
    severity: Literal["info", "minor", "major", "critical"]
    category: Literal["missing_data", "value_anomaly", "device", "calibration", "boundary",
                      "calculation", "documentation", "other"]
    text: str = Field(min_length=1, max_length=2000)


class FindingsPost(_Request):
    """``POST /v1/verifications/{id}/findings``."""

    findings: list[FindingDraft] = Field(min_length=1, max_length=100)


class RecordRef(BaseModel):
    """A log record as the status names it: id, leaf, and the document."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    leaf_index: int
    leaf_hash: str
    document: dict[str, Any]


class VerificationStatus(BaseModel):
    """A verification as its records say it stands."""

    model_config = ConfigDict(frozen=True)

    verification_id: str
    state: Literal["open", "attested", "rejected"]
    verifier: str
    enterprise: str
    inventory_id: str
    period: Period
    sample_size: int
    """As requested when opened."""
    opened_in_block: int
    seed_block_number: int
    seed_block_hash: str | None
    """``None`` while the seed block is not mined."""
    sampled_leaves: list[int] | None
    """The leaves the seed determines, in draw order (``None`` until it is mined)."""
    opened: RecordRef
    findings: list[RecordRef]
    attestation: RecordRef | None


class AttestationReceipt(BaseModel):
    """The ledger's answer for an accepted attestation."""

    model_config = ConfigDict(frozen=True)

    verification_id: str
    verdict: Literal["attest", "reject"]
    record: RecordRef
    anchor: AnchorRef | None
    """The final anchor covering the record, once there is one."""


def _ref(rec: LoggedRecord) -> RecordRef:
    return RecordRef(record_id=rec.record_id, leaf_index=rec.leaf_index,
                     leaf_hash=rec.leaf_hash, document=rec.document)


def _enterprise_of(ledger: Ledger, stored: StoredInventory) -> str:
    with ledger.reader.connect() as conn:
        owner = conn.execute(select(gateways.c.enterprise_id).where(
            gateways.c.id == stored.receipt.gateway)).scalar_one()
    return str(owner)


# -- open ---------------------------------------------------------------------------------


def open_verification(ledger: Ledger, body: VerificationOpen, *,
                      anchor: bool = True) -> VerificationStatus:
    """Open a verification of ``body.inventory_id`` and anchor, which mines the seed
    block (``anchor=False`` leaves that to the anchor loop, as when the chain is down)."""
    stored = get_inventory(ledger, body.inventory_id)
    if not [k for k in verifier_keys(ledger, body.verifier) if k.revocation is None]:
        raise UnknownVerifierKeyError(
            f"verifier {body.verifier} has no registered key in force: register one with "
            "POST /v1/verifiers first", verifier=body.verifier)
    vid = f"{ledger.settings.prefix}/ver.{secrets.token_hex(8)}"
    doc = VerificationOpened(
        verification_id=vid, verifier=body.verifier, enterprise=_enterprise_of(ledger, stored),
        inventory_id=body.inventory_id, inventory_leaf_hash=stored.receipt.leaf_hash,
        period=stored.signed_inventory.inventory.period, sample_size=body.sample_size,
        opened_in_block=int(ledger.chain.block_number()), opened_at=utc_text())
    append_record(ledger, kind=OPENED, record_id=vid, enterprise_id=doc.enterprise,
                  document=doc.model_dump(mode="json"))
    if anchor:
        try:
            ledger.anchor_tick(force=True)
        except AnchorError as exc:  # the record stands; the anchor loop mines the seed later
            log.warning("verification %s opened, anchoring failed: %s", vid, exc)
    return status(ledger, vid)


def opened(ledger: Ledger, verification_id: str) -> tuple[LoggedRecord, VerificationOpened]:
    """The ``verification_opened`` record of ``verification_id`` (:class:`NotFoundError`)."""
    try:
        rec = get_record(ledger, verification_id)
    except NotFoundError:
        rec = None
    if rec is None or rec.kind != OPENED:
        raise NotFoundError(f"no verification {verification_id}",
                            verification_id=verification_id)
    return rec, VerificationOpened.model_validate(rec.document)


def expected_spec(ledger: Ledger, doc: VerificationOpened) -> SampleSpec:
    """The sample spec the seed block determines (:class:`SeedPendingError` before it)."""
    try:
        number, block_hash = seed_block(ledger.chain, doc.opened_in_block)
    except NotFoundError as exc:
        raise SeedPendingError(f"verification {doc.verification_id}: {exc}",
                               **exc.details) from None
    population = inventory_population(
        get_inventory(ledger, doc.inventory_id).signed_inventory.inventory)
    total = sum(r.last - r.first + 1 for r in population)
    return SampleSpec(suite=ledger.settings.log_suite, verification_id=doc.verification_id,
                      seed_block_number=number, seed_block_hash=block_hash,
                      population=population, size=min(doc.sample_size, total))


# -- read ---------------------------------------------------------------------------------


def _findings(ledger: Ledger, doc: VerificationOpened) -> list[LoggedRecord]:
    return [r for r in list_records(ledger, enterprise_id=doc.enterprise, kinds=(FINDING,))
            if r.document.get("verification_id") == doc.verification_id]


def _attestation(ledger: Ledger, verification_id: str) -> LoggedRecord | None:
    try:
        return get_record(ledger, f"{verification_id}/attestation")
    except NotFoundError:
        return None


def status(ledger: Ledger, verification_id: str) -> VerificationStatus:
    """Where ``verification_id`` stands, from its records."""
    rec, doc = opened(ledger, verification_id)
    attestation = _attestation(ledger, verification_id)
    verdict = None if attestation is None else \
        attestation.document["attestation"]["verdict"]
    try:
        spec: SampleSpec | None = expected_spec(ledger, doc)
    except SeedPendingError:
        spec = None
    return VerificationStatus(
        verification_id=verification_id,
        state="open" if verdict is None else "attested" if verdict == "attest" else "rejected",
        verifier=doc.verifier, enterprise=doc.enterprise, inventory_id=doc.inventory_id,
        period=doc.period, sample_size=doc.sample_size, opened_in_block=doc.opened_in_block,
        seed_block_number=doc.opened_in_block + 1,
        seed_block_hash=None if spec is None else spec.seed_block_hash,
        sampled_leaves=None if spec is None else draw_sample(spec).leaves,
        opened=_ref(rec), findings=[_ref(f) for f in _findings(ledger, doc)],
        attestation=None if attestation is None else _ref(attestation))


def list_verifications(ledger: Ledger, enterprise_id: str) -> list[VerificationStatus]:
    """Every verification of ``enterprise_id``'s inventories, oldest first."""
    return [status(ledger, r.record_id)
            for r in list_records(ledger, enterprise_id=enterprise_id, kinds=(OPENED,))]


def attested_inventories(ledger: Ledger, enterprise_id: str) -> dict[str, Period]:
    """``enterprise_id``'s inventories that stand verified, with their periods: those
    with an ``attest`` verdict and no ``reject`` verdict from any verification (a
    rejection is not outvoted by another verifier's attestation of the same bytes).

    Finance counts a month as verified only when every inventory whose emissions it
    grades for that month is here (``ledger_service.finance.inputs.verified_months``)."""
    attested: dict[str, Period] = {}
    rejected: set[str] = set()
    for rec in list_records(ledger, enterprise_id=enterprise_id, kinds=(ATTESTATION,)):
        att = rec.document["attestation"]
        if att["verdict"] == "attest":
            attested.setdefault(att["inventory_id"], Period.model_validate(att["period"]))
        else:
            rejected.add(att["inventory_id"])
    return {i: p for i, p in attested.items() if i not in rejected}


def attested_periods(ledger: Ledger, enterprise_id: str) -> list[Period]:
    """The periods of :func:`attested_inventories`, each once, by start."""
    seen: dict[tuple[str, str, str], Period] = {}
    for period in attested_inventories(ledger, enterprise_id).values():
        seen.setdefault((period.start, period.end, period.label), period)
    return sorted(seen.values(), key=lambda p: (p.start, p.end, p.label))


# -- findings -----------------------------------------------------------------------------


def _reading_leaf(ledger: Ledger, reading_id: str) -> int | None:
    with ledger.reader.connect() as conn:
        leaf = conn.execute(select(readings.c.leaf_index).where(
            readings.c.id == reading_id)).scalar_one_or_none()
    return None if leaf is None else int(leaf)


def add_findings(ledger: Ledger, verification_id: str, body: FindingsPost) -> list[RecordRef]:
    """Record ``body``'s findings on an open verification; each names a sampled leaf or
    the reading at one, or neither. Posting the same finding again records nothing new."""
    _, doc = opened(ledger, verification_id)
    if _attestation(ledger, verification_id) is not None:
        raise VerificationClosedError(f"verification {verification_id} is closed: it holds "
                                      "an attestation", verification_id=verification_id)
    sampled = set(draw_sample(expected_spec(ledger, doc)).leaves)
    documents = []
    for n, draft in enumerate(body.findings):
        leaves = set() if draft.leaf_index is None else {draft.leaf_index}
        if draft.reading_id is not None:
            leaf = _reading_leaf(ledger, draft.reading_id)
            if leaf is None:
                raise InvalidInputError(f"finding {n}: reading {draft.reading_id} is not "
                                        "stored", reading_id=draft.reading_id)
            leaves.add(leaf)
        if len(leaves) > 1 or not leaves <= sampled:
            raise InvalidInputError(
                f"finding {n}: leaf {sorted(leaves)} is not one sampled leaf of "
                f"{verification_id} (sampled: {sorted(sampled)[:20]})",
                verification_id=verification_id)
        documents.append(Finding(verification_id=verification_id, **draft.model_dump()))
    out = []
    h = hash_fn(ledger.settings.log_suite)
    for finding in documents:
        data = finding.model_dump(mode="json")
        rid = f"{verification_id}/finding.{h(canonical_json(data))[:8].hex()}"
        _, rec = append_record(ledger, kind=FINDING, record_id=rid,
                               enterprise_id=doc.enterprise, document=data)
        out.append(_ref(rec))
    return out


# -- attest -------------------------------------------------------------------------------


def _require_same(what: str, expected: object, found: object) -> None:
    if expected != found:
        raise AttestationRefusedError(
            f"the attestation's {what} is {found}, this verification's is {expected}",
            field=what, expected=str(expected)[:200], found=str(found)[:200])


def submit_attestation(ledger: Ledger, verification_id: str,
                       signed: SignedAttestation) -> tuple[bool, AttestationReceipt]:
    """Check ``signed`` against the verification and the registered key, append it as
    the verification's ``attestation`` record and anchor: ``(created, receipt)``. The
    same attestation again is ``(False, receipt)``; any other one is 409."""
    _, doc = opened(ledger, verification_id)
    existing = _attestation(ledger, verification_id)
    if existing is not None and existing.document != signed.model_dump(mode="json"):
        raise VerificationClosedError(
            f"verification {verification_id} already holds an attestation "
            f"({existing.document['attestation']['verdict']}); a second one is refused",
            verification_id=verification_id, record_id=existing.record_id)
    att = signed.attestation
    for what, expected, found in (
            ("verification_id", verification_id, att.verification_id),
            ("verifier", doc.verifier, att.verifier),
            ("enterprise", doc.enterprise, att.enterprise),
            ("inventory_id", doc.inventory_id, att.inventory_id),
            ("inventory_leaf_hash", doc.inventory_leaf_hash, att.inventory_leaf_hash),
            ("period", doc.period, att.period)):
        _require_same(what, expected, found)
    public_key = verifier_public_key(ledger, att.verifier, att.key_id)
    spec = expected_spec(ledger, doc)
    try:
        verify_attestation(signed, public_key)
    except SignatureError as exc:
        raise BadSignatureError(f"attestation signature does not verify under verifier key "
                                f"{att.key_id}: {exc}", key_id=att.key_id) from None
    except SampleError as exc:
        raise SampleMismatchError(str(exc), **exc.details) from None
    except AttestationError as exc:
        raise AttestationRefusedError(str(exc)) from None
    if att.sample != spec:
        raise SampleMismatchError(
            f"the attestation's sample spec is not the one seed block "
            f"{spec.seed_block_number} determines for {verification_id} (seed, population "
            "or size differ)", verification_id=verification_id)
    recorded = [FindingRef(record_id=f.record_id, leaf_hash=f.leaf_hash)
                for f in _findings(ledger, doc)]
    _require_same("findings", [f.record_id for f in recorded],
                  [f.record_id for f in att.findings])
    _require_same("findings' leaf hashes", recorded, att.findings)
    created, rec = append_record(ledger, kind=ATTESTATION,
                                 record_id=f"{verification_id}/attestation",
                                 enterprise_id=doc.enterprise,
                                 document=signed.model_dump(mode="json"))
    if created:
        try:
            ledger.anchor_tick(force=True)
        except AnchorError as exc:
            log.warning("attestation %s recorded, anchoring failed: %s", rec.record_id, exc)
    try:
        anchor: AnchorRef | None = anchor_covering(ledger, rec.leaf_index, rec.record_id)
    except NotFoundError:
        anchor = None
    return created, AttestationReceipt(verification_id=verification_id, verdict=att.verdict,
                                       record=_ref(rec), anchor=anchor)
