"""Application factory: a resolver node over HTTP, standalone or mounted in-process."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from ..resolver import Resolver
from . import node, records, resolve
from .errors import BodyLimit, ResolveFastPath, install_error_handlers


def create_app(resolver: Resolver) -> FastAPI:
    """Build the API around an open :class:`Resolver`.

    Mount it in another app (``ledger_app.mount("/resolver", create_app(r))``) for the
    embedded single-process deployment, or serve it alone
    (``python -m identifier_resolver serve``).
    """
    app = FastAPI(title="carbon-ledger identifier resolver", version="0.1.0",
                  summary="Handle-style identifiers resolved to signed, proven, anchored "
                          "records, and the custody graph between them")
    app.state.resolver = resolver
    install_error_handlers(app)
    app.include_router(resolve.router)
    app.include_router(records.router)
    app.include_router(node.router)
    app.add_middleware(ResolveFastPath, resolver=resolver)
    app.add_middleware(BodyLimit, max_bytes=resolver.settings.max_body_bytes)
    return app


def create_asgi(resolver: Resolver) -> ASGIApp:
    """What a standalone node serves: :func:`create_app` behind the resolution fast
    path, so a cached ``GET /resolve/{id}`` never enters the FastAPI stack."""
    return ResolveFastPath(create_app(resolver), resolver=resolver)
