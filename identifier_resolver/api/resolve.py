"""``GET /resolve/{id}`` and ``GET /custody/{id}``: the read side, for anyone."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..models import Answer
from .deps import ResolverDep

router = APIRouter(tags=["resolution"])

_JSON = "application/json"


@router.get("/resolve/{ident:path}", summary="Resolve an identifier to a proven record",
            responses={200: {"model": Answer}, 400: {}, 404: {}, 410: {}})
async def resolve(ident: str, resolver: ResolverDep) -> Response:
    """A record (or a referral to the node holding it) with its signature, history,
    inclusion proof and anchored tree head. 400 invalid identifier, 404 unknown,
    410 deactivated (the body carries the proven history)."""
    hit = resolver.cached_json(ident)  # a cached answer needs no thread hop
    status, body = hit if hit is not None else await run_in_threadpool(
        resolver.resolve_json, ident)
    return Response(body, status_code=status, media_type=_JSON)


@router.get("/custody/{ident:path}", summary="Walk the custody graph from an identifier")
def custody(
    ident: str,
    resolver: ResolverDep,
    direction: Literal["up", "down"] = "down",
    depth: Annotated[int, Query(ge=0, le=256)] = 3,
    proofs: bool = False,
) -> Response:
    """The custody graph within ``depth`` hops: ``down`` towards what the identifier is
    made of, ``up`` towards what it belongs to or feeds. A referral answer when another
    node is authoritative; 400/404/410 as for ``/resolve``."""
    result = resolver.custody(ident, direction, depth, proofs=proofs)
    return Response(result.model_dump_json(), media_type=_JSON)
