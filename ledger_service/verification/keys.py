"""Verifier keys: which public key speaks for which verifier organisation.

An admin or the regulator registers a verifier's key (after accreditation, outside the
ledger); the registration is a log record (kind ``verifier_key``, id
``<verifier>/key.<key_id>``) so a stranger can prove the key was registered, and when,
before it signed an attestation. The private key never reaches the ledger.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from carbon_protocol.attestation import VerifierKey
from carbon_protocol.errors import ProtocolError
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.models import PublicKeyHex, PublicKeyInfo, SuiteField
from carbon_protocol.suites import PublicKey

from .._internal.clock import utc_text
from ..errors import InvalidInputError, NotFoundError
from ..ledger import Ledger
from ..log_records import append_record, get_record, list_records
from .errors import UnknownVerifierKeyError

__all__ = ["KIND", "RegisteredVerifierKey", "VerifierKeyCreate", "key_record_id",
           "register_key", "verifier_keys", "verifier_public_key"]

KIND = "verifier_key"


class VerifierKeyCreate(BaseModel):
    """``POST /v1/verifiers``: a verifier organisation and one of its public keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    verifier: IdentifierStr
    suite: SuiteField
    public_key: PublicKeyHex


class RegisteredVerifierKey(BaseModel):
    """A registered key with the log record that holds it."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    leaf_index: int
    leaf_hash: str
    key: VerifierKey


def key_record_id(verifier: str, key_id: str) -> str:
    """The log record id of a verifier's key."""
    return f"{verifier}/key.{key_id}"


def _registered(record_id: str, leaf_index: int, leaf_hash: str,
                document: dict[str, object]) -> RegisteredVerifierKey:
    return RegisteredVerifierKey(record_id=record_id, leaf_index=leaf_index, leaf_hash=leaf_hash,
                                 key=VerifierKey.model_validate(document))


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
        return False, _registered(rec.record_id, rec.leaf_index, rec.leaf_hash, rec.document)
    except NotFoundError:
        pass
    doc = VerifierKey(verifier=body.verifier, registered_at=utc_text(),
                      public_key=PublicKeyInfo(suite=pub.suite, public_key=pub.hex(),
                                               key_id=pub.key_id))
    created, rec = append_record(ledger, kind=KIND, record_id=record_id,
                                 enterprise_id=body.verifier, document=doc.model_dump(mode="json"))
    return created, _registered(rec.record_id, rec.leaf_index, rec.leaf_hash, rec.document)


def verifier_keys(ledger: Ledger, verifier: str) -> list[RegisteredVerifierKey]:
    """Every key registered for ``verifier``, in log order (empty if none)."""
    return [_registered(r.record_id, r.leaf_index, r.leaf_hash, r.document)
            for r in list_records(ledger, enterprise_id=verifier, kinds=(KIND,))]


def verifier_public_key(ledger: Ledger, verifier: str, key_id: str) -> PublicKey:
    """The registered key ``key_id`` of ``verifier`` (:class:`UnknownVerifierKeyError`)."""
    try:
        rec = get_record(ledger, key_record_id(verifier, key_id))
    except NotFoundError:
        raise UnknownVerifierKeyError(
            f"key {key_id} is not registered for verifier {verifier}",
            verifier=verifier, key_id=key_id) from None
    info = VerifierKey.model_validate(rec.document).public_key
    return PublicKey.from_hex(info.suite, info.public_key)
