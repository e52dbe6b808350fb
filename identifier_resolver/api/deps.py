"""Request dependencies as ``Annotated`` aliases, in the FastAPI template's manner."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..resolver import Resolver


def get_resolver(request: Request) -> Resolver:
    """The resolver node the app was created with."""
    resolver: Resolver = request.app.state.resolver
    return resolver


ResolverDep = Annotated[Resolver, Depends(get_resolver)]
