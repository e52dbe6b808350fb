"""Netting offsets against gross emissions, each serial and each MWh counted once.

An :class:`OffsetLedger` records every claim in SQLite (a file, or ``:memory:``) under a
*consumption key*: what the claim is made against, e.g. ``<enterprise>/2026-10``. It
refuses double counting:

* a GEC or CCER serial is consumed by one consumption key only; claiming it under
  another key, or twice in one request, raises :class:`OffsetDoubleClaimError`;
* a green power purchase's MWh, summed over every key it was claimed under, may not
  exceed the purchase (:class:`OffsetDoubleClaimError`);
* green MWh (purchases plus certificates) claimed under one key may not exceed the
  purchased electricity MWh of that key's gross emissions
  (:class:`OverclaimedConsumptionError`);
* CCER under one key may not exceed the rules' cap of its gross emissions
  (:class:`OffsetCapExceededError`).

A claim is all or nothing: every check runs inside one ``BEGIN IMMEDIATE`` transaction
and nothing is recorded unless all pass. Re-submitting a claim already recorded under
the same key is not double counting (a retry); it changes nothing.

The result (:class:`NettingResult`) is derived from everything recorded under the key,
so a report rebuilt later shows the same offsets. Reductions: green MWh remove the
electricity lines' emissions pro rata, ``E_elec x covered / MWh_elec`` (rounded half up
once, so with a single grid factor this is ``covered x EF``); CCER tonnes count as
they are. ``net = gross - reductions``, per scope and in total; gross stays beside it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from carbon_protocol.inventory import FixedStr, Inventory

from .errors import (
    OffsetCapExceededError,
    OffsetDoubleClaimError,
    OffsetError,
    OverclaimedConsumptionError,
)
from .fixed_point import Fixed, add, checked, mul, mul_ratio, parse, to_decimal
from .offsets import CN_ETS_RULES, CertificateClaim, Claim, GreenPowerClaim, NettingRules

__all__ = [
    "AppliedOffset",
    "ClaimInput",
    "GrossEmissions",
    "NettingResult",
    "OffsetLedger",
    "gross_of",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS serials (
    kind TEXT NOT NULL, serial TEXT NOT NULL, consumption_key TEXT NOT NULL,
    quantity TEXT NOT NULL, project TEXT, PRIMARY KEY (kind, serial));
CREATE TABLE IF NOT EXISTS green_power (
    purchase_id TEXT NOT NULL, consumption_key TEXT NOT NULL, purchased_mwh TEXT NOT NULL,
    mwh TEXT NOT NULL, PRIMARY KEY (purchase_id, consumption_key));
CREATE INDEX IF NOT EXISTS serials_by_key ON serials (consumption_key);
CREATE INDEX IF NOT EXISTS green_power_by_key ON green_power (consumption_key);
"""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GrossEmissions(_Model):
    """What offsets are netted against: gross emissions and the purchased electricity
    (MWh and its emissions) that green power may cover."""

    scope1: FixedStr
    scope2: FixedStr
    total: FixedStr
    electricity_mwh: FixedStr
    electricity_emissions: FixedStr


def gross_of(inventories: Iterable[Inventory]) -> GrossEmissions:
    """Gross emissions of one or more inventories (exact sums of their lines)."""
    s1 = s2 = mwh = elec = Fixed(0)
    for inv in inventories:
        for line in inv.lines:
            e = parse(line.emissions)
            if line.scope == 1:
                s1 = add(s1, e)
            else:
                s2 = add(s2, e)
            if line.source == "purchased_electricity":
                if line.activity.unit != "MWh":
                    raise OffsetError(f"line {line.line}: electricity in {line.activity.unit}, "
                                      "expected MWh", line=line.line)
                mwh = add(mwh, parse(line.activity.value))
                elec = add(elec, e)
    return GrossEmissions(scope1=to_decimal(s1), scope2=to_decimal(s2),
                          total=to_decimal(add(s1, s2)), electricity_mwh=to_decimal(mwh),
                          electricity_emissions=to_decimal(elec))


class AppliedOffset(_Model):
    """One recorded claim and what it removes."""

    kind: Literal["green_power", "gec", "ccer"]
    references: list[str]
    quantity: FixedStr
    unit: Literal["MWh", "tCO2e"]
    reduces_scope: Literal[1, 2, "total"]
    reduction: FixedStr
    """tCO2e removed."""
    basis: str


class NettingResult(_Model):
    """Gross, offsets and net side by side, for one consumption key."""

    consumption_key: str
    rules: str
    gross: GrossEmissions
    offsets: list[AppliedOffset]
    green_mwh: FixedStr
    green_reduction: FixedStr
    ccer: FixedStr
    ccer_cap: FixedStr | None
    allowed_offsets: FixedStr
    net_scope1: FixedStr
    net_scope2: FixedStr
    net_total: FixedStr


class ClaimInput(_Model):
    """Claims asked for from outside (CLI file): what against, the gross, the claims."""

    consumption_key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    gross: GrossEmissions
    claims: list[Claim] = Field(min_length=1, max_length=10_000)
    netting_rules: NettingRules = CN_ETS_RULES


class OffsetLedger:
    """The record of consumed offsets (SQLite at ``path``; ``:memory:`` by default)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- claiming ---------------------------------------------------------------------
    def claim(self, consumption_key: str, gross: GrossEmissions, claims: Sequence[Claim],
              rules: NettingRules) -> NettingResult:
        """Record ``claims`` against ``consumption_key`` and return the netting of
        everything recorded there; all or nothing (see the module docstring)."""
        if not consumption_key:
            raise OffsetError("the consumption key is empty")
        seen: set[tuple[str, str]] = set()
        for c in claims:
            rules.rule(c.kind, None if c.kind == "ccer" else 2)
            for ref in c.references():
                if (c.kind, ref) in seen:
                    raise OffsetDoubleClaimError(f"{c.kind} {ref} is claimed twice in one request",
                                                 kind=c.kind, reference=ref)
                seen.add((c.kind, ref))
        with self._transaction() as db:
            for c in claims:
                if isinstance(c, GreenPowerClaim):
                    self._record_green_power(db, consumption_key, c)
                elif isinstance(c, CertificateClaim):
                    for serial in c.serials:
                        self._record_serial(db, consumption_key, "gec", serial, "1", None)
                else:
                    self._record_serial(db, consumption_key, "ccer", c.serial, c.tco2e, c.project)
            return self._result(db, consumption_key, gross, rules)

    def result(self, consumption_key: str, gross: GrossEmissions,
               rules: NettingRules) -> NettingResult:
        """The netting of what is recorded under ``consumption_key`` (claims nothing)."""
        with self._transaction() as db:
            return self._result(db, consumption_key, gross, rules)

    @staticmethod
    def _record_serial(db: sqlite3.Connection, key: str, kind: str, serial: str,
                       quantity: str, project: str | None) -> None:
        row = db.execute("SELECT consumption_key, quantity FROM serials WHERE kind = ? AND "
                         "serial = ?", (kind, serial)).fetchone()
        if row is None:
            db.execute("INSERT INTO serials VALUES (?, ?, ?, ?, ?)",
                       (kind, serial, key, quantity, project))
            return
        if (row[0], row[1]) != (key, quantity):
            raise OffsetDoubleClaimError(
                f"{kind} {serial} was already claimed against {row[0]} ({row[1]})",
                kind=kind, reference=serial, claimed_against=row[0])

    @staticmethod
    def _record_green_power(db: sqlite3.Connection, key: str, c: GreenPowerClaim) -> None:
        rows = db.execute("SELECT consumption_key, purchased_mwh, mwh FROM green_power WHERE "
                          "purchase_id = ?", (c.purchase_id,)).fetchall()
        used = Fixed(0)
        for other_key, purchased, mwh in rows:
            if purchased != c.purchased_mwh:
                raise OffsetError(f"purchase {c.purchase_id} was recorded as {purchased} MWh, "
                                  f"this claim says {c.purchased_mwh}",
                                  reference=c.purchase_id)
            if other_key == key:
                if mwh == c.mwh:
                    return  # the same claim again: a retry
                raise OffsetDoubleClaimError(
                    f"purchase {c.purchase_id} already covers {mwh} MWh of {key}",
                    kind="green_power", reference=c.purchase_id, claimed_against=key)
            used = add(used, parse(mwh))
        if add(used, parse(c.mwh)) > parse(c.purchased_mwh):
            raise OffsetDoubleClaimError(
                f"purchase {c.purchase_id}: {to_decimal(used)} of {c.purchased_mwh} MWh already "
                f"claimed, {c.mwh} more would count its electricity twice",
                kind="green_power", reference=c.purchase_id)
        db.execute("INSERT INTO green_power VALUES (?, ?, ?, ?)",
                   (c.purchase_id, key, c.purchased_mwh, c.mwh))

    # -- netting ----------------------------------------------------------------------
    def _result(self, db: sqlite3.Connection, key: str, gross: GrossEmissions,
                rules: NettingRules) -> NettingResult:
        elec_mwh, elec = parse(gross.electricity_mwh), parse(gross.electricity_emissions)
        applied: list[AppliedOffset] = []
        covered = Fixed(0)
        for purchase, mwh in db.execute("SELECT purchase_id, mwh FROM green_power WHERE "
                                        "consumption_key = ? ORDER BY purchase_id", (key,)):
            covered = add(covered, parse(mwh))
            applied.append(AppliedOffset(kind="green_power", references=[purchase], quantity=mwh,
                                         unit="MWh", reduces_scope=2, reduction="0",
                                         basis=rules.rule("green_power", 2).basis))
        gecs = [s for (s,) in db.execute("SELECT serial FROM serials WHERE consumption_key = ? "
                                         "AND kind = 'gec' ORDER BY serial", (key,))]
        if gecs:
            covered = add(covered, checked(len(gecs) * 10**18))
            applied.append(AppliedOffset(kind="gec", references=gecs, quantity=str(len(gecs)),
                                         unit="MWh", reduces_scope=2, reduction="0",
                                         basis=rules.rule("gec", 2).basis))
        if covered > elec_mwh:
            raise OverclaimedConsumptionError(
                f"{to_decimal(covered)} green MWh claimed against {key}, which purchased "
                f"{gross.electricity_mwh} MWh of electricity", consumption_key=key,
                claimed=to_decimal(covered), consumed=gross.electricity_mwh)
        green_reduction = mul_ratio(elec, covered, elec_mwh) if covered else Fixed(0)
        applied = self._spread(applied, elec, elec_mwh)
        ccer = Fixed(0)
        for serial, quantity, project in db.execute(
                "SELECT serial, quantity, project FROM serials WHERE consumption_key = ? AND "
                "kind = 'ccer' ORDER BY serial", (key,)):
            ccer = add(ccer, parse(quantity))
            basis = f"{rules.rule('ccer', None).basis}; project {project}"
            applied.append(AppliedOffset(kind="ccer", references=[serial], quantity=quantity,
                                         unit="tCO2e", reduces_scope="total", reduction=quantity,
                                         basis=basis))
        ratio = rules.cap_ratio("ccer")
        gross_total = parse(gross.total)
        cap = None if ratio is None else mul(gross_total, ratio)
        if cap is not None and ccer > cap:
            raise OffsetCapExceededError(
                f"{to_decimal(ccer)} tCO2e of CCER against {key} exceeds the cap "
                f"{to_decimal(cap)} ({to_decimal(ratio or 0)} of gross {gross.total})",
                consumption_key=key, claimed=to_decimal(ccer), cap=to_decimal(cap))
        s1, s2 = parse(gross.scope1), parse(gross.scope2)
        net_s2 = checked(s2 - green_reduction)
        allowed = add(green_reduction, ccer)
        net_total = checked(max(gross_total - allowed, 0))
        return NettingResult(
            consumption_key=key, rules=rules.name, gross=gross, offsets=applied,
            green_mwh=to_decimal(covered), green_reduction=to_decimal(green_reduction),
            ccer=to_decimal(ccer), ccer_cap=None if cap is None else to_decimal(cap),
            allowed_offsets=to_decimal(allowed), net_scope1=to_decimal(s1),
            net_scope2=to_decimal(net_s2), net_total=to_decimal(net_total))

    @staticmethod
    def _spread(applied: list[AppliedOffset], elec: Fixed, elec_mwh: Fixed
                ) -> list[AppliedOffset]:
        """Each green claim's own reduction, ``E_elec x mwh / MWh_elec``."""
        return [a.model_copy(update={"reduction": to_decimal(
            mul_ratio(elec, parse(a.quantity), elec_mwh))}) for a in applied]
