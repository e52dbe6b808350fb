"""Financed projects (carbon-reduction loans) as log records, and their quarterly tracking.

A bank registers a project: the enterprise, the quarter the plan starts, the baseline
emissions per quarter without the project, and the planned reduction of each quarter.
The registration is a log record of kind ``loan_project`` whose id is the project's
(``<prefix>/loan.<name>``), so the plan a bank later holds the enterprise to is the
one it registered, provably. The record names the ``bank``: the organisation (the
party of the API key that registered it), not the key, so every key of that bank
reads the project, a rotated key included, and no other bank's does. Registering the
same project again is idempotent; the same id with other terms is refused (a changed
plan is a new project id).

Tracking compares each quarter's reduction (baseline minus the emissions of the
enterprise's inventories in that quarter, :mod:`.tracking`) with the plan. A quarter
counts as reported only once the inventories of every gateway with readings in it
cover the whole quarter; until then it is ``pending`` and listed in ``incomplete``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from carbon_protocol.finance_records import LoanProject
from carbon_protocol.identifiers import IdentifierStr
from carbon_protocol.inventory import Period

from ..errors import ConflictError, NotFoundError
from ..log_records import LoggedRecord, append_record, get_record
from ..registry import get_enterprise
from ._numbers import wire_decimal
from .config import load_finance_config, parse_period
from .eligibility import UsedInventory, enterprise_inventories, uncovered_gateways
from .errors import LoanExistsError, LoanNotFoundError
from .tracking import QuarterProgress, quarterly_emissions, track_reductions

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["LOAN_KIND", "LoanProjectCreate", "LoanTracking", "register_loan", "get_loan",
           "track_loan"]

LOAN_KIND: Final = "loan_project"
Quarter = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-Q[1-4]$")]
PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, max_digits=40)]


class LoanProjectCreate(BaseModel):
    """``POST /v1/finance/loans``: a financed project and its quarterly plan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: IdentifierStr
    """``<prefix>/loan.<name>``, chosen by the bank."""
    enterprise: IdentifierStr
    start: Quarter
    """The first quarter of the plan (``2026-Q1``), in the configured calendar."""
    baseline: PositiveDecimal
    """tCO2e per quarter without the project."""
    planned_reductions: Annotated[list[PositiveDecimal], Field(min_length=1, max_length=80)]
    """tCO2e of reduction promised for each quarter from ``start`` on."""
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    bank: IdentifierStr | None = None
    """The bank organisation the project belongs to: a bank key's own party when absent
    (a bank key may name no other); an admin registering for a bank names it."""

    @field_validator("id")
    @classmethod
    def _loan_id(cls, value: str) -> str:
        if not value.split("/", 1)[1].startswith("loan."):
            raise ValueError(f"a loan project id is <prefix>/loan.<name>, got {value!r}")
        return value

    def quarters(self) -> list[str]:
        """The plan's quarters, in order."""
        year, q = int(self.start[:4]), int(self.start[-1])
        out = []
        for _ in self.planned_reductions:
            out.append(f"{year:04d}-Q{q}")
            year, q = (year + 1, 1) if q == 4 else (year, q + 1)
        return out


class LoanTracking(BaseModel):
    """``GET /v1/finance/loans/{id}/tracking``: each quarter against the plan."""

    model_config = ConfigDict(frozen=True)

    loan: LoggedRecord
    quarters: list[QuarterProgress]
    inventories: list[UsedInventory]
    """The inventories whose totals make up the reported quarters."""
    incomplete: dict[str, list[str]]
    """Quarters left pending because these gateways' inventories do not cover them."""


def register_loan(ledger: Ledger, body: LoanProjectCreate, bank: str
                  ) -> tuple[bool, LoggedRecord]:
    """Log the project for ``bank`` (the organisation, which alone among banks may read
    it and its tracking). The same id registered by another bank is other terms: 409."""
    with ledger.reader.connect() as conn:
        get_enterprise(conn, body.enterprise)
    document = LoanProject(
        id=body.id, enterprise=body.enterprise, start=body.start, quarters=body.quarters(),
        baseline=wire_decimal(body.baseline),
        planned_reductions=[wire_decimal(v) for v in body.planned_reductions],
        description=body.description, bank=bank).model_dump(mode="json")
    try:
        return append_record(ledger, kind=LOAN_KIND, record_id=body.id,
                             enterprise_id=body.enterprise, document=document)
    except ConflictError:
        raise LoanExistsError(f"loan project {body.id} is registered with other terms; a "
                              "changed plan is a new project id", loan=body.id) from None


def get_loan(ledger: Ledger, loan_id: str) -> LoggedRecord:
    """A registered project's record (:class:`LoanNotFoundError` if there is none)."""
    try:
        record = get_record(ledger, loan_id)
    except NotFoundError:
        record = None
    if record is None or record.kind != LOAN_KIND:
        raise LoanNotFoundError(f"no loan project {loan_id}", loan=loan_id)
    return record


def track_loan(ledger: Ledger, loan_id: str) -> LoanTracking:
    """Quarter-by-quarter progress of a project from the inventories the ledger holds."""
    record = get_loan(ledger, loan_id)
    doc = record.document
    enterprise, quarters = str(doc["enterprise"]), [str(q) for q in doc["quarters"]]
    cfg = load_finance_config(ledger)
    spans = {q: parse_period(q, cfg.timezone) for q in quarters}
    whole = parse_period(quarters[0], cfg.timezone).model_copy(
        update={"end": spans[quarters[-1]].end})
    used = enterprise_inventories(ledger, enterprise, whole)
    incomplete = {q: gaps for q, span in spans.items()
                  if (gaps := uncovered_gateways(ledger, enterprise, span,
                                                 [i for i in used if _inside(i, span)]))}
    counted = [i for i in used
               if not any(_inside(i, spans[q]) for q in incomplete)]
    stored = [ledger.inventory(i.id).signed_inventory.inventory for i in counted]
    emissions = quarterly_emissions(stored, cfg.zone)  # InvalidInputError: spans quarters
    plan = dict(zip(quarters, (Decimal(v) for v in doc["planned_reductions"]), strict=True))
    baseline = dict.fromkeys(quarters, Decimal(doc["baseline"]))
    return LoanTracking(loan=record, quarters=track_reductions(plan, baseline, emissions),
                        inventories=counted, incomplete=incomplete)


def _inside(inv: UsedInventory, span: Period) -> bool:
    return span.start <= inv.period.start and inv.period.end <= span.end

