"""Verifier keys: which public key speaks for which verifier organisation.

An admin or the regulator registers a verifier's key (after accreditation, outside the
ledger); the registration is a log record (kind ``verifier_key``, id
``<verifier>/key.<key_id>``) so a stranger can prove the key was registered, and when,
before it signed an attestation. The private key never reaches the ledger. A key is
withdrawn by a ``verifier_key_revocation`` record (id ``<verifier>/key.<key_id>/revoked``);
from then on the ledger accepts no attestation signed with it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from carbon_protocol.attestation import VerifierKey, VerifierKeyRevocation
from carbon_protocol.errors import ProtocolError
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.models import PublicKeyHex, PublicKeyInfo, SuiteField
from carbon_protocol.suites import PublicKey

from .._internal.clock import utc_text
from ..errors import InvalidInputError, NotFoundError
from ..ledger import Ledger
from ..log_records import append_record, get_record, list_records
from .errors import RevokedVerifierKeyError, UnknownVerifierKeyError

__all__ = ["KIND", "REVOCATION_KIND", "RegisteredVerifierKey", "VerifierKeyCreate",
           "VerifierKeyRevoke", "key_record_id", "register_key", "revoke_key",
           "verifier_keys", "verifier_public_key"]

KIND = "verifier_key"
REVOCATION_KIND = "verifier_key_revocation"


class VerifierKeyCreate(BaseModel):
    """``POST /v1/verifiers``: a verifier organisation and one of its public keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    verifier: IdentifierStr
    suite: SuiteField
    public_key: PublicKeyHex


class VerifierKeyRevoke(BaseModel):
    """``POST /v1/verifiers/{verifier}/keys/{key_id}/revoke``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    reason: str = Field(min_length=1, max_length=500)


class RegisteredVerifierKey(BaseModel):
    """A registered key with the log record that holds it (and its revocation's)."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    leaf_index: int
    leaf_hash: str
    key: VerifierKey
    revocation: VerifierKeyRevocation | None = None
    revocation_record_id: str | None = None


def key_record_id(verifier: str, key_id: str) -> str:
    """The log record id of a verifier's key."""
    return f"{verifier}/key.{key_id}"


def _revocation(ledger: Ledger, record_id: str) -> tuple[str, VerifierKeyRevocation] | None:
    try:
        rec = get_record(ledger, f"{record_id}/revoked")
    except NotFoundError:
        return None
    return rec.record_id, VerifierKeyRevocation.model_validate(rec.document)


def _registered(ledger: Ledger, record_id: str, leaf_index: int, leaf_hash: str,
                document: dict[str, object]) -> RegisteredVerifierKey:
    revoked = _revocation(ledger, record_id)
    return RegisteredVerifierKey(record_id=record_id, leaf_index=leaf_index, leaf_hash=leaf_hash,
                                 key=VerifierKey.model_validate(document),
                                 revocation=None if revoked is None else revoked[1],
                                 revocation_record_id=None if revoked is None else revoked[0])


def register_key(ledger: Ledger, body: VerifierKeyCreate) -> tuple[bool, RegisteredVerifierKey]:
    """Register ``body``'s key: ``(created, key)``; the same key again is ``False`` with
    the first registration."""
    try:
        pub = PublicKey.from_hex(body.suite, body.public_key)
    except ProtocolError as exc:
        raise InvalidInputError(f"public key does not parse as {body.suite}: {exc}") from None
    record_id = key_record_id(body.verifier, pub.key_id)
    try:
        rec = get_record(ledger, record_id)
        return False, _registered(ledger, rec.record_id, rec.leaf_index, rec.leaf_hash,
                                  rec.document)
    except NotFoundError:
        pass
    doc = VerifierKey(verifier=body.verifier, registered_at=utc_text(),
                      public_key=PublicKeyInfo(suite=pub.suite, public_key=pub.hex(),
                                               key_id=pub.key_id))
    created, rec = append_record(ledger, kind=KIND, record_id=record_id,
                                 enterprise_id=body.verifier, document=doc.model_dump(mode="json"))
    return created, _registered(ledger, rec.record_id, rec.leaf_index, rec.leaf_hash, rec.document)


def verifier_keys(ledger: Ledger, verifier: str) -> list[RegisteredVerifierKey]:
    """Every key registered for ``verifier``, in log order (empty if none)."""
    return [_registered(ledger, r.record_id, r.leaf_index, r.leaf_hash, r.document)
            for r in list_records(ledger, enterprise_id=verifier, kinds=(KIND,))]


def verifier_public_key(ledger: Ledger, verifier: str, key_id: str) -> PublicKey:
    """The registered key ``key_id`` of ``verifier`` (:class:`UnknownVerifierKeyError`)."""
    try:
        rec = get_record(ledger, key_record_id(verifier, key_id))
    except NotFoundError:
        raise UnknownVerifierKeyError(
            f"key {key_id} is not registered for verifier {verifier}",
            verifier=verifier, key_id=key_id) from None
    revoked = _revocation(ledger, rec.record_id)
    if revoked is not None:
        raise RevokedVerifierKeyError(
            f"key {key_id} of verifier {verifier} was revoked at {revoked[1].revoked_at}: "
            f"{revoked[1].reason}", verifier=verifier, key_id=key_id,
            record_id=revoked[0])
    info = VerifierKey.model_validate(rec.document).public_key
    return PublicKey.from_hex(info.suite, info.public_key)


def revoke_key(ledger: Ledger, verifier: str, key_id: str,
               body: VerifierKeyRevoke) -> tuple[bool, RegisteredVerifierKey]:
    """Withdraw a registered key: ``(created, key)``; revoking it again changes nothing."""
    record_id = key_record_id(verifier, key_id)
    try:
        rec = get_record(ledger, record_id)
    except NotFoundError:
        raise NotFoundError(f"key {key_id} is not registered for verifier {verifier}",
                            verifier=verifier, key_id=key_id) from None
    created = False
    if _revocation(ledger, record_id) is None:
        doc = VerifierKeyRevocation(verifier=verifier, key_id=key_id, revoked_at=utc_text(),
                                    reason=body.reason)
        created, _ = append_record(ledger, kind=REVOCATION_KIND,
                                   record_id=f"{record_id}/revoked", enterprise_id=verifier,
                                   document=doc.model_dump(mode="json"))
    return created, _registered(ledger, rec.record_id, rec.leaf_index, rec.leaf_hash,
                                rec.document)
