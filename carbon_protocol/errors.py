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
