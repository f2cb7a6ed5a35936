"""int8 for ONNX deployment: export to ONNX, then quantize the *file* with ONNX Runtime.

``torch.ao`` int8 modules have no ONNX mapping, so quantizing in PyTorch and then exporting fails;
the deployable path is the reverse: export the float model (``kdgui.engine.export.export_model``,
which verifies the file against PyTorch) and run ``onnxruntime.quantization`` on it. The result is
an :class:`OnnxRuntimeModel` — an ``nn.Module`` facade over an InferenceSession — so the pipeline
can measure its accuracy and latency like any other stage; its size is the ONNX file's. It cannot
be trained, pruned or exported to torch formats, so this must be the last step of a pipeline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import CompressionContext
from kdgui.engine.models.frozen import OnnxModel

#: The int8 result: an ONNX file run by onnxruntime behind the ``nn.Module`` surface (the same
#: class that runs ONNX teachers, :class:`kdgui.engine.models.frozen.OnnxModel`).
OnnxRuntimeModel = OnnxModel


def export_float_onnx(model: nn.Module, path: Path, example: torch.Tensor) -> Path:
    """Write ``model`` as ONNX (one file, dynamic batch) via the project's exporter."""
    try:
        from kdgui.engine.export import export_model
    except ImportError:  # exporter not available: plain torch.onnx with a dynamic batch
        export_model = None
    if export_model is not None:
        export_model(model.eval(), "onnx", path, example)
        return path
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        model.eval(), (example,), str(path), input_names=["input"], output_names=["output"],
        dynamic_shapes=({0: batch},), external_data=False,
    )
    return path


class _Reader:
    """Feeds calibration batches to ``quantize_static``."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._items = iter([{name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize_onnx_file(
    src: Path, dst: Path, mode: str, per_channel: bool, calibration: list[np.ndarray] | None
) -> Path:
    """Quantize the ONNX file ``src`` into ``dst`` (dynamic, or static QDQ with calibration)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(dst.stem + ".pre.onnx")
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    except Exception:  # pre-processing is an optimisation; quantize the raw file if it fails
        pre = src
    if mode == "dynamic":
        quantize_dynamic(str(pre), str(dst), per_channel=per_channel,
                         weight_type=QuantType.QInt8)
    else:
        import onnx

        name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
        quantize_static(str(pre), str(dst), _Reader(name, calibration or []),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    if pre != src:
        pre.unlink(missing_ok=True)
    return dst


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """Export ``model`` to ONNX, quantize the file to int8, and return it as a runnable module."""
    calibration = None
    if params.mode == "static":
        calibration = [x.cpu().numpy() for x, _ in ctx.calibration_batches(
            params.calibration_samples, 32, what="ONNX static int8 quantization")]
    work = Path(ctx.work_dir) if ctx.work_dir else Path(tempfile.mkdtemp(prefix="kdgui-onnx-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "float.onnx"
    try:
        export_float_onnx(model, src, ctx.example(1).cpu())
    except CompressionError:
        raise
    except Exception as exc:
        raise CompressionError(
            f"onnx-int8 could not export the model to ONNX ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]})",
            "Use dynamic-int8 or static-int8 in PyTorch, or export to a torch format.",
        ) from exc
    dst = work / "model.int8.onnx"
    quantize_onnx_file(src, dst, params.mode, params.per_channel, calibration)
    src.unlink(missing_ok=True)
    src.with_name(src.name + ".data").unlink(missing_ok=True)  # external weights, if any
    result = OnnxRuntimeModel(dst)
    result.kdgui_bits = 8
    result.kdgui_prune_state = getattr(model, "kdgui_prune_state", None)
    ctx.log(f"onnx-int8 ({params.mode}): quantized ONNX file {dst}")
    return result
