"""Third-party verification on the wire: verifier keys, records, samples, attestations.

A verifier (核查机构) checks an inventory by sampling its readings with a seed nobody
chose (:mod:`.sampling`), checks every sampled reading back to an anchored tree head,
records findings, and signs an :class:`Attestation`: the verdict ``attest`` or
``reject`` over exactly this inventory (its leaf hash), this period, this sample and
these findings. The ledger appends every step to its Merkle log as a record, so the
verification's whole history is provable, but the attestation's worth does not rest
on the ledger: :func:`verify_attestation` needs only the signed attestation and the
verifier's public key, and recomputes the sample from the seed block itself.

Everything signed is RFC 8785 JSON of the model (:func:`attestation_bytes`); the
signature is the suite's (SM2 with the standard user id over SM3, or Ed25519) by the
key whose suite and id the attestation names. ``docs/verification.md`` is the
complete description for an independent implementation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .canonical import canonical_json
from .chain_view import ChainView
from .errors import ProtocolError, SignatureError, VerificationError
from .identifiers import IdentifierStr
from .inventory import Period, SignedInventory, inventory_id, inventory_leaf_hash
from .merkle import verify_inclusion
from .models import (
    AnchorRef,
    Hex16,
    Hex32,
    ProofBundle,
    PublicKeyInfo,
    SafeInt,
    SignatureHex,
    SignedTreeHead,
    SuiteField,
    UtcTimestamp,
)
from .sampling import SampleError, SampleSpec, inventory_population, sample_mismatch
from .signing import verify_tree_head
from .suites import PrivateKey, PublicKey, hash_fn
from .verify import verify_bundle

__all__ = [
    "ATTESTATION_FORMAT",
    "FINDING_FORMAT",
    "OPENED_FORMAT",
    "REVOCATION_FORMAT",
    "SAMPLE_EVIDENCE_FORMAT",
    "VERIFIER_KEY_FORMAT",
    "AttestationError",
    "Attestation",
    "Finding",
    "FindingRef",
    "SampleEvidence",
    "SampleRow",
    "SampledReading",
    "SignedAttestation",
    "VerificationOpened",
    "VerifierKey",
    "VerifierKeyRevocation",
    "attestation_bytes",
    "check_sample_evidence",
    "sign_attestation",
    "verify_attestation",
]

VERIFIER_KEY_FORMAT: Final = "carbon-ledger/verifier-key/v1"
REVOCATION_FORMAT: Final = "carbon-ledger/verifier-key-revocation/v1"
OPENED_FORMAT: Final = "carbon-ledger/verification-opened/v1"
FINDING_FORMAT: Final = "carbon-ledger/verification-finding/v1"
ATTESTATION_FORMAT: Final = "carbon-ledger/attestation/v1"
SAMPLE_EVIDENCE_FORMAT: Final = "carbon-ledger/sample-evidence/v1"

RecordId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,200}$")]
"""A log record id: printable ASCII without spaces (an identifier, or one with a
``/``-separated tail such as ``86.1000.1/ver.0a1b2c3d4e5f6a7b/finding.…``)."""
Verdict = Literal["attest", "reject"]
Severity = Literal["info", "minor", "major", "critical"]
Category = Literal["missing_data", "value_anomaly", "device", "calibration", "boundary",
                   "calculation", "documentation", "other"]


class AttestationError(VerificationError):
    """An attestation or a sample's evidence does not hold together (what and where)."""

    code = "invalid_attestation"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class VerifierKey(_Wire):
    """A verifier organisation's signing key as the ledger registers it (record kind
    ``verifier_key``); what an attestation's ``key_id`` is looked up against."""

    format: Literal["carbon-ledger/verifier-key/v1"] = VERIFIER_KEY_FORMAT
    verifier: IdentifierStr
    public_key: PublicKeyInfo
    registered_at: UtcTimestamp


class VerifierKeyRevocation(_Wire):
    """A verifier key withdrawn (record kind ``verifier_key_revocation``, id
    ``<verifier>/key.<key_id>/revoked``): from this record on, the ledger accepts no
    attestation signed with the key. Attestations whose records precede it in the log
    stay valid, which a stranger tells by the two records' leaf indices."""

    format: Literal["carbon-ledger/verifier-key-revocation/v1"] = REVOCATION_FORMAT
    verifier: IdentifierStr
    key_id: Hex16
    revoked_at: UtcTimestamp
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class VerificationOpened(_Wire):
    """A verification as opened (record kind ``verification_opened``). The record is
    appended while the chain's head is ``opened_in_block``; block ``opened_in_block + 1``
    seeds the sample, and it is mined only afterwards."""

    format: Literal["carbon-ledger/verification-opened/v1"] = OPENED_FORMAT
    verification_id: IdentifierStr
    verifier: IdentifierStr
    enterprise: IdentifierStr
    inventory_id: IdentifierStr
    inventory_leaf_hash: Hex32
    period: Period
    sample_size: Annotated[int, Field(ge=1, le=10_000)]
    """As requested; the sample is ``min(sample_size, population)`` leaves."""
    opened_in_block: SafeInt
    opened_at: UtcTimestamp


class Finding(_Wire):
    """One finding of a verifier (record kind ``verification_finding``): about a
    sampled leaf or reading, or about the inventory as a whole (neither given)."""

    format: Literal["carbon-ledger/verification-finding/v1"] = FINDING_FORMAT
    verification_id: IdentifierStr
    leaf_index: SafeInt | None = None
    reading_id: IdentifierStr | None = None
    severity: Severity
    category: Category
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class FindingRef(_Wire):
    """A finding as an attestation names it: its record and the leaf holding it."""

    record_id: RecordId
    leaf_hash: Hex32


class Attestation(_Wire):
    """A verifier's signed verdict on one inventory (record kind ``attestation``)."""

    format: Literal["carbon-ledger/attestation/v1"] = ATTESTATION_FORMAT
    verification_id: IdentifierStr
    verifier: IdentifierStr
    suite: SuiteField
    key_id: Hex16
    """The verifier key that signs (registered as ``<verifier>/key.<key_id>``)."""
    enterprise: IdentifierStr
    inventory_id: IdentifierStr
    inventory_leaf_hash: Hex32
    period: Period
    sample: SampleSpec
    sampled_leaves: list[SafeInt] = Field(min_length=1, max_length=10_000)
    """The leaves the seed determines, in draw order."""
    findings: list[FindingRef] = Field(max_length=10_000)
    """Every finding recorded for the verification, in log order."""
    verdict: Verdict
    signed_at: UtcTimestamp

    @model_validator(mode="after")
    def _consistent(self) -> Attestation:
        if self.sample.verification_id != self.verification_id:
            raise ValueError(f"the sample is drawn for {self.sample.verification_id}, "
                             f"not for {self.verification_id}")
        return self


class SignedAttestation(_Wire):
    """An attestation with the verifier's signature over its RFC 8785 JSON."""

    attestation: Attestation
    signature: SignatureHex


def attestation_bytes(attestation: Attestation) -> bytes:
    """The exact bytes a verifier signs: RFC 8785 JSON of the attestation."""
    return canonical_json(attestation.model_dump(mode="json"))


def sign_attestation(attestation: Attestation, key: PrivateKey) -> SignedAttestation:
    """Sign ``attestation`` with the verifier key whose suite and id it names."""
    pub = key.public_key()
    if (attestation.suite, attestation.key_id) != (pub.suite, pub.key_id):
        raise SignatureError(
            f"attestation names {attestation.suite} key {attestation.key_id}, the signing "
            f"key is {pub.suite} key {pub.key_id}")
    return SignedAttestation(attestation=attestation,
                             signature=key.sign(attestation_bytes(attestation)).hex())


def verify_attestation(signed: SignedAttestation, verifier_public_key: PublicKey) -> Attestation:
    """The stranger's check of an attestation; returns it, or raises.

    1. the attestation names ``verifier_public_key`` (suite and key id), else
       :class:`AttestationError`;
    2. the signature over :func:`attestation_bytes` verifies, else
       :class:`~.errors.SignatureError`;
    3. ``sampled_leaves`` is exactly the sample ``sample`` determines (recomputed
       from the seed block hash), else :class:`~.sampling.SampleError`.

    Internal consistency (the sample is drawn for this verification id) is enforced
    when the model is parsed. That the seed block hash is the hash of block
    ``sample.seed_block_number`` on the anchoring chain, that the verification was
    opened before it (the ``verification_opened`` record's inclusion proof), that the
    key was registered for ``verifier``, and that the inventory with this leaf hash
    has this population are the caller's to check against the chain and the log.
    """
    att = signed.attestation
    if (att.suite, att.key_id) != (verifier_public_key.suite, verifier_public_key.key_id):
        raise AttestationError(
            f"attestation is signed by {att.suite} key {att.key_id}, expected the "
            f"verifier's {verifier_public_key.suite} key {verifier_public_key.key_id}")
    verifier_public_key.verify(bytes.fromhex(signed.signature), attestation_bytes(att))
    mismatch = sample_mismatch(att.sample, att.sampled_leaves)
    if mismatch is not None:
        raise mismatch
    return att


# -- the sample's evidence ---------------------------------------------------------------


class SampledReading(_Wire):
    """One sampled leaf: its reading's proof bundle against the evidence's tree head."""

    leaf_index: SafeInt
    bundle: ProofBundle


class SampleEvidence(_Wire):
    """What the ledger hands a verifier for a verification: the spec and the drawn
    leaves, the inventory and its inclusion proof, and every sampled reading with its
    proof, all against one anchored signed tree head."""

    format: Literal["carbon-ledger/sample-evidence/v1"] = SAMPLE_EVIDENCE_FORMAT
    verification_id: IdentifierStr
    enterprise: IdentifierStr
    inventory_id: IdentifierStr
    signed_inventory: SignedInventory
    inventory_leaf_index: SafeInt
    inventory_inclusion_proof: list[Hex32] = Field(max_length=64)
    spec: SampleSpec
    leaves: list[SafeInt]
    readings: list[SampledReading]
    """One per leaf of ``leaves``, in the same order."""
    signed_tree_head: SignedTreeHead
    log_key: PublicKeyInfo
    anchor: AnchorRef


@dataclass(frozen=True)
class SampleRow:
    """One checked reading, for the verifier's table."""

    leaf_index: int
    reading_id: str
    device: str
    measured_at: str
    value: str
    unit: str


def _fail(message: str) -> AttestationError:
    return AttestationError(message)


def _check_inventory(ev: SampleEvidence) -> None:
    head = ev.signed_tree_head.tree_head
    leaf = inventory_leaf_hash(ev.signed_inventory, head.suite)
    derived = inventory_id(ev.inventory_id.partition("/")[0], leaf)
    if derived != ev.inventory_id:
        raise _fail(f"inventory: its identifier is not derived from its leaf: expected "
                    f"{derived}, found {ev.inventory_id}")
    try:
        verify_inclusion(hash_fn(head.suite), ev.inventory_leaf_index, head.tree_size, leaf,
                         [bytes.fromhex(p) for p in ev.inventory_inclusion_proof],
                         bytes.fromhex(head.root_hash))
    except ProtocolError as exc:
        raise _fail(f"inventory: leaf {ev.inventory_leaf_index} is not in the tree head of "
                    f"size {head.tree_size}: {exc}") from None


def check_sample_evidence(
    evidence: SampleEvidence, *, chain: ChainView | None = None,
    trusted_log_keys: Collection[str] | None = None,
) -> list[SampleRow]:
    """The verifier's offline check of a sample; the checked rows, or raise naming the
    first failure (:class:`AttestationError`, :class:`~.sampling.SampleError`, or a
    reading's :class:`~.errors.BundleVerificationError` prefixed with its leaf).

    1. **head**: the log key signed the tree head, and the anchor records that head;
    2. **inventory**: its id derives from its leaf, which the head includes;
    3. **population**: the spec's population is the inventory's (every leaf its lines
       claim), and the spec is drawn for this verification;
    4. **sample**: the leaves are the ones the seed determines (recomputed);
    5. **readings**: for each leaf, in order, a proof bundle for that leaf against
       the same head and anchor, whose device is one of the inventory's lines and
       whose leaf that line claims, and which passes every step of
       :func:`~.verify.verify_bundle` (signature, leaf, inclusion, log key, head
       signature, domain, anchor, key validity); the chain step (``chain`` given) is
       run on the first bundle only, since all share one anchor.
    """
    sth, head, anchor = evidence.signed_tree_head, evidence.signed_tree_head.tree_head, \
        evidence.anchor
    try:
        log_pub = PublicKey.from_hex(evidence.log_key.suite, evidence.log_key.public_key)
        verify_tree_head(sth, log_pub)
    except ProtocolError as exc:
        raise _fail(f"head: the tree head does not verify under the log key: {exc}") from None
    if (anchor.tree_size, anchor.root_hash) != (head.tree_size, head.root_hash):
        raise _fail(f"head: the anchor records size {anchor.tree_size} root "
                    f"{anchor.root_hash}, the head is size {head.tree_size} root "
                    f"{head.root_hash}")
    _check_inventory(evidence)
    spec = evidence.spec
    if spec.verification_id != evidence.verification_id:
        raise _fail(f"population: the spec is for {spec.verification_id}, not "
                    f"{evidence.verification_id}")
    inventory = evidence.signed_inventory.inventory
    if spec.population != inventory_population(inventory):
        raise SampleError(f"population: the spec's population is not the leaves of "
                          f"inventory {evidence.inventory_id}",
                          verification_id=spec.verification_id)
    mismatch = sample_mismatch(spec, evidence.leaves)
    if mismatch is not None:
        raise mismatch
    if [r.leaf_index for r in evidence.readings] != list(evidence.leaves):
        raise _fail("readings: the evidence does not hold one reading per sampled leaf, in "
                    "draw order")
    claimed = {line.readings.device: set(line.readings.leaf_indices())
               for line in inventory.lines}
    rows = []
    for n, sampled in enumerate(evidence.readings):
        bundle = sampled.bundle
        reading = bundle.signed_reading.reading
        where = f"readings: leaf {sampled.leaf_index}"
        if bundle.leaf_index != sampled.leaf_index:
            raise _fail(f"{where}: the bundle proves leaf {bundle.leaf_index}")
        if (bundle.signed_tree_head, bundle.anchor, bundle.log_key) != (
                sth, anchor, evidence.log_key):
            raise _fail(f"{where}: the bundle is proved against another head or anchor")
        if sampled.leaf_index not in claimed.get(reading.device, set()):
            raise _fail(f"{where}: holds a reading of {reading.device}, which no line of "
                        "the inventory claims at this leaf")
        try:
            verify_bundle(bundle, chain=chain if n == 0 else None,
                          trusted_log_keys=trusted_log_keys)
        except ProtocolError as exc:
            raise _fail(f"{where} ({bundle.reading_id}): {exc}") from None
        rows.append(SampleRow(sampled.leaf_index, bundle.reading_id, reading.device,
                              reading.measured_at, reading.value, reading.unit))
    return rows
