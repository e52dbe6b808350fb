"""Identifier resolution (标识解析): Handle-style identifiers resolved to signed, proven,
anchored records, delegated across nodes, linked into one chain-of-custody graph.

Public modules: :mod:`.models` (records, answers, custody graphs), :mod:`.records`
(building and signing record versions), :mod:`.resolver` (a node), :mod:`.custody`
(walking and drawing the graph), :mod:`.bridge` (identifiers for what a ledger holds),
:mod:`.client` (following referrals, verifying), :mod:`.verify` (answer verification
steps), :mod:`.device_events` (maintenance and calibration records from the gateway),
:mod:`.api` (the FastAPI app), :mod:`.settings`, :mod:`.errors`. The ledger registers
its identifiers automatically through :mod:`ledger_service.identifiers_sync`.
"""
