"""Ingest: verify signed readings, store them once, append their leaves to the log.

Order of checks for each reading (the first failure names the reading's problem):

1. domain: signed for this chain, contract and log (no cross-deployment replay);
2. key: registered, belongs to the reading's device, valid at receipt time;
3. signature over the RFC 8785 bytes of the reading;
4. sequence: a ``(device, seq)`` already stored with the *same* leaf is an idempotent
   duplicate (same receipt, no new leaf); with a *different* leaf it is a replay and
   refused; a jump forward is accepted and flagged with the number of missing values.

Verification happens before the database lock is taken; only the duplicate check,
the appends and the inserts run under it, so the lock is held for milliseconds. The lock
is the ``log_state`` row (``SELECT ... FOR UPDATE`` on PostgreSQL, SQLite's write lock),
so with several service processes on one database the duplicate check of each batch
sees every reading any process committed before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal, NamedTuple

from sqlalchemy import BigInteger, Connection, and_, bindparam, or_, select, update

from carbon_protocol.errors import ProtocolError
from carbon_protocol.merkle import leaf_hash
from carbon_protocol.models import Domain, Reading, SignedReading
from carbon_protocol.signing import leaf_bytes, reading_bytes, reading_id, verify_reading
from carbon_protocol.suites import PublicKey, SuiteName, hash_fn

from ._internal.clock import utc_text
from ._internal.db import bulk_insert, device_keys, devices, greatest, readings
from .errors import (
    BadSignatureError,
    LedgerError,
    ReplayError,
    RevokedKeyError,
    UnknownDeviceError,
    UnknownKeyError,
    WrongDomainError,
)
from .models import Receipt

__all__ = ["Verified", "verify_batch", "store_batch", "Outcome"]


@lru_cache(maxsize=65_536)
def _public_key(suite: SuiteName, raw_hex: str) -> PublicKey:
    """Parsed keys are immutable, so parsing each once is safe across requests."""
    return PublicKey.from_hex(suite, raw_hex)


@dataclass(frozen=True, slots=True)
class Verified:
    """A reading that passed steps 1-3, with its leaf."""

    index: int
    signed: SignedReading
    leaf_data: bytes
    leaf_hash: bytes
    reading_id: str


_READING_COLUMNS = ("id", "device_id", "seq", "leaf_index", "leaf_hash", "leaf_data",
                    "measured_at", "received_at", "gap_before")

Outcome = tuple[Literal["accepted", "duplicate"], Receipt] | LedgerError
"""Per reading: a receipt, new or for an identical earlier submission, or the refusal."""


class _KeyState(NamedTuple):
    device_id: str
    suite: SuiteName
    public_key: str
    valid_from: str
    revoked_at: str | None


def _label(r: Reading) -> str:
    return f"reading {r.device}#{r.seq}"


def _check_domain(r: Reading, domain: Domain) -> None:
    got = r.domain
    # Field by field, not ``got == domain``: pydantic's __eq__ costs more than the
    # three comparisons, once per reading.
    if (got.chain_id == domain.chain_id and got.contract == domain.contract
            and got.log_id == domain.log_id):
        return
    for name in ("chain_id", "contract", "log_id"):
        want, have = getattr(domain, name), getattr(got, name)
        if want != have:
            raise WrongDomainError(
                f"{_label(r)} was signed for {name} {have}, this ledger is {name} {want}",
                field=name, expected=want, got=have,
            )


def verify_batch(
    conn: Connection,
    batch: Sequence[SignedReading],
    *,
    domain: Domain,
    log_suite: SuiteName,
    prefix: str,
    now: datetime | None = None,
) -> tuple[list[Verified], dict[int, LedgerError]]:
    """Steps 1-3 for every reading; returns the verified ones and the refusals by index."""
    received = utc_text(now)
    key_ids = {s.reading.key_id for s in batch}
    # Plain tuples: the loop below reads four attributes per reading, and a database
    # row's attribute access costs several times a named tuple's.
    keys = {
        row.key_id: _KeyState(row.device_id, row.suite, row.public_key, row.valid_from,
                              row.revoked_at)
        for row in conn.execute(select(device_keys).where(device_keys.c.key_id.in_(key_ids)))
    }
    device_ids = {s.reading.device for s in batch}
    known_devices = {
        row.id for row in conn.execute(select(devices.c.id).where(devices.c.id.in_(device_ids)))
    }
    h = hash_fn(log_suite)
    ok: list[Verified] = []
    errors: dict[int, LedgerError] = {}
    for i, signed in enumerate(batch):
        r = signed.reading
        try:
            _check_domain(r, domain)
            if r.device not in known_devices:
                raise UnknownDeviceError(f"{_label(r)}: device {r.device} is not registered",
                                         device=r.device)
            key = keys.get(r.key_id)
            if key is None or key.device_id != r.device:
                raise UnknownKeyError(f"{_label(r)}: key {r.key_id} is not registered for "
                                      f"device {r.device}", key_id=r.key_id)
            if received < key.valid_from:
                raise RevokedKeyError(f"{_label(r)}: key {r.key_id} is valid only from "
                                      f"{key.valid_from}", key_id=r.key_id)
            if key.revoked_at is not None and received >= key.revoked_at:
                raise RevokedKeyError(f"{_label(r)}: key {r.key_id} was revoked at "
                                      f"{key.revoked_at}", key_id=r.key_id,
                                      revoked_at=key.revoked_at)
            data = reading_bytes(r)
            try:
                verify_reading(signed, _public_key(key.suite, key.public_key), reading_data=data)
            except ProtocolError as exc:
                raise BadSignatureError(f"{_label(r)}: {exc}", key_id=r.key_id) from exc
        except LedgerError as exc:
            errors[i] = exc
            continue
        leaf_data = leaf_bytes(signed, reading_data=data)
        leaf = leaf_hash(h, leaf_data)
        ok.append(Verified(i, signed, leaf_data, leaf, reading_id(prefix, leaf)))
    return ok, errors


def store_batch(
    conn: Connection,
    verified: Sequence[Verified],
    *,
    log_id: str,
    first_index: int,
    now: datetime | None = None,
) -> tuple[list[Verified], list[Outcome]]:
    """Step 4 under the log lock: decide duplicates and replays, insert the new readings.

    Returns the readings to append (in leaf order, starting at ``first_index``) and the
    outcome of every reading given, in the order given.
    """
    received = utc_text(now)
    pairs = [(v.signed.reading.device, v.signed.reading.seq) for v in verified]
    last_seq = {
        row.id: row.last_seq
        for row in conn.execute(
            select(devices.c.id, devices.c.last_seq)
            .where(devices.c.id.in_({d for d, _ in pairs}))
        )
    }
    # Only a sequence number at or below the device's last one can be stored already,
    # so the usual forward-moving batch needs no look-up at all. The look-up is one
    # (device = ? AND seq IN (...)) term per device, which SQLite answers from the
    # unique index; a row-value IN list would scan the table.
    candidates: dict[str, set[int]] = {}
    for device, seq in pairs:
        if seq <= last_seq.get(device, 0):
            candidates.setdefault(device, set()).add(seq)
    stored = {}
    if candidates:
        for row in conn.execute(
            select(readings.c.id, readings.c.device_id, readings.c.seq, readings.c.leaf_hash,
                   readings.c.leaf_index, readings.c.gap_before)
            .where(or_(*(and_(readings.c.device_id == d, readings.c.seq.in_(sorted(s)))
                         for d, s in candidates.items())))
        ):
            stored[(row.device_id, row.seq)] = row
    outcomes: list[Outcome] = []
    fresh: list[Verified] = []
    rows = []
    taken: dict[tuple[str, int], Receipt] = {}
    raised: dict[str, int] = {}
    next_index = first_index
    for v in verified:
        r = v.signed.reading
        key = (r.device, r.seq)
        prior = stored.get(key)
        if prior is not None or key in taken:
            prior_leaf = bytes(prior.leaf_hash) if prior is not None else bytes.fromhex(
                taken[key].leaf_hash)
            if prior_leaf != v.leaf_hash:
                outcomes.append(ReplayError(
                    f"{_label(r)}: sequence number already used by another "
                    f"reading (leaf {prior_leaf.hex()[:16]}…), this one is leaf "
                    f"{v.leaf_hash.hex()[:16]}…", device=r.device, seq=r.seq))
            elif prior is not None:
                outcomes.append(("duplicate", Receipt(
                    reading_id=prior.id, device=r.device, seq=r.seq,
                    leaf_index=prior.leaf_index, leaf_hash=v.leaf_hash.hex(), log_id=log_id,
                    gap_before=prior.gap_before,
                )))
            else:
                outcomes.append(("duplicate", taken[key]))
            continue
        last = last_seq.get(r.device, 0)
        gap = r.seq - last - 1 if r.seq > last + 1 else 0
        if r.seq > last:
            last_seq[r.device] = r.seq
            raised[r.device] = r.seq
        # Every field is computed right here from validated values: validating them
        # again would cost ingest a pydantic pass per reading for nothing.
        receipt = Receipt.model_construct(
            reading_id=v.reading_id, device=r.device, seq=r.seq, leaf_index=next_index,
            leaf_hash=v.leaf_hash.hex(), log_id=log_id, gap_before=gap)
        taken[key] = receipt
        outcomes.append(("accepted", receipt))
        rows.append((v.reading_id, r.device, r.seq, next_index, v.leaf_hash, v.leaf_data,
                     r.measured_at, received, gap))
        fresh.append(v)
        next_index += 1
    bulk_insert(conn, readings, _READING_COLUMNS, rows)
    if raised:
        # GREATEST in SQL, not the value computed here: a device's last sequence number
        # never goes backwards, whichever process or transaction wrote it last.
        conn.execute(
            update(devices).where(devices.c.id == bindparam("dev"))
            .values(last_seq=greatest(conn, devices.c.last_seq,
                                      bindparam("seq", type_=BigInteger))),
            [{"dev": d, "seq": s} for d, s in raised.items()],
        )
    return fresh, outcomes
