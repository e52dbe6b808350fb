"""The resolver's HTTP API: :func:`create_app` builds it around an open node (to mount
in another app); :func:`create_asgi` is what a standalone node serves."""

from .app import create_app, create_asgi

__all__ = ["create_app", "create_asgi"]
