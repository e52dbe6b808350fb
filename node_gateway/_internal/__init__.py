"""Internals of the node gateway (not public API)."""
