"""Readings refused for their signature or key, remembered so integrity rules can count them.

A refused reading is answered with a typed error and stored nowhere: it must not reach
the log. But a bank judging an enterprise's data wants to know how often its meters
sent readings that failed the signature check (``signature_failures``, one of the
financing code's integrity rules), so the refusal itself is kept: device, sequence
number, claimed measurement time and reason, once per ``(device, seq, reason)``, so a
gateway resending the same bad reading a hundred times counts once.

Counted: a bad signature, a wrong domain, a key that is unknown for the device, revoked
or not yet valid. Not counted: a reading of an unregistered device (it names no
enterprise) or a replayed sequence number (the signature was good; that is a sequence
problem). Only the enterprise's own gateways may post readings of its devices (the
route's access policy), so nobody else can inflate its count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from carbon_protocol.inventory import Period
from carbon_protocol.models import SignedReading

from ._internal.clock import utc_text
from ._internal.db import devices, insert_or_ignore, rejected_readings, sites
from .errors import (
    BadSignatureError,
    LedgerError,
    RevokedKeyError,
    UnknownKeyError,
    WrongDomainError,
)

__all__ = ["COUNTED", "record_rejections", "signature_failures"]

COUNTED: tuple[type[LedgerError], ...] = (BadSignatureError, WrongDomainError,
                                          UnknownKeyError, RevokedKeyError)
"""The refusals that say a reading's signature or key cannot be trusted."""


def record_rejections(conn: Connection, batch: Sequence[SignedReading],
                      errors: Mapping[int, LedgerError], *,
                      now: datetime | None = None) -> int:
    """Remember the counted refusals among ``errors`` (index into ``batch``) of
    registered devices; returns how many rows were offered (resends insert nothing)."""
    counted = {i: e for i, e in errors.items() if isinstance(e, COUNTED)}
    if not counted:
        return 0
    named = {batch[i].reading.device for i in counted}
    known = set(conn.scalars(select(devices.c.id).where(devices.c.id.in_(named))))
    received = utc_text(now)
    rows = [{"device_id": batch[i].reading.device, "seq": batch[i].reading.seq,
             "code": e.code, "measured_at": batch[i].reading.measured_at,
             "received_at": received}
            for i, e in counted.items() if batch[i].reading.device in known]
    if rows:
        conn.execute(insert_or_ignore(conn, rejected_readings, "device_id", "seq", "code"),
                     rows)
    return len(rows)


def signature_failures(conn: Connection, enterprise: str, period: Period) -> int:
    """Refused readings of the enterprise's devices measured in ``(start, end]``: each
    ``(device, seq)`` once, however many reasons it was refused for."""
    pairs = (select(rejected_readings.c.device_id, rejected_readings.c.seq)
             .join(devices, devices.c.id == rejected_readings.c.device_id)
             .join(sites, sites.c.id == devices.c.site_id)
             .where(sites.c.enterprise_id == enterprise,
                    rejected_readings.c.measured_at > period.start,
                    rejected_readings.c.measured_at <= period.end)
             .distinct().subquery())
    return int(conn.execute(select(func.count()).select_from(pairs)).scalar_one())
