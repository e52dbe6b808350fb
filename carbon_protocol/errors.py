"""The one error family of the wire protocol.

Every failure to parse, sign or verify protocol objects raises a subclass of
:class:`ProtocolError`. Verification failures raise :class:`VerificationError`
(or a subclass) with an "expected X, got Y" message, so the verifier can name the
step that failed and what it saw, the way sigstore's verifier does.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """Base of every error raised by :mod:`carbon_protocol`."""

    code: str = "protocol_error"

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-ready description for logs and API problem documents."""
        return {"code": self.code, "message": str(self)}


class EncodingError(ProtocolError, ValueError):
    """A value cannot be encoded or decoded in the protocol's formats."""

    code = "encoding_error"


class IdentifierError(ProtocolError, ValueError):
    """A string is not a valid ``<prefix>/<suffix>`` identifier."""

    code = "invalid_identifier"


class UnsupportedSuiteError(ProtocolError, ValueError):
    """A crypto suite name is not one this implementation knows."""

    code = "unsupported_suite"


class KeyFormatError(ProtocolError, ValueError):
    """A public or private key is malformed for its suite."""

    code = "invalid_key"


class VerificationError(ProtocolError):
    """An integrity check failed: a signature, a hash, a proof or an anchor."""

    code = "verification_failed"


class SignatureError(VerificationError):
    """A signature does not verify under the given key."""

    code = "bad_signature"


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""

    code = "bad_proof"


class EnvelopeError(ProtocolError, ValueError):
    """A delivery envelope is malformed, or is not for the key offered to open it."""

    code = "envelope_error"


class DecryptionError(EnvelopeError, VerificationError):
    """An envelope does not decrypt: tampered, truncated, or sealed to another key.

    One error for every cause, deliberately: saying which check failed would help
    an attacker probing a decryptor.
    """

    code = "decryption_failed"


class BundleVerificationError(VerificationError):
    """A proof bundle failed one numbered verification step.

    ``step`` and ``step_name`` say where verification stopped; ``expected`` and
    ``found`` carry the two values that disagreed, when there are two.
    """

    code = "bundle_verification_failed"

    def __init__(
        self,
        step: int,
        step_name: str,
        message: str,
        *,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        detail = message
        if expected is not None or found is not None:
            detail = f"{message}: expected {expected}, found {found}"
        super().__init__(f"step {step} ({step_name}) failed: {detail}")
        self.step = step
        self.step_name = step_name
        self.expected = expected
        self.found = found

    def diagnostics(self) -> dict[str, Any]:
        out = super().diagnostics()
        out.update(step=self.step, step_name=self.step_name, expected=self.expected,
                   found=self.found)
        return out


class FinancingCodeError(VerificationError):
    """A financing code is malformed, not canonical, or not from the key offered.

    A bad signature raises :class:`SignatureError` instead, so a caller can tell a
    forgery from a damaged scan; both are :class:`VerificationError`.
    """

    code = "invalid_financing_code"


class ExpiredFinancingCodeError(FinancingCodeError):
    """A financing code verified, but is used outside its validity window."""

    code = "expired_financing_code"
