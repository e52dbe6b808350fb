"""The ledger service: registry, ingest, Merkle log, anchoring, proofs, HTTP API."""
