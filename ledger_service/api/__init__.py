"""The ledger's HTTP API (FastAPI): one router per resource, one error handler."""

from .app import create_app

__all__ = ["create_app"]
