"""Dynamic int8 quantization of Linear and LSTM layers for CPU inference.

Why ``torch.ao.quantization.quantize_dynamic`` and not torchao: measured on this project's
reference machine with torch 2.14.1 (see ``shared/STACK.md``), ``quantize_dynamic`` ran an MLP
784-1024-1024-10 about 2× faster than float at batch 64 (about 1× at batch 1), while torchao 0.18's
int8 configs ran 7–23× *slower* on CPU in eager mode, and ``torch.compile`` did not fix that.
``quantize_dynamic`` is deprecated in 2.14 but present; the choice sits behind the registered name
``dynamic-int8``, so it can move to torchao when its CPU kernels catch up, without touching configs.
``bench/bench_compression.py`` measures both paths side by side (torchao's
``Int8DynamicActivationInt8WeightConfig`` and the pt2e flow with the x86 inductor quantizer) on
every run; torch.ao's deprecation notice is filtered precisely (:mod:`.ao_warnings`), because the
user cannot act on it.

Weights are stored as int8 (a ~4× smaller file); activations are quantized per batch at run time,
so no calibration data is needed. Convolutions are left in float (dynamic quantization has no conv
kernels); use static-int8 for convolutional models.
"""

from __future__ import annotations

import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import CompressionContext


def quantize_dynamic_int8(model: nn.Module, modules: str = "linear+lstm") -> nn.Module:
    """A copy of ``model`` with int8 Linear (and LSTM) layers; each gets ``kdgui_bits = 8``."""
    types: set[type[nn.Module]] = {nn.Linear}
    if modules == "linear+lstm":
        types.add(nn.LSTM)
    if not any(isinstance(m, tuple(types)) for m in model.modules()):
        raise CompressionError(
            "dynamic int8 quantization found no Linear or LSTM layer in the model",
            "Use static-int8 (or qat-int8) for convolutional models.",
        )
    quantized = torch.ao.quantization.quantize_dynamic(
        model.eval(), types, dtype=torch.qint8, inplace=False
    )
    for module in quantized.modules():
        if type(module).__module__.startswith("torch.ao.nn.quantized.dynamic"):
            module.kdgui_bits = 8
    if hasattr(model, "kdgui_prune_state"):
        quantized.kdgui_prune_state = model.kdgui_prune_state
    return quantized


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """The registered unit (see :func:`quantize_dynamic_int8`)."""
    return quantize_dynamic_int8(model, params.modules)
