"""The durable outbox: signed readings wait here until the ledger acknowledges them.

SQLite in WAL mode with ``synchronous=FULL``: a committed transaction survives a
``kill -9`` and a power cut. Three rules make the outbox crash-safe (trust chain
step 2 of the mission):

1. **One transaction per recording.** Taking a device's next sequence number,
   signing the reading that carries it and storing the signed JSON happen inside one
   ``BEGIN IMMEDIATE`` transaction. A crash before ``COMMIT`` leaves nothing (the
   sequence number was never taken, the signature never existed); after ``COMMIT``
   both are on disk. So a sequence number is never used twice and a signed reading is
   never lost.
2. **A measurement is recorded once.** ``UNIQUE(device, measured_at, quantity)``:
   recording the same measurement again (a simulator or CSV import re-run after a
   crash) is a no-op, never a second reading under a new sequence number. The same
   key with a *different* value is a conflict and is refused, never overwritten.
3. **Nothing is dropped.** A reading goes ``pending`` → ``acked`` (with the ledger's
   receipt) or ``pending`` → ``rejected`` (with the ledger's typed error: a dead
   letter, kept and listed until an operator re-queues it). Signed bytes are never
   changed; a re-queued reading is resent byte for byte, under its original number.

Readings are built with :class:`carbon_protocol.models.Reading` (a fresh 16-byte salt
each, so a published proof never reveals a low-entropy meter value) for the
deployment :class:`~carbon_protocol.models.Domain` the ledger announced, and signed
with :func:`carbon_protocol.signing.sign_reading`.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from carbon_protocol.merkle import leaf_hash
from carbon_protocol.models import Domain, Reading, SignedReading, format_utc
from carbon_protocol.signing import leaf_bytes, reading_bytes, sign_reading
from carbon_protocol.suites import PrivateKey, SuiteName, hash_fn, parse_suite

from ._internal.faults import crash_point
from .errors import (
    DomainMismatchError,
    MeasurementConflictError,
    NotProvisionedError,
    OutboxError,
)
from .simulator import Measurement

__all__ = [
    "State",
    "Outbox",
    "OutboxEntry",
    "RecordResult",
    "DeviceRow",
    "Settlement",
    "SCHEMA_VERSION",
]

State = Literal["pending", "acked", "rejected"]
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device      TEXT PRIMARY KEY,
    quantity    TEXT NOT NULL,
    unit        TEXT NOT NULL,
    next_seq    INTEGER NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    id           INTEGER PRIMARY KEY,
    device       TEXT NOT NULL REFERENCES devices(device),
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    measured_at  TEXT NOT NULL,
    quantity     TEXT NOT NULL,
    value        TEXT NOT NULL,
    cumulative   TEXT,
    quality      TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    leaf_hash    TEXT NOT NULL,
    signed       TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'acked', 'rejected')),
    recorded_at  TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    settled_at   TEXT,
    receipt      TEXT,
    error_code   TEXT,
    error        TEXT,
    UNIQUE (device, seq),
    UNIQUE (device, measured_at, quantity)
);
CREATE INDEX IF NOT EXISTS ix_readings_state ON readings (state, id);
"""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device this gateway has provisioned, with its next sequence number."""

    device: str
    quantity: str
    unit: str
    next_seq: int
    created_at: str


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored reading and where it stands."""

    id: int
    device: str
    seq: int
    measured_at: str
    quantity: str
    value: str
    state: State
    attempts: int
    signed: str
    """The signed reading's JSON, exactly as it is sent."""
    leaf_hash: str
    receipt: dict[str, Any] | None = None
    error_code: str | None = None
    error: dict[str, Any] | None = None
    settled_at: str | None = None

    def signed_reading(self) -> SignedReading:
        """The stored signed reading, parsed."""
        return SignedReading.model_validate_json(self.signed)


@dataclass
class RecordResult:
    """What a recording call did: new readings, no-ops, and the sequence numbers taken."""

    recorded: int = 0
    unchanged: int = 0
    """Measurements already in the outbox with the same content (re-runs): no-ops."""
    seqs: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per device, the first and last sequence number taken by this call."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """The ledger's verdict on one reading, to be stored by :meth:`Outbox.settle`."""

    id: int
    state: Literal["acked", "rejected"]
    receipt: dict[str, Any] | None = None
    error_code: str | None = None
    error: dict[str, Any] | None = None
    duplicate: bool = False
    """The ledger already held this reading (an idempotent resend); not stored."""


def _now() -> str:
    return format_utc(datetime.now(UTC))


class Outbox:
    """The gateway's durable store of devices, domain and signed readings.

    One :class:`Outbox` per process; it may be used from several threads (calls
    serialise on an internal lock) and several processes may open the same file
    (SQLite's write lock serialises their transactions, ``BEGIN IMMEDIATE`` takes it
    up front so a recording never fails halfway with "database is locked").
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path} could not switch to WAL mode (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=60000")
        with self._tx():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise OutboxError(f"outbox {self.path} has schema {row[0]}, this gateway "
                                  f"understands {SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """A read outside any write transaction (serialised with writers of this process)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- domain -----------------------------------------------------------------------
    def domain(self) -> Domain | None:
        """The deployment domain readings are signed for, once the ledger announced it."""
        rows = self._query("SELECT value FROM meta WHERE key='domain'")
        return Domain.model_validate_json(rows[0][0]) if rows else None

    def log_suite(self) -> SuiteName | None:
        """The hash suite of the ledger's log, used to check receipts' leaf hashes."""
        rows = self._query("SELECT value FROM meta WHERE key='log_suite'")
        return parse_suite(rows[0][0]) if rows else None

    def set_domain(self, domain: Domain, log_suite: SuiteName) -> None:
        """Adopt the ledger's domain the first time; afterwards insist on the same one.

        Readings signed for one deployment cannot be moved to another (the domain is
        inside the signature), so a different domain later means this outbox is talking
        to another ledger: :class:`DomainMismatchError` names the field that differs.
        """
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key='domain'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('domain', ?)", (domain.model_dump_json(),))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('log_suite', ?)", (log_suite,))
                return
            known = Domain.model_validate_json(row[0])
        check_domain(known, domain)

    # -- devices -----------------------------------------------------------------------
    def add_device(self, device: str, quantity: str, unit: str) -> DeviceRow:
        """Register a provisioned device locally (idempotent); sequence numbers start at 1."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM devices WHERE device=?", (device,)).fetchone()
            if row is None:
                db.execute("INSERT INTO devices (device, quantity, unit, created_at) "
                           "VALUES (?, ?, ?, ?)", (device, quantity, unit, _now()))
            elif (row["quantity"], row["unit"]) != (quantity, unit):
                raise OutboxError(f"device {device} is provisioned for {row['quantity']} in "
                                  f"{row['unit']}, not {quantity} in {unit}", device=device)
        return self.device(device)

    def device(self, device: str) -> DeviceRow:
        """One provisioned device; raises :class:`NotProvisionedError`."""
        rows = self._query("SELECT * FROM devices WHERE device=?", (device,))
        if not rows:
            raise NotProvisionedError(f"device {device} is not provisioned on this gateway; "
                                      "run `carbon-gateway provision` first", device=device)
        return DeviceRow(**dict(rows[0]))

    def devices(self) -> list[DeviceRow]:
        """Every provisioned device, sorted by identifier."""
        rows = self._query("SELECT * FROM devices ORDER BY device")
        return [DeviceRow(**dict(r)) for r in rows]

    # -- recording --------------------------------------------------------------------
    def record(
        self,
        measurements: Iterable[Measurement],
        keys: Mapping[str, PrivateKey] | Callable[[str], PrivateKey],
        *,
        on_conflict: Literal["raise", "skip"] = "raise",
        labels: Sequence[str] | None = None,
    ) -> RecordResult:
        """Sign and store measurements in one transaction; re-recorded ones are no-ops.

        ``keys`` gives each device's current signing key. A measurement already stored
        with the same value, register and quality is skipped; with different content it
        raises :class:`MeasurementConflictError` (``on_conflict="raise"``, and then
        nothing of this call is stored) or is skipped and left as stored
        (``"skip"``). ``labels`` (one per measurement, e.g. ``"file.csv:12"``) make
        conflict messages point at the source.
        """
        domain = self.domain()
        if domain is None:
            raise OutboxError("the ledger's domain is not known yet: connect to the ledger "
                              "once (`carbon-gateway provision`) before recording")
        suite = self.log_suite()
        h = hash_fn(suite or "sm")
        get_key = keys.__getitem__ if isinstance(keys, Mapping) else keys
        result = RecordResult()
        now = _now()
        with self._tx() as db:
            next_seq: dict[str, int] = {}
            first: dict[str, int] = {}
            signers: dict[str, PrivateKey] = {}
            for i, m in enumerate(measurements):
                at = format_utc(m.measured_at)
                prior = db.execute(
                    "SELECT value, cumulative, quality, seq FROM readings "
                    "WHERE device=? AND measured_at=? AND quantity=?",
                    (m.device_id, at, m.quantity)).fetchone()
                if prior is not None:
                    if (prior["value"], prior["cumulative"], prior["quality"]) == (
                            m.value, m.cumulative, m.quality):
                        result.unchanged += 1
                        continue
                    if on_conflict == "skip":
                        continue
                    where = f"{labels[i]}: " if labels is not None else ""
                    raise MeasurementConflictError(
                        f"{where}{m.device_id} {m.quantity} at {at} was recorded before "
                        f"(seq {prior['seq']}) with value {prior['value']}, register "
                        f"{prior['cumulative']}, quality {prior['quality']}; refusing to "
                        f"record value {m.value}, register {m.cumulative}, quality {m.quality}",
                        device=m.device_id, measured_at=at, index=i)
                if m.device_id not in next_seq:
                    dev = db.execute("SELECT quantity, unit, next_seq FROM devices "
                                     "WHERE device=?", (m.device_id,)).fetchone()
                    if dev is None:
                        raise NotProvisionedError(
                            f"device {m.device_id} is not provisioned on this gateway",
                            device=m.device_id)
                    if (dev["quantity"], dev["unit"]) != (m.quantity, m.unit):
                        raise OutboxError(
                            f"device {m.device_id} measures {dev['quantity']} in "
                            f"{dev['unit']}, not {m.quantity} in {m.unit}", device=m.device_id)
                    next_seq[m.device_id] = int(dev["next_seq"])
                    signers[m.device_id] = get_key(m.device_id)
                seq = next_seq[m.device_id]
                key = signers[m.device_id]
                pub = key.public_key()
                reading = Reading(
                    suite=pub.suite, key_id=pub.key_id, device=m.device_id, seq=seq,
                    measured_at=at, quantity=m.quantity, unit=m.unit, value=m.value,
                    cumulative=m.cumulative, quality=m.quality,
                    salt=secrets.token_hex(16), domain=domain,
                )
                signed = sign_reading(reading, key)
                data = reading_bytes(reading)
                leaf = leaf_hash(h, leaf_bytes(signed, reading_data=data)).hex()
                db.execute(
                    "INSERT INTO readings (device, seq, measured_at, quantity, value, "
                    "cumulative, quality, key_id, leaf_hash, signed, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (m.device_id, seq, at, m.quantity, m.value, m.cumulative, m.quality,
                     pub.key_id, leaf, signed.model_dump_json(), now))
                first.setdefault(m.device_id, seq)
                next_seq[m.device_id] = seq + 1
                result.recorded += 1
            for device, nxt in next_seq.items():
                db.execute("UPDATE devices SET next_seq=? WHERE device=?", (nxt, device))
                if device in first:
                    result.seqs[device] = (first[device], nxt - 1)
            if result.recorded:
                crash_point("gateway.before_commit")
        if result.recorded:
            crash_point("gateway.after_commit")
        return result

    # -- uploading --------------------------------------------------------------------
    def pending(self, limit: int = 500, *, after_id: int = 0) -> list[OutboxEntry]:
        """Up to ``limit`` pending readings in recording order (so per device in seq order)."""
        rows = self._query(
            "SELECT * FROM readings WHERE state='pending' AND id>? ORDER BY id LIMIT ?",
            (after_id, limit))
        return [_entry(r) for r in rows]

    def note_attempt(self, ids: Sequence[int]) -> None:
        """Count one more delivery attempt for readings whose upload did not get an answer."""
        if not ids:
            return
        with self._tx() as db:
            db.executemany("UPDATE readings SET attempts=attempts+1 WHERE id=?",
                           [(i,) for i in ids])

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Store the ledger's verdicts (receipts or typed errors) in one transaction.

        Only ``pending`` readings change: settling twice (e.g. a flush re-run after a
        crash that got the same duplicate receipt) does not rewrite an earlier verdict.
        """
        if not settlements:
            return
        now = _now()
        with self._tx() as db:
            db.executemany(
                "UPDATE readings SET state=?, receipt=?, error_code=?, error=?, settled_at=?, "
                "attempts=attempts+1 WHERE id=? AND state='pending'",
                [(s.state, None if s.receipt is None else json.dumps(s.receipt, sort_keys=True),
                  s.error_code, None if s.error is None else json.dumps(s.error, sort_keys=True),
                  now, s.id) for s in settlements])

    def requeue(self, *, code: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Put rejected readings back to ``pending`` (same bytes, same seq); return how many.

        For rejections that were about the ledger's state, not the reading (e.g.
        ``unknown_key`` before a rotated key was registered).
        """
        sql = "UPDATE readings SET state='pending', settled_at=NULL WHERE state='rejected'"
        args: list[Any] = []
        if code is not None:
            sql += " AND error_code=?"
            args.append(code)
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        with self._tx() as db:
            return db.execute(sql, args).rowcount

    # -- reporting --------------------------------------------------------------------
    def counts(self) -> dict[State, int]:
        """How many readings are in each state."""
        out: dict[State, int] = {"pending": 0, "acked": 0, "rejected": 0}
        for state, n in self._query("SELECT state, count(*) FROM readings GROUP BY state"):
            out[state] = int(n)
        return out

    def dead_letters(self, limit: int = 100) -> list[OutboxEntry]:
        """Readings the ledger rejected, oldest first, with its typed error."""
        rows = self._query("SELECT * FROM readings WHERE state='rejected' ORDER BY id LIMIT ?",
                           (limit,))
        return [_entry(r) for r in rows]

    def entries(self, device: str | None = None) -> list[OutboxEntry]:
        """Every reading (of one device), in recording order."""
        if device is None:
            rows = self._query("SELECT * FROM readings ORDER BY id")
        else:
            rows = self._query("SELECT * FROM readings WHERE device=? ORDER BY seq", (device,))
        return [_entry(r) for r in rows]

    def seqs(self, device: str) -> list[int]:
        """The sequence numbers stored for a device, ascending."""
        return [int(r[0]) for r in self._query(
            "SELECT seq FROM readings WHERE device=? ORDER BY seq", (device,))]


def _entry(r: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        id=r["id"], device=r["device"], seq=r["seq"], measured_at=r["measured_at"],
        quantity=r["quantity"], value=r["value"], state=r["state"], attempts=r["attempts"],
        signed=r["signed"], leaf_hash=r["leaf_hash"],
        receipt=None if r["receipt"] is None else json.loads(r["receipt"]),
        error_code=r["error_code"],
        error=None if r["error"] is None else json.loads(r["error"]),
        settled_at=r["settled_at"],
    )


def check_domain(known: Domain, announced: Domain) -> None:
    """Raise :class:`DomainMismatchError` unless the ledger announces the known domain."""
    for name in ("chain_id", "contract", "log_id"):
        want, got = getattr(known, name), getattr(announced, name)
        if want != got:
            raise DomainMismatchError(
                f"the ledger serves {name} {got}, but this outbox signs readings for {name} "
                f"{want}; refusing to mix deployments (readings signed for one cannot be "
                "accepted by another)", field=name, expected=str(want), got=str(got))
