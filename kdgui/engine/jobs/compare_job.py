"""Two models side by side in Netron, and measured per-layer overlays (latency, quantization
error) on a graph: see :mod:`kdgui.engine.netron_compare` and :mod:`kdgui.engine.netron_overlays`.
Both prepare and measure models, so front ends call them on a worker, never on the UI thread."""

from __future__ import annotations

from kdgui.engine.model_diff import KINDS as CHANGE_KINDS
from kdgui.engine.netron_compare import compare as compare_models
from kdgui.engine.netron_compare import prepare_measured as measure_model
from kdgui.engine.netron_compare import resolve_source as compare_source
from kdgui.engine.netron_overlays import OVERLAYS

__all__ = ["CHANGE_KINDS", "OVERLAYS", "compare_models", "compare_source", "measure_model"]
