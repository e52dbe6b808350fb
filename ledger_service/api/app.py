"""Application factory: the ledger service over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from .._internal.logging_setup import route_server_logs
from ..ledger import Ledger
from . import finance, inventories, log, market, quotas, readings, registry, reports, verification
from .auth import install_auth
from .deps import authorize
from .errors import BodyLimit, install_error_handlers
from .evidence import router as evidence_router
from .health import HealthSettings, install_health


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # The server has configured its loggers by now; send them through ours.
    route_server_logs()
    yield


def create_app(ledger: Ledger, *, health: HealthSettings | None = None) -> FastAPI:
    """Build the API around an open :class:`Ledger`; ``health`` overrides the
    ``LEDGER_HEALTH_*`` limits of ``/health``.

    Every route gets :func:`~.deps.authorize`, which enforces the access policy the
    route declared (see :mod:`ledger_service.auth`)."""
    app = FastAPI(title="carbon-ledger", version="0.1.0", lifespan=_lifespan,
                  summary="Signed carbon readings, a Merkle log, on-chain anchors, offline proofs",
                  dependencies=[Depends(authorize)])
    app.state.ledger = ledger
    install_error_handlers(app)
    install_auth(app)
    app.include_router(registry.router)
    app.include_router(readings.router)
    app.include_router(log.router)
    app.include_router(inventories.router)
    app.include_router(quotas.router)
    app.include_router(reports.router)
    app.include_router(market.router)
    app.include_router(evidence_router)
    app.include_router(finance.router)
    app.include_router(verification.router)
    app.add_middleware(BodyLimit, max_bytes=ledger.settings.max_body_bytes)
    # After BodyLimit, so it is the outer layer: a refused oversized body is counted too.
    install_health(app, ledger, health)
    return app
