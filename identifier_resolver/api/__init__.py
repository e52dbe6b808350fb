"""The resolver's HTTP API: :func:`create_app` builds it around an open node."""

from .app import create_app

__all__ = ["create_app"]
