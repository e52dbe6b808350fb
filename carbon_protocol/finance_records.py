"""Wire models of the finance log records: what an enterprise declares, what a bank plans.

A green grade rests on the enterprise's declared output and a meter-vs-bill check on
its suppliers' bills; a loan's tracking on the plan the bank registered. The ledger
cannot measure any of these, so each is a log record the declarer cannot later deny
(``docs/financing-codes.md``). The ledger writes them with these models and an evidence
bundle's verifier reads them with the same ones. Every model rejects unknown fields;
the record's leaf is the RFC 8785 JSON of ``model_dump(mode="json")``.

Ids: a declaration's is ``<prefix>/out.<hex>`` or ``<prefix>/bill.<hex>``, the first 8
bytes of the log suite's hash of the document's RFC 8785 bytes (so a stranger recomputes
it); a loan project's is the bank's choice, ``<prefix>/loan.<name>``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .identifiers import IdentifierStr

__all__ = ["BILL_FORMAT", "LOAN_FORMAT", "OUTPUT_FORMAT", "LoanProject", "ProductionOutput",
           "SupplierBill", "next_quarter"]

OUTPUT_FORMAT: Final = "carbon-ledger/production-output/v1"
BILL_FORMAT: Final = "carbon-ledger/supplier-bill/v1"
LOAN_FORMAT: Final = "carbon-ledger/loan-project/v1"

PositiveDecimalStr = Annotated[
    str, StringConstraints(pattern=r"^(?:0|[1-9][0-9]{0,27})(?:\.[0-9]{1,12})?$")]
"""A non-negative decimal as text (at most 12 decimals, no exponent)."""
PeriodLabel = Annotated[str, StringConstraints(
    pattern=r"^[0-9]{4}(?:-Q[1-4]|-[0-9]{2}(?:-[0-9]{2})?)?$")]
Quarter = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-Q[1-4]$")]


def next_quarter(quarter: str) -> str:
    """The quarter after ``YYYY-Qn``."""
    year, q = int(quarter[:4]), int(quarter[-1])
    return f"{year + 1:04d}-Q1" if q == 4 else f"{year:04d}-Q{q + 1}"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProductionOutput(_Wire):
    """``production_output``: the enterprise's output in a period (the denominator of
    its carbon intensity). The last one logged for a period is in force."""

    format: Literal["carbon-ledger/production-output/v1"] = OUTPUT_FORMAT
    enterprise: IdentifierStr
    period: PeriodLabel
    value: PositiveDecimalStr
    unit: Literal["t", "MWh", "10^4CNY"]
    note: Annotated[str, StringConstraints(max_length=500)]
    supersedes: IdentifierStr | None
    """The declaration this one replaces (``null`` for the first)."""


class SupplierBill(_Wire):
    """``supplier_bill``: a supplier's bill for one meter over a period, in the unit of
    its readings. The last one logged per meter and period is in force."""

    format: Literal["carbon-ledger/supplier-bill/v1"] = BILL_FORMAT
    enterprise: IdentifierStr
    period: PeriodLabel
    device: IdentifierStr
    billed: PositiveDecimalStr
    unit: Annotated[str, StringConstraints(min_length=1, max_length=8)]
    reference: Annotated[str, StringConstraints(max_length=200)]
    supersedes: IdentifierStr | None


class LoanProject(_Wire):
    """``loan_project``: a financed project and its quarterly plan, as the bank
    registered it. ``quarters[i]`` is the quarter of ``planned_reductions[i]``."""

    format: Literal["carbon-ledger/loan-project/v1"] = LOAN_FORMAT
    id: IdentifierStr
    enterprise: IdentifierStr
    start: Quarter
    quarters: list[Quarter] = Field(min_length=1, max_length=80)
    baseline: PositiveDecimalStr
    """tCO2e per quarter without the project."""
    planned_reductions: list[PositiveDecimalStr] = Field(min_length=1, max_length=80)
    description: Annotated[str, StringConstraints(max_length=500)]
    bank: IdentifierStr
    """The bank organisation that registered it (its API key's party)."""

    @model_validator(mode="after")
    def _plan(self) -> LoanProject:
        if not self.id.split("/", 1)[1].startswith("loan."):
            raise ValueError(f"a loan project id is <prefix>/loan.<name>, got {self.id!r}")
        if len(self.quarters) != len(self.planned_reductions):
            raise ValueError("one planned reduction per quarter")
        expected = [self.start]
        while len(expected) < len(self.quarters):
            expected.append(next_quarter(expected[-1]))
        if self.quarters != expected:
            raise ValueError(f"quarters must run consecutively from {self.start}")
        return self
