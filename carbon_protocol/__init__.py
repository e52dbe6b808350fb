"""The carbon-ledger wire protocol, shared by gateway, ledger and verifier.

Canonical encoding (RFC 8785), identifiers, crypto suites (SM2/SM3, Ed25519/SHA-256),
RFC 9162 Merkle proofs, signed readings and tree heads, the proof bundle and its
verifier, and the encrypted envelopes that deliver marketplace data to a buyer
(``envelope``: SM4-GCM with an SM2-wrapped key, or X25519 + HKDF + AES-256-GCM).
Nothing else lives here: a verifier needs only this package.
"""
