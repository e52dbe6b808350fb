"""Issue a signed financing code and render it as a QR image.

The code binds its verdicts to the exact configuration that produced them: the RFC
8785 JSON of :class:`FinanceConfig` together with the benchmark used, hashed with the
issuer's suite hash, is the code's ``rule_config_hash``. A bank that holds the
published configuration recomputes the hash with :func:`rule_config_hash`; a code
produced under quietly relaxed thresholds shows a different one.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Annotated

import qrcode
from pydantic import BaseModel, ConfigDict, Field
from qrcode.constants import ERROR_CORRECT_M

from carbon_protocol.canonical import canonical_json
from carbon_protocol.financing_code import (
    FinancingCode,
    SignedFinancingCode,
    encode_qr_payload,
    sign_financing_code,
)
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import Period
from carbon_protocol.models import format_utc
from carbon_protocol.suites import PrivateKey, SuiteName, digest

from ..errors import InvalidInputError
from ._numbers import wire_decimal
from .grading import Benchmark, GradeResult, GradeThresholds
from .integrity import IntegrityResult, IntegrityRules

__all__ = ["FinanceConfig", "rule_config_hash", "issue_financing_code", "render_qr_png"]


class FinanceConfig(BaseModel):
    """Grade factors, integrity rules and how long a code stays valid (defaults documented
    in :mod:`.grading` and :mod:`.integrity`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grade: GradeThresholds = GradeThresholds()
    integrity: IntegrityRules = IntegrityRules()
    valid_days: Annotated[int, Field(ge=1, le=366)] = 30
    """Default 30 days: a bank re-checks about monthly, as inventories are monthly."""


def rule_config_hash(config: FinanceConfig, benchmark: Benchmark, suite: SuiteName) -> str:
    """Hex hash of ``{"benchmark": ..., "config": ...}`` as RFC 8785 JSON."""
    doc = {"benchmark": benchmark.model_dump(mode="json"),
           "config": config.model_dump(mode="json")}
    return digest(suite, canonical_json(doc)).hex()


def issue_financing_code(
    *,
    key: PrivateKey,
    issuer: IdentifierStr,
    enterprise: IdentifierStr,
    period: Period,
    grade: GradeResult,
    integrity: IntegrityResult,
    config: FinanceConfig,
    issued_at: datetime,
) -> SignedFinancingCode:
    """Sign a financing code for the grade and integrity results given.

    ``key`` is the ledger's log key (``Ledger.log_key``) and ``issuer`` its log id, so
    a bank needs one key for tree heads and codes alike. Raises
    :class:`InvalidInputError` if the results cannot be put on the wire.
    """
    pub = key.public_key()
    try:
        code = FinancingCode(
            suite=pub.suite, key_id=pub.key_id, issuer=issuer, enterprise=enterprise,
            period=period, grade=grade.grade, intensity=wire_decimal(grade.intensity),
            benchmark=wire_decimal(grade.benchmark.value), intensity_unit=grade.benchmark.unit,
            code=integrity.code, rules_fired=integrity.fired,
            rule_config_hash=rule_config_hash(config, grade.benchmark, pub.suite),
            issued_at=format_utc(issued_at),
            expires_at=format_utc(issued_at + timedelta(days=config.valid_days)),
        )
    except ValueError as exc:
        raise InvalidInputError(f"cannot issue a financing code: {exc}") from None
    return sign_financing_code(code, key)


def render_qr_png(signed: SignedFinancingCode, *, box_size: int = 4) -> bytes:
    """A PNG QR code (error correction M, 4-module quiet zone) carrying the compact payload.

    The payload is the only content, so any QR reader hands a bank's app exactly the
    text :func:`carbon_protocol.financing_code.verify_financing_code` takes.
    """
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    qr.add_data(encode_qr_payload(signed), optimize=0)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image().save(out)
    return out.getvalue()
