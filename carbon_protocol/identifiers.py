"""Handle-style identifiers ``<prefix>/<suffix>``: one grammar, validated everywhere.

Every enterprise, site, device, gateway, reading, tree head and anchor is named by
an identifier in the manner of the Handle System (RFC 3650) and China's
industrial-internet identifier resolution (e.g. ``86.1000.1/dev.meter-0001``):

* ``prefix``: dot-separated decimal segments, like ``86.1000.1`` (a naming
  authority; the resolver delegates prefixes to secondary nodes);
* ``suffix``: 1 to 128 characters from ``A-Z a-z 0-9 . _ : -``, starting with a letter
  or digit (a local name, unique under its prefix).

The grammar is deliberately narrower than RFC 3650 (no spaces, no percent escapes,
no ``/`` in the suffix) so identifiers are safe in URLs, file names and log lines
without escaping, and compare byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import StringConstraints

from .errors import IdentifierError

__all__ = [
    "IDENTIFIER_PATTERN",
    "PREFIX_PATTERN",
    "Identifier",
    "IdentifierStr",
    "parse_identifier",
    "is_identifier",
]

PREFIX_PATTERN = r"[0-9]{1,8}(?:\.[0-9]{1,8}){0,7}"
SUFFIX_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}"
IDENTIFIER_PATTERN = rf"^{PREFIX_PATTERN}/{SUFFIX_PATTERN}$"
_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)
_PREFIX_RE = re.compile(rf"^{PREFIX_PATTERN}$")
_SUFFIX_RE = re.compile(rf"^{SUFFIX_PATTERN}$")

IdentifierStr = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=200)]
"""A string field that must be an identifier (validated in pydantic's core)."""

PrefixStr = Annotated[str, StringConstraints(pattern=rf"^{PREFIX_PATTERN}$", max_length=71)]
"""A string field that must be an identifier prefix such as ``86.1000.1``."""


@dataclass(frozen=True, slots=True)
class Identifier:
    """A parsed identifier; ``str(identifier)`` gives its canonical text."""

    prefix: str
    suffix: str

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise IdentifierError(
                f"invalid identifier prefix {self.prefix!r}: expected dot-separated digits "
                "such as '86.1000.1'"
            )
        if not _SUFFIX_RE.match(self.suffix):
            raise IdentifierError(
                f"invalid identifier suffix {self.suffix!r}: expected 1-128 characters from "
                "A-Z a-z 0-9 . _ : - starting with a letter or digit"
            )

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"

    @classmethod
    def of(cls, prefix: str, suffix: str) -> Identifier:
        """Build an identifier from its parts, validating both."""
        return cls(prefix, suffix)


def parse_identifier(text: str) -> Identifier:
    """Parse ``<prefix>/<suffix>``; raises :class:`IdentifierError` saying what is wrong."""
    if not isinstance(text, str):
        raise IdentifierError(f"identifier must be a string, got {type(text).__name__}")
    if _IDENTIFIER_RE.match(text):
        prefix, _, suffix = text.partition("/")
        return Identifier(prefix, suffix)
    if "/" not in text:
        raise IdentifierError(f"invalid identifier {text!r}: expected '<prefix>/<suffix>'")
    prefix, _, suffix = text.partition("/")
    return Identifier(prefix, suffix)  # raises with the precise reason


def is_identifier(text: str) -> bool:
    """True when ``text`` follows the identifier grammar."""
    return isinstance(text, str) and bool(_IDENTIFIER_RE.match(text))
