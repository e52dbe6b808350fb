"""Per-format checks of an evidence bundle's log records (step 17 of ``verify_evidence``).

Step 16 proves every record's document is a leaf under the anchored head; what the
document *says* is checked here, by format (``record_format``): a financing code must
be signed by the log key, an attestation by a verifier key that the log holds as a
``verifier_key`` record (not revoked before it), over the very inventory leaf and
findings of the bundle; a declaration's id must be its document's hash; a gateway key
revocation must precede every inventory the key signed; the market records are checked
against each other in log order (:mod:`.evidence_market`).
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
    REVOCATION_FORMAT,
    VERIFIER_KEY_FORMAT,
    Finding,
    SignedAttestation,
    VerificationOpened,
    VerifierKey,
    VerifierKeyRevocation,
    verify_attestation,
)
from .canonical import canonical_json
from .errors import ProtocolError
from .evidence import CheckContext, EvidenceCheckError, RecordChecker, RecordItem
from .evidence_market import MARKET_CHECKERS
from .finance_records import (
    BILL_FORMAT,
    LOAN_FORMAT,
    OUTPUT_FORMAT,
    LoanProject,
    ProductionOutput,
    SupplierBill,
)
from .financing_code import FINANCING_CODE_FORMAT, SignedFinancingCode, financing_code_bytes
from .gateway_keys import (
    GATEWAY_KEY_REVOCATION_FORMAT,
    GatewayKeyRevocation,
    revocation_record_id,
)
from .inventory import inventory_leaf_hash
from .merkle import leaf_hash
from .models import parse_utc
from .suites import PublicKey, digest, hash_fn

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


def _verifier_key_revocation(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(VerifierKeyRevocation, record, "verifier key revocation")
    key_record = f"{doc.verifier}/key.{doc.key_id}"
    if record.record_id != f"{key_record}/revoked":
        raise EvidenceCheckError("verifier key revocation record id is not "
                                 "<verifier>/key.<key_id>/revoked",
                                 expected=f"{key_record}/revoked", found=record.record_id)
    held = next((r for r in ctx.bundle.records if r.record_id == key_record), None)
    if held is None or held.leaf_index > record.leaf_index:
        raise EvidenceCheckError("the revoked verifier key is not a record logged before it",
                                 expected=key_record,
                                 found="nothing" if held is None else f"leaf {held.leaf_index}")
    return None


def _declaration_id(record: RecordItem, ctx: CheckContext, tag: str) -> None:
    """A declaration's id is ``<prefix>/<tag>.hex(H(JCS(document))[0:8])``."""
    suite = ctx.bundle.heads[-1].signed_tree_head.tree_head.suite
    hexid = digest(suite, canonical_json(record.document))[:8].hex()
    expected = f"{record.record_id.split('/', 1)[0]}/{tag}.{hexid}"
    if record.record_id != expected:
        raise EvidenceCheckError(f"the record id is not {tag}.<hash of its document>",
                                 expected=expected, found=record.record_id)


def _supersedes(record: RecordItem, ctx: CheckContext, ref: str | None,
                same: dict[str, object]) -> str | None:
    """The declaration ``record`` replaces: earlier, same kind and subject. It may be
    outside the bundle (declared before the period): then a note, not a failure."""
    if ref is None:
        return None
    held = next((r for r in ctx.bundle.records if r.record_id == ref), None)
    if held is None:
        return f"{record.record_id} supersedes {ref}, which is not in the bundle"
    if held.leaf_index >= record.leaf_index or held.kind != record.kind:
        raise EvidenceCheckError("the declaration it supersedes is not an earlier one of "
                                 "its kind", expected=f"{record.kind} before leaf "
                                 f"{record.leaf_index}", found=f"{held.kind} at leaf "
                                 f"{held.leaf_index}")
    for name, value in same.items():
        if held.document.get(name) != value:
            raise EvidenceCheckError(f"it supersedes a declaration of another {name}",
                                     expected=value, found=held.document.get(name))
    return None


def _enterprise(ctx: CheckContext, enterprise: str, what: str) -> None:
    if enterprise != ctx.bundle.enterprise:
        raise EvidenceCheckError(f"the {what} is another enterprise's",
                                 expected=ctx.bundle.enterprise, found=enterprise)


def _output(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(ProductionOutput, record, "production output declaration")
    _enterprise(ctx, doc.enterprise, "output declaration")
    _declaration_id(record, ctx, "out")
    return _supersedes(record, ctx, doc.supersedes,
                       {"enterprise": doc.enterprise, "period": doc.period})


def _bill(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(SupplierBill, record, "supplier bill declaration")
    _enterprise(ctx, doc.enterprise, "supplier bill")
    _declaration_id(record, ctx, "bill")
    return _supersedes(record, ctx, doc.supersedes, {
        "enterprise": doc.enterprise, "period": doc.period, "device": doc.device})


def _loan(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(LoanProject, record, "loan project")
    _enterprise(ctx, doc.enterprise, "loan project")
    if doc.id != record.record_id:
        raise EvidenceCheckError("the loan project's id is not its record id",
                                 expected=record.record_id, found=doc.id)
    return None


def _gateway_key_revocation(record: RecordItem, ctx: CheckContext) -> str | None:
    doc = _parse(GatewayKeyRevocation, record, "gateway key revocation")
    if record.record_id != revocation_record_id(doc):
        raise EvidenceCheckError("the record id is not <prefix>/keyrev.<key_id>.<time>",
                                 expected=revocation_record_id(doc), found=record.record_id)
    for item in ctx.bundle.inventories:
        inv = item.signed_inventory.inventory
        if (inv.gateway, inv.key_id) == (doc.gateway, doc.key_id) and (
                item.leaf_index > record.leaf_index):
            raise EvidenceCheckError(
                f"inventory {item.inventory_id} signed with key {doc.key_id} was logged "
                "after the key's revocation", expected=f"before leaf {record.leaf_index}",
                found=f"leaf {item.leaf_index}")
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
    revoked = next((r for r in ctx.bundle.records if r.record_id == f"{key_record}/revoked"),
                   None)
    if revoked is not None and revoked.leaf_index < record.leaf_index:
        raise EvidenceCheckError("the attestation is signed with a verifier key revoked "
                                 "before it was logged",
                                 expected=f"no revocation before leaf {record.leaf_index}",
                                 found=f"{revoked.record_id} at leaf {revoked.leaf_index}")
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
    REVOCATION_FORMAT: _checked(_verifier_key_revocation),
    OUTPUT_FORMAT: _checked(_output),
    BILL_FORMAT: _checked(_bill),
    LOAN_FORMAT: _checked(_loan),
    GATEWAY_KEY_REVOCATION_FORMAT: _checked(_gateway_key_revocation),
    **{fmt: _checked(checker) for fmt, checker in MARKET_CHECKERS.items()},
}
"""Record format -> its checker (raises :class:`EvidenceCheckError`, may return a note)."""
