"""Internals of :mod:`ledger_service`: no stability promise; import the public modules."""
