"""The carbon-ledger wire protocol, shared by gateway, ledger and verifier.

Canonical encoding (RFC 8785), identifiers, crypto suites (SM2/SM3, Ed25519/SHA-256),
RFC 9162 Merkle proofs, signed readings and tree heads, the proof bundle and its
verifier. Nothing else lives here: a verifier needs only this package.
"""
