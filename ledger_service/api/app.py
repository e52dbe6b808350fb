"""Application factory: the ledger service over HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from ..ledger import Ledger
from . import log, readings, registry
from .errors import BodyLimit, install_error_handlers


def create_app(ledger: Ledger) -> FastAPI:
    """Build the API around an open :class:`Ledger`."""
    app = FastAPI(title="carbon-ledger", version="0.1.0",
                  summary="Signed carbon readings, a Merkle log, on-chain anchors, offline proofs")
    app.state.ledger = ledger
    install_error_handlers(app)
    app.include_router(registry.router)
    app.include_router(readings.router)
    app.include_router(log.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, object]:
        return {"status": "ok", "tree_size": ledger.tree_size()}

    app.add_middleware(BodyLimit, max_bytes=ledger.settings.max_body_bytes)
    return app
