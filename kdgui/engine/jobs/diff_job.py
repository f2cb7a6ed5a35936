"""Two measured models side by side, layer by layer (see :mod:`kdgui.engine.model_diff`)."""

from __future__ import annotations

from kdgui.engine.model_diff import diff_layers, diff_models

__all__ = ["diff_layers", "diff_models"]
