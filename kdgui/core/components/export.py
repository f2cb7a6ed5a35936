"""The export formats, declared once: what each writes, its options, and where it is implemented.

Which format to pick: ``pt2`` (torch.export) and ``onnx`` are self-contained and need no Python
code to load; ``torchscript`` is deprecated since PyTorch 2.14 but is the only self-contained
format for ``torch.ao`` quantized models; ``state_dict`` and ``safetensors`` hold weights only and
need the architecture to load (safetensors cannot run code when loaded and holds plain tensors
only, so not packed int8 weights).
"""

from __future__ import annotations

from typing import Literal

from kdgui.core.params import Params, param
from kdgui.core.registry import register


class StateDictParams(Params):
    """No options: ``torch.save(model.state_dict())`` plus a JSON sidecar with the metadata."""


class SafetensorsParams(Params):
    """No options: ``safetensors.torch.save_file`` with the metadata in the file's header."""


class Pt2Params(Params):
    dynamic_batch: bool = param(
        True, "Accept any batch size when loaded (otherwise the example's batch size is fixed)."
    )
    strict: bool = param(
        False,
        "Trace with torch.export's strict mode (TorchDynamo), which refuses more Python "
        "constructs but checks more; non-strict traces the Python code as it runs.",
    )


class OnnxParams(Params):
    opset: int = param(
        20,
        "ONNX opset version: newer opsets have more operators, older runtimes need older ones.",
        ge=18,
        le=23,
        step=1,
    )
    dynamic_batch: bool = param(
        True, "Make the batch dimension symbolic so the file accepts any batch size."
    )
    optimize: bool = param(
        True, "Let the exporter fold constants and fuse simple patterns (smaller, faster file)."
    )


class TorchScriptParams(Params):
    method: Literal["trace", "script"] = param(
        "trace",
        "'trace' records the operations run on the example input (data-dependent branches are "
        "frozen); 'script' compiles the Python code (keeps branches, refuses more code).",
    )


_ENGINE = "kdgui.engine.export"

register(
    "exporter",
    "state_dict",
    StateDictParams,
    f"{_ENGINE}.state_dict:StateDictExporter",
    "PyTorch state_dict (.pt)",
    "Weights only, loaded without running code (weights_only); a JSON sidecar records the "
    "architecture spec, input shape, class names and normalization.",
)
register(
    "exporter",
    "safetensors",
    SafetensorsParams,
    f"{_ENGINE}.safetensors:SafetensorsExporter",
    "safetensors (.safetensors)",
    "Weights only in a format that cannot execute code when loaded; metadata in the header. "
    "Not for torch.ao quantized models (packed weights are not plain tensors).",
)
register(
    "exporter",
    "pt2",
    Pt2Params,
    f"{_ENGINE}.pt2:Pt2Exporter",
    "torch.export program (.pt2)",
    "Self-contained graph and weights, loaded with torch.export.load; PyTorch's recommended "
    "successor to TorchScript.",
)
register(
    "exporter",
    "onnx",
    OnnxParams,
    f"{_ENGINE}.onnx:OnnxExporter",
    "ONNX (.onnx)",
    "Runs in onnxruntime and many other runtimes; verified with onnx.checker and onnxruntime.",
)
register(
    "exporter",
    "torchscript",
    TorchScriptParams,
    f"{_ENGINE}.torchscript:TorchScriptExporter",
    "TorchScript (.ts)",
    "Self-contained, deprecated since PyTorch 2.14 but the one self-contained format that "
    "holds torch.ao quantized models.",
)
