"""The node itself: who it is, its trust root, its authorities, its log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..errors import NotFoundError
from ..models import AuthorityInstall, NodeInfo, TrustRoot
from .deps import ResolverDep

router = APIRouter(tags=["node"])


@router.get("/node", response_model=NodeInfo)
def node(resolver: ResolverDep) -> NodeInfo:
    """Node id, keys, log, authoritative and delegated prefixes, chain."""
    return resolver.node_info()


@router.get("/trust", response_model=TrustRoot)
def trust(resolver: ResolverDep) -> TrustRoot:
    """The trust root a client pins (root node only; compare it out of band)."""
    if not resolver.settings.root:
        raise NotFoundError("this node is not the root; ask the root for its trust root")
    return resolver.trust_root(resolver.settings.public_url)


@router.post("/authority", status_code=201)
def install_authority(body: AuthorityInstall, resolver: ResolverDep) -> dict[str, str]:
    """Install a delegation chain (root first) naming this node; it is checked against
    the trust root, so no other credential is needed."""
    return {"prefix": resolver.install_authority(body.delegations)}


@router.get("/log/tree-head")
def tree_head(resolver: ResolverDep) -> dict[str, Any]:
    """The current signed tree head and the newest anchor."""
    sth = resolver.tree_head()
    anchor = resolver.latest_anchor()
    return {"signed_tree_head": None if sth is None else sth.model_dump(mode="json"),
            "anchor": None if anchor is None else anchor.model_dump(mode="json")}


@router.get("/log/consistency")
def consistency(resolver: ResolverDep, size1: Annotated[int, Query(ge=1)],
                size2: Annotated[int, Query(ge=1)]) -> dict[str, Any]:
    """RFC 9162 consistency proof between two sizes of this node's log."""
    return {"size1": size1, "size2": size2,
            "proof": [p.hex() for p in resolver.consistency_proof(size1, size2)]}


@router.get("/health")
def health(resolver: ResolverDep) -> dict[str, Any]:
    """Liveness: the node answers and its log is readable."""
    return {"status": "ok", "node_id": resolver.node_id, "tree_size": resolver.tree_size()}
