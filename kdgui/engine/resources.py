"""Compatibility alias: resource lookup lives in :mod:`kdgui.core.resources` (no torch needed,
so the window can find its icon before the engine is imported)."""

from kdgui.core.resources import resource_path, resource_roots

__all__ = ["resource_path", "resource_roots"]
