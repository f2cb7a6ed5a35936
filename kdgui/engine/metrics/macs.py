"""Multiply-accumulate counts, for the whole model and per layer, from one traced forward pass.

Counts come from :class:`torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2) on one
sample (batch 1). That counter knows the float kernels (matmul, conv, attention) but not the
``quantized::*`` kernels of ``torch.ao``, for which it reports 0. **Decision:** for those layers the
MACs are computed from the layer's shape with the same formula as its float twin (a Linear costs
``in * out`` per output row, a Conv ``C_in/groups * kH * kW`` per output element), because an int8
multiply-accumulate is still one multiply-accumulate: quantization changes the cost of each MAC,
not their number. Element-wise work (activations, additions, normalisation) is not counted, as in
the usual published MAC figures. If the forward pass itself fails, the count is ``-1`` and
:attr:`MacTrace.note` says why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdgui.engine.metrics._modules import (
    eval_mode,
    first_tensor,
    is_quantized_module,
    model_device,
)

log = logging.getLogger(__name__)


@dataclass
class MacTrace:
    """What one forward pass of a single sample revealed about each module."""

    total: int
    per_module: dict[str, int] = field(default_factory=dict)
    out_shapes: dict[str, list[int]] = field(default_factory=dict)
    note: str = ""


def _quantized_macs(module: nn.Module, out: torch.Tensor) -> int:
    """MACs of a ``torch.ao`` quantized Linear/Conv from its shape (see the module docstring)."""
    if out.is_quantized:
        out = out.dequantize()
    name = type(module).__name__
    if "Linear" in name and hasattr(module, "in_features"):
        return int(out.numel() * module.in_features)
    if "Conv" in name and hasattr(module, "in_channels"):
        kernel = module.kernel_size
        per_output = (module.in_channels // module.groups) * math.prod(
            kernel if isinstance(kernel, tuple) else (kernel,)
        )
        return int(out.numel() * per_output)
    return 0


def sample_input(
    model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 1
) -> torch.Tensor:
    """A deterministic random input on the model's device (the global RNG is left alone)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *input_shape), generator=gen)
    return x.to(model_device(model))


def trace_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacTrace:
    """Run one sample through ``model`` and record total MACs, per-module MACs and out shapes.

    ``input_shape`` is one sample's shape, without the batch dimension (e.g. ``(1, 28, 28)``).
    The model runs in eval mode under ``no_grad`` and is left exactly as it was.
    """
    names = {module: name for name, module in model.named_modules()}
    quant: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}

    def hook(module: nn.Module, _inputs: object, output: object) -> None:
        name = names.get(module, "")
        tensor = first_tensor(output)
        if tensor is None:
            return
        shapes.setdefault(name, list(tensor.shape))
        if is_quantized_module(module):
            quant[name] = quant.get(name, 0) + _quantized_macs(module, tensor)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(sample_input(model, input_shape))
    except Exception as exc:  # any failure of user code means "cannot count"
        note = f"MACs not counted: the forward pass on shape {(1, *input_shape)} failed ({exc})"
        log.warning(note)
        return MacTrace(total=-1, out_shapes=shapes, note=note)
    finally:
        for handle in handles:
            handle.remove()

    prefix = type(model).__name__
    counts = counter.get_flop_counts()
    # A program exported for a fixed batch runs one sample as a padded batch of that size.
    padded = max(1, int(getattr(model, "fixed_batch", None) or 1))
    per_module: dict[str, int] = {}
    for name in names.values():
        key = f"{prefix}.{name}" if name else prefix
        flops = sum(counts.get(key, {}).values())
        per_module[name] = int(flops) // 2 // padded + quant.get(name, 0)
    total = int(counter.get_total_flops()) // 2 // padded + sum(quant.values())
    note = (
        "quantized layers counted by their float formula (int8 MACs are still MACs)"
        if quant
        else ""
    )
    if total == 0 and getattr(model, "kind", None) == "onnx":  # an ONNX Runtime session
        return MacTrace(total=-1, out_shapes=shapes,
                        note="MACs are not traced through an ONNX Runtime session")
    return MacTrace(total=total, per_module=per_module, out_shapes=shapes, note=note)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one sample of ``input_shape`` (no batch dim); -1 if untraceable."""
    return trace_macs(model, input_shape).total
