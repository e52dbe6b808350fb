"""Per-format checks of an evidence bundle's log records (step 17 of ``verify_evidence``).

Step 16 proves every record's document is a leaf under the anchored head; what the
document *says* is checked here, by format (``record_format``): a financing code must
be signed by the log key, an attestation by a verifier key that the log holds as a
``verifier_key`` record, over the very inventory leaf and findings of the bundle.
:data:`RECORD_CHECKERS` maps a format to its checker; a format with none is reported
"not checked" by the verifier, never passed. Another format joins by adding its checker
to the mapping.

This module imports :mod:`.evidence` for the record and context types, and
:mod:`.evidence` imports it lazily when it runs step 17 (the types live there, the
checks here: one module per job, without an import cycle at load time).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .attestation import (
    ATTESTATION_FORMAT,
    FINDING_FORMAT,
    OPENED_FORMAT,
    VERIFIER_KEY_FORMAT,
    Finding,
    SignedAttestation,
    VerificationOpened,
    VerifierKey,
    verify_attestation,
)
from .canonical import canonical_json
from .errors import ProtocolError
from .evidence import CheckContext, EvidenceCheckError, RecordChecker, RecordItem
from .financing_code import FINANCING_CODE_FORMAT, SignedFinancingCode, financing_code_bytes
from .inventory import inventory_leaf_hash
from .merkle import leaf_hash
from .models import parse_utc
from .suites import PublicKey, hash_fn

__all__ = ["RECORD_CHECKERS"]


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], record: RecordItem, what: str) -> M:
    try:
        return model.model_validate(record.document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EvidenceCheckError(f"record {record.record_id} is not a {what}: "
                                 f"{where}: {first['msg']}") from None


def _financing_code(record: RecordItem, ctx: CheckContext) -> str | None:
    signed = _parse(SignedFinancingCode, record, "signed financing code")
    code = signed.financing_code
    pub = ctx.log_public_key
    if (code.suite, code.key_id) != (pub.suite, pub.key_id):
        raise EvidenceCheckError("the financing code is signed by another key than the log's",
                                 expected=pub.key_id, found=code.key_id)
    pub.verify(bytes.fromhex(signed.signature), financing_code_bytes(code))
    if code.enterprise != ctx.bundle.enterprise:
        raise EvidenceCheckError("the financing code is another enterprise's",
                                 expected=ctx.bundle.enterprise, found=code.enterprise)
    if ctx.now is not None and parse_utc(code.expires_at) <= ctx.now:
        return f"financing code {record.record_id} expired at {code.expires_at}"
    return None


def _verifier_key(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(VerifierKey, record, "verifier key")
    info = doc.public_key
    pub = PublicKey.from_hex(info.suite, info.public_key)
    if pub.key_id != info.key_id:
        raise EvidenceCheckError("verifier key id is not derived from the key",
                                 expected=pub.key_id, found=info.key_id)
    if record.record_id != f"{doc.verifier}/key.{info.key_id}":
        raise EvidenceCheckError("verifier key record id is not <verifier>/key.<key_id>",
                                 expected=f"{doc.verifier}/key.{info.key_id}",
                                 found=record.record_id)
    return None


def _opened(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(VerificationOpened, record, "verification opening")
    if doc.enterprise != ctx.bundle.enterprise:
        raise EvidenceCheckError("the verification is of another enterprise",
                                 expected=ctx.bundle.enterprise, found=doc.enterprise)
    return None


def _finding(record: RecordItem, ctx: CheckContext) -> str | None:
    _parse(Finding, record, "verification finding")
    return None


def _attestation(record: RecordItem, ctx: CheckContext) -> str | None:
    signed = _parse(SignedAttestation, record, "signed attestation")
    att = signed.attestation
    key_record = f"{att.verifier}/key.{att.key_id}"
    held = next((r for r in ctx.bundle.records if r.record_id == key_record), None)
    if held is None or held.leaf_index > record.leaf_index:
        raise EvidenceCheckError(
            "the attestation's verifier key is not a record logged before it",
            expected=key_record, found="nothing" if held is None else f"leaf {held.leaf_index}")
    key = VerifierKey.model_validate(held.document).public_key
    verify_attestation(signed, PublicKey.from_hex(key.suite, key.public_key))
    if att.enterprise != ctx.bundle.enterprise:
        raise EvidenceCheckError("the attestation is of another enterprise",
                                 expected=ctx.bundle.enterprise, found=att.enterprise)
    suite = ctx.bundle.heads[-1].signed_tree_head.tree_head.suite
    inventory = next((i for i in ctx.bundle.inventories
                      if i.inventory_id == att.inventory_id), None)
    note = None
    if inventory is None:
        note = (f"attestation {record.record_id} is of {att.inventory_id}, which is not in "
                "the bundle (another period)")
    elif inventory_leaf_hash(inventory.signed_inventory, suite).hex() != (
            att.inventory_leaf_hash):
        raise EvidenceCheckError("the attestation names another leaf for its inventory",
                                 expected=att.inventory_leaf_hash,
                                 found=inventory_leaf_hash(inventory.signed_inventory,
                                                           suite).hex())
    records = {r.record_id: r for r in ctx.bundle.records}
    h = hash_fn(suite)
    for ref in att.findings:
        found = records.get(ref.record_id)
        if found is None:
            raise EvidenceCheckError("the attestation names a finding the bundle lacks",
                                     expected=ref.record_id, found="nothing")
        got = leaf_hash(h, canonical_json(found.document)).hex()
        if got != ref.leaf_hash:
            raise EvidenceCheckError(f"finding {ref.record_id} is not the one attested",
                                     expected=ref.leaf_hash, found=got)
    return note


def _checked(checker: RecordChecker) -> RecordChecker:
    """Protocol errors (a bad signature, a sample that is not its seed's) leave as
    :class:`EvidenceCheckError` like the checkers' own."""
    def run(record: RecordItem, ctx: CheckContext) -> str | None:
        try:
            return checker(record, ctx)
        except EvidenceCheckError:
            raise
        except ProtocolError as exc:
            raise EvidenceCheckError(str(exc)) from exc
    return run


RECORD_CHECKERS: dict[str, RecordChecker] = {
    FINANCING_CODE_FORMAT: _checked(_financing_code),
    VERIFIER_KEY_FORMAT: _checked(_verifier_key),
    OPENED_FORMAT: _checked(_opened),
    FINDING_FORMAT: _checked(_finding),
    ATTESTATION_FORMAT: _checked(_attestation),
}
"""Record format -> its checker (raises :class:`EvidenceCheckError`, may return a note)."""
