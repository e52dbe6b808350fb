"""The node gateway's one error family.

Every failure the gateway raises on purpose derives from :class:`GatewayError`, whose
:meth:`~GatewayError.diagnostics` gives a stable ``code``, a message and details that
are safe to print: no error in this family ever carries key material (a keystore
error names the device and the file, never the bytes it found there).

Subclasses that replace a builtin also derive from it (``CsvImportError`` is a
``ValueError``, ``LedgerUnavailableError`` a ``ConnectionError``), in web3.py's manner,
so callers that only know the builtins still catch them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "GatewayError",
    "ConfigurationError",
    "KeystoreError",
    "KeyNotFoundError",
    "KeyExistsError",
    "KeyPermissionError",
    "CsvImportError",
    "CsvProblem",
    "OutboxError",
    "NotProvisionedError",
    "DomainMismatchError",
    "MeasurementConflictError",
    "UploadError",
    "LedgerUnavailableError",
    "LedgerProtocolError",
    "RegistrationError",
]


class GatewayError(Exception):
    """Base of every error raised by :mod:`node_gateway`."""

    code: str = "gateway_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-ready description for logs and the CLI: ``code``, ``message``, details."""
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details:
            out["details"] = self.details
        return out


class ConfigurationError(GatewayError, ValueError):
    """The gateway's settings or local state are unusable as given."""

    code = "configuration_error"


# -- keystore ---------------------------------------------------------------------------
class KeystoreError(GatewayError):
    """A device key cannot be created, read or rotated."""

    code = "keystore_error"


class KeyNotFoundError(KeystoreError, LookupError):
    """No key is stored for the device."""

    code = "key_not_found"


class KeyExistsError(KeystoreError, FileExistsError):
    """A key is already stored for the device (create never overwrites)."""

    code = "key_exists"


class KeyPermissionError(KeystoreError, PermissionError):
    """A key file or the key directory is readable by others than its owner."""

    code = "key_permissions"


# -- CSV import -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CsvProblem:
    """One thing wrong with one row of a CSV file: where, which field, what."""

    file: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class CsvImportError(GatewayError, ValueError):
    """A CSV file was refused as a whole; ``problems`` lists every row and field at fault."""

    code = "csv_invalid"

    def __init__(self, file: str, problems: list[CsvProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{file}: {len(problems)} problem(s), nothing imported: {shown}{more}",
                         file=file)
        self.file = file
        self.problems = problems

    def diagnostics(self) -> dict[str, Any]:
        out = super().diagnostics()
        out["details"] = {
            "file": self.file,
            "problems": [
                {"line": p.line, "field": p.field, "message": p.message}
                for p in self.problems[:100]
            ],
        }
        return out


# -- outbox -----------------------------------------------------------------------------
class OutboxError(GatewayError):
    """The durable outbox cannot record or settle readings."""

    code = "outbox_error"


class NotProvisionedError(OutboxError, LookupError):
    """A measurement names a device this gateway has not provisioned."""

    code = "device_not_provisioned"


class DomainMismatchError(OutboxError):
    """The ledger serves another deployment (chain, contract or log) than the outbox's.

    Uploading then would only get every reading refused as ``wrong_domain``; the
    gateway stops instead and says which field differs.
    """

    code = "domain_mismatch"


class MeasurementConflictError(OutboxError):
    """A measurement was recorded before with a different value (nothing is overwritten)."""

    code = "measurement_conflict"


# -- upload and registration ------------------------------------------------------------
class UploadError(GatewayError):
    """Readings could not be delivered to the ledger."""

    code = "upload_failed"


class LedgerUnavailableError(UploadError, ConnectionError):
    """The ledger did not answer usefully (network error or 5xx) within the retry budget.

    Nothing is lost: the readings stay ``pending`` and the next flush sends them.
    """

    code = "ledger_unavailable"


class LedgerProtocolError(UploadError):
    """The ledger answered something the gateway cannot interpret (a contract violation)."""

    code = "ledger_protocol_error"


class RegistrationError(GatewayError):
    """The ledger refused to register a device or a device key."""

    code = "registration_failed"
