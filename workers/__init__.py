"""Dramatiq actors: thin shims that load, call `domain.decide`, and persist."""
