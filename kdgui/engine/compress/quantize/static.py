"""Static post-training int8 quantization (FX graph mode), calibrated on N samples.

FX graph mode rather than eager mode: eager mode needs the user to insert ``QuantStub`` /
``DeQuantStub`` and fuse Conv-BN-ReLU by hand for every architecture, while FX traces the model,
fuses and places observers itself. Models whose forward cannot be traced (data-dependent control
flow) fail with a message that points to dynamic-int8, which needs no tracing.

Weights *and* activations become int8; activation ranges come from observers run over the
calibration samples, so an empty calibration set is an error, not a silently useless model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import CompressionContext


def mark_int8(model: nn.Module) -> None:
    """``kdgui_bits = 8`` on every quantized module with weights (for the layer table)."""
    for module in model.modules():
        if type(module).__module__.startswith("torch.ao.nn.quantized") and callable(
            getattr(module, "weight", None)
        ):
            module.kdgui_bits = 8


def prepare(model: nn.Module, ctx: CompressionContext, backend: str, *, qat: bool) -> nn.Module:
    """An FX-prepared copy of ``model`` with observers (and fake-quant for QAT)."""
    from torch.ao.quantization import (
        get_default_qat_qconfig_mapping,
        get_default_qconfig_mapping,
    )
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    torch.backends.quantized.engine = "qnnpack" if backend == "qnnpack" else "x86"
    net = copy.deepcopy(model)
    example = (ctx.example(2),)
    try:
        # torch.ao's deprecation notices are filtered precisely by .ao_warnings (installed when
        # this package is imported); any other warning of the tracer still reaches the log.
        if qat:
            return prepare_qat_fx(net.train(), get_default_qat_qconfig_mapping(backend), example)
        return prepare_fx(net.eval(), get_default_qconfig_mapping(backend), example)
    except CompressionError:
        raise
    except Exception as exc:
        raise CompressionError(
            f"int8 quantization could not trace the model with torch.fx "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
            "Use dynamic-int8 (no tracing), or a model without data-dependent control flow.",
        ) from exc


def convert(prepared: nn.Module, source: nn.Module) -> nn.Module:
    """The int8 model of an observed FX model; marks and prune state carried over."""
    from torch.ao.quantization.quantize_fx import convert_fx

    quantized = convert_fx(prepared.eval())
    mark_int8(quantized)
    if hasattr(source, "kdgui_prune_state"):
        quantized.kdgui_prune_state = source.kdgui_prune_state
    return quantized


def quantize_static_int8(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """Calibrate on ``params.calibration_samples`` samples and convert to int8 (a new model)."""
    batches = ctx.calibration_batches(
        params.calibration_samples, params.batch_size, what="static int8 quantization"
    )
    first = next(batches)  # raises CompressionError on an empty set before any work
    prepared = prepare(model, ctx, params.backend, qat=False)
    seen = 0
    with torch.no_grad():
        for x, _ in [first, *batches]:
            prepared(x)
            seen += len(x)
    ctx.log(f"static int8: calibrated activation ranges on {seen} samples")
    return convert(prepared, model)


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """The registered unit (see :func:`quantize_static_int8`)."""
    return quantize_static_int8(model, params, ctx)
