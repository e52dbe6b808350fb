"""Maintenance operations and calibrations of devices get identifiers where they happen.

The gateway (or whoever services a meter) signs each event with the owner key of the
deployment prefix and keeps it in a spool directory *before* sending it, like readings
in the outbox: an event is written whole (temporary file, then rename) and leaves the
spool only once the resolver node answered with a receipt. A node that cannot be
reached keeps everything spooled for the next :func:`send_spooled`; sending again is
harmless, because a node answers a version it already stores, byte for byte, with its
receipt. An event the node *refuses* (bad signature, unknown device) would be refused
forever, so it moves to ``refused/`` with the node's problem document beside it.

Identifiers: ``<prefix>/mnt.<device suffix>.<UTC time>`` and
``<prefix>/cal.<device suffix>.<UTC time>`` (time as ``20260105T080000Z``), so one
device has one maintenance record per moment, and the record links ``performed_on`` /
``calibrates`` the device in the custody graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx

from carbon_protocol.suites import PrivateKey

from .errors import InvalidRequestError, NodeUnavailableError
from .models import SignedRecord
from .records import calibration, maintenance, signed_record_bytes

__all__ = ["EventKind", "event_id", "new_event", "EventSpool", "SendReport", "send_spooled"]

EventKind = Literal["maintenance", "calibration"]
_TAG = {"maintenance": "mnt", "calibration": "cal"}
_PATH = {"maintenance": "maintenance", "calibration": "calibrations"}


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequestError(f"{text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise InvalidRequestError(f"{text!r} has no time zone; give Z or an offset")
    return moment.astimezone(UTC)


def event_id(kind: EventKind, device_id: str, at: str) -> str:
    """The identifier of ``device_id``'s ``kind`` event at time ``at`` (ISO 8601)."""
    prefix, _, suffix = device_id.partition("/")
    stamp = _utc(at).strftime("%Y%m%dT%H%M%SZ")
    if len(suffix) > 100:  # keep within the grammar's 128 characters
        suffix = "h" + hashlib.sha256(suffix.encode()).hexdigest()[:32]
    return f"{prefix}/{_TAG[kind]}.{suffix}.{stamp}"


def new_event(kind: EventKind, device_id: str, owner: str, key: PrivateKey, *, at: str,
              maintenance_kind: str = "", description: str = "",
              performed_by: str | None = None, laboratory: str = "", certificate: str = "",
              next_due: str | None = None, document: bytes | None = None) -> SignedRecord:
    """Build and sign one event record (``document``: hashed into the record, e.g. the
    calibration certificate's PDF)."""
    ident = event_id(kind, device_id, at)
    when = _utc(at).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "maintenance":
        if not maintenance_kind or not description:
            raise InvalidRequestError("a maintenance record needs a kind and a description")
        return maintenance(ident, device_id, owner, key, performed_at=when,
                           kind=maintenance_kind, description=description,
                           performed_by=performed_by, document=document)
    if not laboratory or not certificate:
        raise InvalidRequestError("a calibration record needs a laboratory and a certificate")
    return calibration(ident, device_id, owner, key, calibrated_at=when, laboratory=laboratory,
                       certificate=certificate, next_due=next_due, document=document)


class EventSpool:
    """Signed events waiting for the resolver, one file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.refused_dir = directory / "refused"

    def _path(self, signed: SignedRecord) -> Path:
        name = hashlib.sha256(signed.record.id.encode()).hexdigest()[:24]
        return self.directory / f"{name}.v{signed.record.version}.json"

    def put(self, signed: SignedRecord) -> Path:
        """Keep ``signed`` durably (whole or not at all) until it is sent."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(signed)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(signed_record_bytes(signed))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    def pending(self) -> list[tuple[Path, SignedRecord]]:
        """Spooled events, oldest first."""
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        return [(p, SignedRecord.model_validate_json(p.read_bytes())) for p in files]

    def refuse(self, path: Path, problem: dict[str, object]) -> Path:
        """Move an event the node refused out of the way, its problem beside it."""
        self.refused_dir.mkdir(parents=True, exist_ok=True)
        target = self.refused_dir / path.name
        os.replace(path, target)
        target.with_suffix(".problem.json").write_text(json.dumps(problem, indent=2))
        return target


@dataclass
class SendReport:
    """What one :func:`send_spooled` did."""

    sent: list[str] = field(default_factory=list)
    refused: dict[str, dict[str, object]] = field(default_factory=dict)
    pending: int = 0
    """Events still spooled (the node was unreachable)."""


def send_spooled(spool: EventSpool, url: str, *, http: httpx.Client | None = None,
                 timeout: float = 10.0) -> SendReport:
    """Send every spooled event to the node at ``url``, in order; stop at the first
    connection failure (what is left stays spooled). Only ``url`` is ever contacted."""
    report = SendReport()
    client = http or httpx.Client(timeout=timeout)
    try:
        items = spool.pending()
        for done, (path, signed) in enumerate(items):
            record = signed.record
            device = record.links[0].target if record.links else ""
            kind: EventKind = "maintenance" if record.type == "maintenance" else "calibration"
            endpoint = f"{url.rstrip('/')}/devices/{quote(device, safe='/')}/{_PATH[kind]}"
            try:
                resp = client.post(endpoint, content=signed_record_bytes(signed),
                                   headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                report.pending = len(items) - done
                if not report.sent and not report.refused:
                    raise NodeUnavailableError(f"resolver {url} unreachable: {exc}; "
                                               f"{report.pending} event(s) stay spooled",
                                               url=url) from exc
                return report
            if resp.status_code == 201:
                path.unlink()
                report.sent.append(record.id)
            elif resp.status_code >= 500 or resp.status_code == 429:
                report.pending = len(items) - done  # the node's trouble: try again later
                return report
            else:
                try:
                    problem = resp.json()
                except ValueError:
                    problem = {"code": "http_error", "message": resp.text[:500]}
                problem = problem if isinstance(problem, dict) else {"body": problem}
                problem["status"] = resp.status_code
                spool.refuse(path, problem)
                report.refused[record.id] = problem
    finally:
        if http is None:
            client.close()
    return report
