"""An int8 ONNX file for a ``torch.ao`` dynamic-int8 model, through ONNX Runtime's quantizer.

Packed ``torch.ao`` int8 layers have no ONNX mapping, so the int8 model cannot be exported as it
is. The route that works: rebuild its *float twin* (each int8 Linear becomes a float Linear with
the dequantized int8 weights, so the twin computes what the int8 model would without activation
rounding), export that to ONNX, and quantize the file with ``onnxruntime.quantization.
quantize_dynamic`` (int8 weights, activations quantized per batch at run time, like torch's
dynamic int8). The result is verified against the *torch int8* outputs.

Tolerance (documented decision): both runtimes quantize activations per batch to 8 bits, but ONNX
Runtime uses uint8 activations with its own rounding of the scale, and it re-quantizes the
weights (already on torch's int8 grid) with its own symmetric scale. Each of those moves an
output by about one step of the 8-bit grid per layer, so the int8-vs-int8 comparison allows
:data:`ORT_INT8_TOLERANCE` (5% of the largest output magnitude, at least 0.05), measured to hold
with a margin for the 2-3 quantized layers of the test models; a file beyond it is still written,
marked unverified with the measured difference.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.metrics._modules import is_quantized_module

#: Allowed max-abs difference between onnxruntime int8 and torch int8 outputs, times
#: max(1, max|y|) (see the module docstring).
ORT_INT8_TOLERANCE = 5e-2


def float_twin(model: nn.Module) -> nn.Module:
    """A float copy of a dynamic-int8 model: each int8 Linear back to a float Linear."""
    twin = copy.deepcopy(model).cpu().eval()
    for name, module in list(twin.named_modules()):
        if not is_quantized_module(module):
            continue
        if not (type(module).__module__.startswith("torch.ao.nn.quantized.dynamic")
                and hasattr(module, "in_features")):
            raise ExportError(
                f"the int8 layer '{name}' ({module._get_name()}) has no float twin to export",
                "For an int8 ONNX file, compress with the onnx-int8 quantizer (--quantize "
                "onnx-int8), which quantizes the float model with ONNX Runtime; or export this "
                "model as torchscript, state_dict or safetensors.")
        linear = nn.Linear(module.in_features, module.out_features, bias=module.bias() is not None)
        with torch.no_grad():
            linear.weight.copy_(module.weight().dequantize())
            if module.bias() is not None:
                linear.bias.copy_(module.bias())
        parent_name, _, child = name.rpartition(".")
        parent = twin.get_submodule(parent_name) if parent_name else twin
        setattr(parent, child, linear)
    return twin


def quantize_file(src: Path, dst: Path) -> None:
    """``onnxruntime.quantization.quantize_dynamic`` of ``src`` into ``dst`` (int8 weights)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    except Exception as exc:
        raise ExportError(
            f"ONNX Runtime could not quantize the exported float model: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
            "Export the model as torchscript or state_dict instead.") from None
