"""Internals of the resolver: storage, Merkle log, anchoring, cache, SVG layout."""
