"""Measuring a stage's model and saving it in the run folder, without pickle where possible.

A pruned or factorized model is a *new* architecture, so ``torch.save(model)`` would be the easy
way to keep it — and reloading that needs ``weights_only=False``, i.e. running pickled code.
Stages are therefore saved as ``torch.export`` programs (``model.pt2``: graph + weights, no
pickle). ``torch.ao`` int8 models cannot be exported that way (their packed weights are script
objects without ``__obj_flatten__`` in torch 2.14), so they fall back to a traced TorchScript
archive (``model.ts``), and ONNX Runtime stages keep their ``.onnx`` file. Each folder is written
under a temporary name and renamed when complete, so a failed save leaves no partial stage.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from kdgui.core.run_folders import STAGE_METRICS_FILE, stage_folder_name
from kdgui.engine import metrics as M
from kdgui.engine.compress.context import CompressionContext
from kdgui.engine.compress.quantize.onnx import OnnxRuntimeModel
from kdgui.engine.models.frozen import FrozenTeacher


def measure(model: nn.Module, name: str, ctx: CompressionContext) -> tuple[dict[str, Any], list]:
    """The stage's metrics (``name, accuracy, params, nonzero_params, size_bytes, zip_size_bytes,
    macs, latency_ms, latency_ms_b32, prune_state``) and its per-layer table."""
    summary = M.model_summary(model, tuple(ctx.input_shape), device=ctx.device)
    layers = summary.pop("layers")
    if isinstance(model, OnnxRuntimeModel):
        summary.update(_onnx_sizes(model.path))
    accuracy = ctx.accuracy(model)
    metrics = {
        "name": name,
        "accuracy": accuracy,
        **{k: summary[k] for k in ("params", "nonzero_params", "size_bytes", "zip_size_bytes",
                                   "macs", "latency_ms", "latency_ms_b32")},
        "prune_state": getattr(model, "kdgui_prune_state", None) or "none",
    }
    if summary.get("macs_note"):
        metrics["macs_note"] = summary["macs_note"]
    return metrics, layers


def _onnx_sizes(path: Path) -> dict[str, Any]:
    """Params and sizes of an ONNX file (the module facade has no torch weights to count)."""
    graph = onnx.load(str(path)).graph
    arrays = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    weights = [a for a in arrays if a.ndim >= 2]
    data = Path(path).read_bytes()
    tmp = Path(str(path) + ".zip")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("model.onnx", data)
    zipped = tmp.stat().st_size
    tmp.unlink()
    return {
        "params": int(sum(a.size for a in weights)),
        "nonzero_params": int(sum(int((a != 0).sum()) for a in weights)),
        "size_bytes": len(data),
        "zip_size_bytes": zipped,
        "macs": -1,
        "macs_note": "MACs are not traced through an ONNX Runtime session",
    }


def _export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """A ``torch.export`` program with a dynamic batch (static if the model forbids it)."""
    batch = example.expand(2, *example.shape[1:]).contiguous()  # 1 would be specialised
    try:
        return torch.export.export(model, (batch,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    except Exception:
        return torch.export.export(model, (example,))


def _save_model(model: nn.Module, folder: Path, example: torch.Tensor) -> tuple[str, str]:
    """Write the model into ``folder``; returns (file name, note on the format chosen)."""
    if isinstance(model, OnnxRuntimeModel):
        shutil.copyfile(model.path, folder / "model.onnx")
        return "model.onnx", "ONNX file (onnxruntime)"
    if isinstance(model, FrozenTeacher):  # a loaded TorchScript or .pt2 file: kept as it is
        if model.kind == "torchscript":  # (its weights may have been fine-tuned)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.save(model.inner, str(folder / "model.ts"))
            return "model.ts", "TorchScript archive (the loaded model)"
        shutil.copyfile(str(model.path), folder / "model.pt2")
        return "model.pt2", "torch.export program (the loaded file)"
    model = model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = _export_program(model, example)
            torch.export.save(program, folder / "model.pt2")
        return "model.pt2", "torch.export program (no pickle)"
    except Exception as exc:  # quantized script objects, untraceable control flow
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}" if str(exc) else (
            type(exc).__name__)
    (folder / "model.pt2").unlink(missing_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (example,), check_trace=False)
        torch.jit.save(traced, str(folder / "model.ts"))
    return "model.ts", f"TorchScript archive (torch.export failed: {reason})"


def save_stage(
    model: nn.Module, out_dir: Path, index: int, name: str, metrics: dict[str, Any],
    layers: list, ctx: CompressionContext,
) -> Path:
    """Write ``out_dir/<index>_<name>/`` (model + metrics.json) atomically."""
    stages = Path(out_dir)
    stages.mkdir(parents=True, exist_ok=True)
    final = stages / stage_folder_name(index, name)
    tmp = stages / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        file, note = _save_model(model, tmp, ctx.example(1))
        (tmp / STAGE_METRICS_FILE).write_text(json.dumps(
            {"metrics": metrics, "layers": layers, "model_file": file, "format": note},
            indent=2, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / file
