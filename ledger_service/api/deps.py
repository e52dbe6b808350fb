"""Request dependencies as ``Annotated`` aliases, in the FastAPI template's manner."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..ledger import Ledger


def get_ledger(request: Request) -> Ledger:
    """The ledger the app was created with."""
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
