"""Routes for the Merkle log: tree heads, proofs, anchors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from carbon_protocol.models import SignedTreeHead

from ..auth import public
from ..models import AnchorPublic, ConsistencyProofPublic, InclusionProofPublic, LogInfo
from .deps import LedgerDep

router = APIRouter(prefix="/v1/log", tags=["log"])
_PUBLISHED = ("tree heads, proofs and anchors are made to be published: a proof is checked by "
              "strangers, and reveals hashes only, never a reading")


@router.get("", response_model=LogInfo)
@public(_PUBLISHED)
def log_info(ledger: LedgerDep) -> Any:
    return LogInfo(
        log_id=ledger.settings.log_id, suite=ledger.settings.log_suite,
        tree_size=ledger.tree_size(), domain=ledger.domain,
        log_key=ledger.log_key_info().model_dump(), signed_tree_head=ledger.tree_head(),
    )


@router.get("/tree-head", response_model=SignedTreeHead | None)
@public(_PUBLISHED)
def tree_head(ledger: LedgerDep, tree_size: int | None = Query(default=None, ge=1)) -> Any:
    return ledger.tree_head(tree_size)


@router.get("/proof/inclusion", response_model=InclusionProofPublic)
@public(_PUBLISHED)
def inclusion(ledger: LedgerDep, leaf_index: int = Query(ge=0),
              tree_size: int = Query(ge=1)) -> Any:
    proof = ledger.inclusion_proof(leaf_index, tree_size)
    return InclusionProofPublic(leaf_index=leaf_index, tree_size=tree_size,
                                leaf_hash=ledger.leaf_hash(leaf_index).hex(),
                                proof=[p.hex() for p in proof])


@router.get("/proof/consistency", response_model=ConsistencyProofPublic)
@public(_PUBLISHED)
def consistency(ledger: LedgerDep, size1: int = Query(ge=1), size2: int = Query(ge=1)) -> Any:
    proof = ledger.consistency_proof(size1, size2)
    return ConsistencyProofPublic(size1=size1, size2=size2, proof=[p.hex() for p in proof])


@router.get("/anchors", response_model=list[AnchorPublic])
@public(_PUBLISHED)
def anchors(ledger: LedgerDep) -> Any:
    return ledger.anchors()
