"""Simulated n-bit quantization (fake-quant) of weights and, optionally, activations.

The tensors stay float32: each weight is replaced by the nearest of 2^b - 1 symmetric levels
``s·q`` with ``q ∈ [-(2^(b-1)-1), 2^(b-1)-1]`` and ``s = max|w| / (2^(b-1)-1)`` per tensor or per
output channel. This costs nothing at run time and gains nothing either; it exists so a class can
plot accuracy against bits (2–8) and see where a model breaks before choosing a real int8 path.
Activation fake-quant wraps each Linear/Conv with an :class:`ActivationFakeQuant` after it,
whose unsigned/ signed range is calibrated (min/max) on calibration data.
"""

from __future__ import annotations

import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import CompressionContext

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def check_bits(bits: int, what: str = "bits") -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise CompressionError(
            f"{what} = {bits!r} is outside 2–8",
            "Simulated quantization supports 2 to 8 bits; use 8 for int8.",
        )


@torch.no_grad()
def fake_quantize_weight(weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """``weight`` rounded to ``bits``-bit symmetric levels (float tensor of the same shape)."""
    check_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    if per_channel:
        amax = weight.abs().flatten(1).amax(dim=1).view(-1, *([1] * (weight.dim() - 1)))
    else:
        amax = weight.abs().amax()
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return torch.clamp(torch.round(weight / scale), -qmax, qmax) * scale


class ActivationFakeQuant(nn.Module):
    """Rounds a layer's output to ``bits``-bit affine levels within a calibrated [lo, hi]."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        check_bits(bits, "activation_bits")
        self.bits = bits
        self.register_buffer("lo", torch.tensor(float("inf")))
        self.register_buffer("hi", torch.tensor(float("-inf")))
        self.calibrating = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.lo = torch.minimum(self.lo, x.detach().min())
            self.hi = torch.maximum(self.hi, x.detach().max())
            return x
        levels = 2 ** self.bits - 1
        lo, hi = torch.clamp(self.lo, max=0.0), torch.clamp(self.hi, min=0.0)
        scale = torch.clamp((hi - lo) / levels, min=1e-12)
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(x / scale) + zero, 0, levels)
        return (q - zero) * scale


def _wrap_activations(model: nn.Module, bits: int) -> list[ActivationFakeQuant]:
    quants: list[ActivationFakeQuant] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _LAYERS):
                quant = ActivationFakeQuant(bits)
                wrapped = nn.Sequential(child, quant)
                wrapped.kdgui_bits = bits
                setattr(parent, name, wrapped)
                quants.append(quant)
    return quants


def fake_quantize(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """Round weights (in place) and optionally wrap layers with activation fake-quant."""
    check_bits(params.bits)
    per_channel = params.granularity == "per_channel"
    layers = [m for m in model.modules() if isinstance(m, _LAYERS)]
    if not layers:
        raise CompressionError(
            "fake quantization found no Linear or convolution layer", "Check the model."
        )
    if params.activations:
        check_bits(params.activation_bits, "activation_bits")
        batches = ctx.calibration_batches(
            params.calibration_samples, 64, what="activation fake-quant"
        )
        first = next(batches)  # empty calibration set fails before the model changes
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(fake_quantize_weight(layer.weight, params.bits, per_channel))
            layer.kdgui_bits = params.bits
    if params.activations:
        quants = _wrap_activations(model, params.activation_bits)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for x, _ in [first, *batches]:
                model(x)
        for quant in quants:
            quant.calibrating = False
        model.train(was_training)
    ctx.log(
        f"fake-quant: weights at {params.bits} bits ({params.granularity})"
        + (f", activations at {params.activation_bits} bits" if params.activations else "")
        + "; tensors stay float32, so size and latency do not change"
    )
    return model


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """The registered unit (see :func:`fake_quantize`)."""
    return fake_quantize(model, params, ctx)
