"""Routes for banks (issue 6, item 3): eligibility with a signed financing code and its QR
image, the inputs an enterprise declares for it (output, supplier bills), the finance
configuration, and financed projects with their quarterly tracking.

Every declaration, code and project is a log record (:mod:`ledger_service.finance`), so
what a bank was told can be proved later.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from ..auth import Principal, Role, WrongPartyError, access, body, party_of, path, require_party
from ..errors import InvalidInputError
from ..finance.config import FinanceFile, config_path, load_finance_config
from ..finance.eligibility import Eligibility, eligibility
from ..finance.inputs import (
    BillDeclaration,
    Declared,
    OutputDeclaration,
    declare_bill,
    declare_output,
)
from ..finance.issuing import render_qr_png, rule_config_hash
from ..finance.loans import LoanProjectCreate, LoanTracking, get_loan, register_loan, track_loan
from ..ledger import Ledger
from ..log_records import LoggedRecord
from .deps import LedgerDep, PrincipalDep

router = APIRouter(prefix="/v1/finance", tags=["finance"])

PeriodQuery = Annotated[str, Query(min_length=4, max_length=10,
                                   description="period label: 2026, 2026-Q1, 2026-01")]
_READERS = (Role.ADMIN, Role.REGULATOR, Role.BANK, Role.ENTERPRISE)


class FinanceConfigView(BaseModel):
    """The configuration in force, where it is read from, and for each benchmark the
    ``rule_config_hash`` a code graded against it carries."""

    model_config = ConfigDict(frozen=True)

    path: str
    exists: bool
    config: FinanceFile
    rule_config_hashes: dict[str, str]
    """Industry -> hex hash (the log suite's) a code graded with that benchmark carries."""


@router.get("/config", response_model=FinanceConfigView)
@access(Role.ADMIN, Role.REGULATOR, Role.BANK)
def finance_config(ledger: LedgerDep) -> Any:
    """The grade factors, integrity rules, validity, calendar, benchmarks and industries
    in force (defaults where the file says nothing)."""
    cfg = load_finance_config(ledger)
    where = config_path(ledger)
    return FinanceConfigView(
        path=str(where), exists=where.exists(), config=cfg,
        rule_config_hashes={b.industry: rule_config_hash(cfg.finance, b,
                                                         ledger.settings.log_suite)
                            for b in cfg.benchmarks})


@router.put("/output/{enterprise:path}/{period}", status_code=201, response_model=Declared)
@access(Role.ADMIN, Role.ENTERPRISE, owners=[path("enterprise", "enterprise")])
def put_output(enterprise: str, period: str, body: OutputDeclaration, ledger: LedgerDep,
               response: Response) -> Any:
    """Declare the enterprise's output in a period (tonnes, MWh or 10k CNY), as a log
    record (201; 200 when it is already the declaration in force)."""
    declared = declare_output(ledger, enterprise, period, load_finance_config(ledger).timezone,
                              body)
    if not declared.created:
        response.status_code = 200
    return declared


@router.post("/bills/{enterprise:path}", status_code=201, response_model=Declared)
@access(Role.ADMIN, Role.ENTERPRISE,
        owners=[path("enterprise", "enterprise"), body("device", "device")])
def post_bill(enterprise: str, body: BillDeclaration, ledger: LedgerDep,
              response: Response) -> Any:
    """Record a supplier's bill for one of the enterprise's meters over a period, as a log
    record the meter-vs-bill rule compares with the metered total (201; 200 if in force)."""
    declared = declare_bill(ledger, enterprise, load_finance_config(ledger).timezone, body)
    if not declared.created:
        response.status_code = 200
    return declared


@router.get("/eligibility/{enterprise:path}/qr.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
@access(*_READERS, owners=[path("enterprise", "enterprise")])
def eligibility_qr(enterprise: str, period: PeriodQuery, ledger: LedgerDep) -> Response:
    """The financing code of the period as a QR image (PNG) that verifies offline."""
    result = eligibility(ledger, enterprise, period)
    return Response(render_qr_png(result.financing_code), media_type="image/png")


@router.get("/eligibility/{enterprise:path}", response_model=Eligibility)
@access(*_READERS, owners=[path("enterprise", "enterprise")])
def get_eligibility(enterprise: str, period: PeriodQuery, ledger: LedgerDep) -> Any:
    """Green grade, integrity code with the rules fired, the facts and inputs used, and
    the signed financing code (logged; reused while unchanged and fresh)."""
    return eligibility(ledger, enterprise, period)


@router.post("/loans", status_code=201, response_model=LoggedRecord)
@access(Role.ADMIN, Role.BANK, owners=[body("enterprise", "enterprise")])
def post_loan(body: LoanProjectCreate, ledger: LedgerDep, caller: PrincipalDep,
              response: Response) -> Any:
    """Register a financed project and its quarterly plan, as a log record (201; 200 for
    the same terms again, 409 ``loan_exists`` for other terms under the id)."""
    assert caller is not None  # not a public route
    created, record = register_loan(ledger, body, _bank_of(caller, body))
    if not created:
        response.status_code = 200
    return record


def _bank_of(caller: Principal, body: LoanProjectCreate) -> str:
    """The bank a new project belongs to: a bank key's party (naming another is 403); the
    ``bank`` an admin names (422 without one)."""
    if caller.role != Role.BANK:
        if body.bank is None:
            raise InvalidInputError("an admin registering a loan project names the `bank` "
                                    "organisation it belongs to", field="bank")
        return body.bank
    mine = party_of(caller)
    if body.bank is not None and body.bank != mine:
        raise WrongPartyError(f"this key belongs to bank {mine}; it registers no project for "
                              f"{body.bank}", party=mine, owner=body.bank)
    return mine


def _readable(ledger: Ledger, loan_id: str, caller: Principal | None) -> LoggedRecord:
    """The project, if ``caller`` may read it: every key of the bank it belongs to (not
    another bank's), the enterprise (by the route's policy), regulators and admins."""
    record = get_loan(ledger, loan_id)
    if caller is not None and caller.role == Role.BANK:
        require_party(caller, str(record.document.get("bank")), f"loan project {loan_id}")
    return record


@router.get("/loans/{loan_id:path}/tracking", response_model=LoanTracking)
@access(*_READERS, owners=[path("loan_id", "loan")])
def loan_tracking(loan_id: str, ledger: LedgerDep, caller: PrincipalDep) -> Any:
    """Each quarter's reduction (baseline minus the inventories' emissions) against the
    plan: on_track, behind, or pending until inventories cover the quarter."""
    _readable(ledger, loan_id, caller)
    return track_loan(ledger, loan_id)


@router.get("/loans/{loan_id:path}", response_model=LoggedRecord)
@access(*_READERS, owners=[path("loan_id", "loan")])
def get_loan_project(loan_id: str, ledger: LedgerDep, caller: PrincipalDep) -> Any:
    """A registered project's record (its terms, as logged)."""
    return _readable(ledger, loan_id, caller)
