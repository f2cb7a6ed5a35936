"""Pruning units: unstructured magnitude (masked) and structured channels (removed)."""
