"""Compression units (pruning, quantization, low-rank) and the pipeline that chains them.

Every unit is a function ``apply(model, params, ctx) -> model`` declared in
:mod:`kdgui.core.components.compression`; units that fine-tune (gradual pruning, QAT) are
generator functions that yield run events and *return* the model. :func:`run_pipeline` measures
the model before and after each step and saves every stage.
"""

from kdgui.engine.compress.context import CompressionContext, apply_unit, resolve
from kdgui.engine.compress.pipeline import run_pipeline

__all__ = ["CompressionContext", "apply_unit", "resolve", "run_pipeline"]
