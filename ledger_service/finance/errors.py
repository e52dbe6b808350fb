"""The finance service's errors: what stops a grade, a code or a loan report.

All are :class:`~ledger_service.errors.LedgerError`, so the API answers them as problem
documents with a stable ``code`` and the CLI prints them and exits 1. Most are 409: the
request is well-formed, but the ledger lacks (or holds conflicting) configuration or data
for it, and the fix is to supply that, not to change the request.
"""

from __future__ import annotations

from ..errors import ConflictError, LedgerError, NotFoundError

__all__ = ["FinanceConfigError", "FinanceError", "IncompleteInventoriesError",
           "LoanNotFoundError", "LoanExistsError", "NoBenchmarkError", "NoInventoryError",
           "NoOutputError", "OutputUnitError", "OverlappingInventoriesError"]


class FinanceError(LedgerError):
    """Base of the finance service's errors."""

    code = "finance_error"
    http_status = 409


class FinanceConfigError(FinanceError):
    """The finance configuration file cannot be read or does not match its schema: an
    operator's mistake, so the service refuses to grade rather than guess."""

    code = "finance_config_invalid"
    http_status = 500


class NoBenchmarkError(FinanceError):
    """No industry, or no benchmark for the industry, is configured for the enterprise:
    there is no default benchmark (a grade against an invented number would mislead)."""

    code = "no_benchmark"


class NoOutputError(FinanceError):
    """The enterprise declared no output for the period, so there is no intensity."""

    code = "no_output"


class OutputUnitError(FinanceError):
    """The declared output's unit is not the denominator of the benchmark's unit."""

    code = "output_unit_mismatch"


class NoInventoryError(FinanceError):
    """The ledger holds no inventory of the enterprise inside the period."""

    code = "no_inventory"


class IncompleteInventoriesError(FinanceError):
    """A gateway has readings in the period but its inventories do not cover all of it."""

    code = "incomplete_inventories"


class OverlappingInventoriesError(FinanceError):
    """Two inventories of one gateway overlap: summing them would count readings twice."""

    code = "overlapping_inventories"


class LoanExistsError(ConflictError, FinanceError):
    """A loan project with this id is already registered with other terms."""

    code = "loan_exists"


class LoanNotFoundError(NotFoundError, FinanceError):
    """No loan project with this id is registered."""

    code = "loan_not_found"
    http_status = 404
