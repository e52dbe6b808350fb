"""The sample's evidence: what a verifier needs to check its sample without trusting us.

For an open verification whose seed block is mined: the spec and the drawn leaves, the
signed inventory with its inclusion proof, and for every sampled leaf the signed
reading with its device key and inclusion proof, all against one signed tree head:
the one the first final anchor covering the inventory anchored (the inventory's
readings come before it in the log, so that head holds them all).
:func:`carbon_protocol.attestation.check_sample_evidence` checks it offline.
"""

from __future__ import annotations

from sqlalchemy import select

from carbon_protocol.attestation import SampledReading, SampleEvidence
from carbon_protocol.models import ProofBundle, SignedReading

from .._internal.db import readings
from ..errors import NotFoundError
from ..inventories import anchor_covering
from ..inventories import get as get_inventory
from ..ledger import Ledger
from ..registry import device_key_info
from .sampling import draw_sample
from .workflow import expected_spec, opened

__all__ = ["sample_evidence"]


def sample_evidence(ledger: Ledger, verification_id: str) -> SampleEvidence:
    """The evidence of ``verification_id``'s sample (409 ``seed_not_mined`` before the
    seed block exists, 404 until an anchor covers the inventory)."""
    _, doc = opened(ledger, verification_id)
    spec = expected_spec(ledger, doc)
    leaves = draw_sample(spec).leaves
    stored = get_inventory(ledger, doc.inventory_id)
    index = stored.receipt.leaf_index
    anchor = anchor_covering(ledger, index, f"inventory {doc.inventory_id}")
    size = anchor.tree_size
    sth = ledger.tree_head(size)
    assert sth is not None
    log_key = ledger.log_key_info()
    sampled = []
    with ledger.reader.connect() as conn:
        rows = {int(r["leaf_index"]): r for r in conn.execute(
            select(readings).where(readings.c.leaf_index.in_(leaves))).mappings()}
        for leaf in leaves:
            row = rows.get(leaf)
            if row is None:
                raise NotFoundError(f"sampled leaf {leaf} holds no reading", leaf_index=leaf)
            signed = SignedReading.model_validate_json(bytes(row["leaf_data"]))
            sampled.append(SampledReading(leaf_index=leaf, bundle=ProofBundle(
                reading_id=row["id"], signed_reading=signed,
                device_key=device_key_info(conn, signed.reading.key_id), leaf_index=leaf,
                leaf_hash=bytes(row["leaf_hash"]).hex(),
                inclusion_proof=[p.hex() for p in ledger.log.inclusion_proof(conn, leaf, size)],
                signed_tree_head=sth, log_key=log_key, anchor=anchor)))
        inventory_path = ledger.log.inclusion_proof(conn, index, size)
    return SampleEvidence(
        verification_id=verification_id, enterprise=doc.enterprise,
        inventory_id=doc.inventory_id, signed_inventory=stored.signed_inventory,
        inventory_leaf_index=index, inventory_inclusion_proof=[p.hex() for p in inventory_path],
        spec=spec, leaves=leaves, readings=sampled, signed_tree_head=sth, log_key=log_key,
        anchor=anchor)
