"""Measuring models: size, sparsity, MACs, latency, accuracy, per-layer tables.

Every function leaves the model as it found it (training flag, device, BatchNorm statistics), so
the window can measure a model that is still being trained or compressed. Shapes passed as
``input_shape`` are one sample's shape without the batch dimension, e.g. ``(1, 28, 28)``.
"""

from kdgui.engine.metrics.accuracy import agreement, evaluate
from kdgui.engine.metrics.counting import (
    count_nonzero,
    count_params,
    layer_sparsity,
    model_size_bytes,
)
from kdgui.engine.metrics.histograms import weight_histograms
from kdgui.engine.metrics.latency import measure_latency
from kdgui.engine.metrics.macs import MacTrace, count_macs, trace_macs
from kdgui.engine.metrics.summary import layer_table, model_summary

__all__ = [
    "MacTrace",
    "agreement",
    "count_macs",
    "count_nonzero",
    "count_params",
    "evaluate",
    "layer_sparsity",
    "layer_table",
    "measure_latency",
    "model_size_bytes",
    "model_summary",
    "trace_macs",
    "weight_histograms",
]
