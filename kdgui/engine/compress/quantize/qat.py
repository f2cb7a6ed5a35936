"""Quantization-aware training as a pipeline step: prepare (fake-quant), fine-tune, convert.

The fake-quant modules round weights and activations to int8 in the forward pass while gradients
flow straight through, so fine-tuning moves the weights to values that survive rounding. The step
fine-tunes for its ``finetune_epochs`` with the session's ``finetune`` callable, then converts to
a real int8 model (FX graph mode, like static-int8).
"""

from __future__ import annotations

from collections.abc import Generator

from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.core.events import Event
from kdgui.engine.compress.context import CompressionContext
from kdgui.engine.compress.quantize.static import convert, prepare


def apply(
    model: nn.Module, params: object, ctx: CompressionContext
) -> Generator[Event, None, nn.Module]:
    """Prepare for QAT, fine-tune ``ctx.epochs`` epochs, convert to int8."""
    if ctx.finetune is None or ctx.epochs < 1:
        raise CompressionError(
            "quantization-aware training needs fine-tuning epochs, but the step has none",
            "Set finetune_epochs ≥ 1 on the qat-int8 step (CLI: --finetune-epochs N), or use "
            "static-int8 for post-training quantization.",
        )
    prepared = prepare(model, ctx, params.backend, qat=True)
    ctx.log(f"QAT: fine-tuning {ctx.epochs} epoch(s) with int8 fake-quant")
    yield from ctx.finetune(prepared, ctx.epochs)
    ctx.trained = True
    return convert(prepared, model)
