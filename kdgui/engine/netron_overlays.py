"""Measured overlays for the graph: each layer's latency and quantization error, written on its
ONNX nodes (``kdgui.latency_ms``, ``kdgui.quant_error``) beside the sparsity/bits/rank that
:mod:`kdgui.engine.netron_annotate` writes, and returned as plain numbers for a colour scale.

Which model runs. A run's stage is run as saved: a ``.pt2`` program unflattened into its modules
(so hooks see each layer), an int8 ``.ts`` through TorchScript (its layers are timed one by one
on inputs captured from its float counterpart, as TorchScript refuses hooks). The teacher, the
saved student and plain files run as loaded. ONNX Runtime stages and opaque teachers are not
measured per layer (a note says so).

The float counterpart of a quantized model (a model whose layer table has bits) is the other
side of a comparison when given, else the nearest earlier stage of the same run without bits.

Inputs: a few batches of the run's own validation data when its config loads, else seeded
random example inputs of the model's input shape (the note says which). Layers are timed with
one intra-op thread (:func:`one_thread`), so the figures say which layers cost most rather than
how busy the machine's thread pool was; the whole-model latency of the summaries is measured
as the model runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgui.engine.device import one_thread
from kdgui.engine.metrics.per_layer import (
    accepts_hooks,
    capture,
    layer_latency,
    layer_quant_error,
)
from kdgui.engine.models.script_load import load_script_module
from kdgui.engine.netron_sources import ModelSource, PreparedModel, run_sources

#: Overlay keys, in display order, and what a legend calls them.
OVERLAYS = {"latency_ms": "latency (ms per batch)", "quant_error": "quantization error (rel. L2)"}


@dataclass
class LayerOverlays:
    """Per-layer measurements of one model (``values[layer][key]``) and how they were taken."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    batch_size: int = 0
    batches: int = 0
    inputs: str = ""
    reference: str | None = None

    def scale(self, key: str) -> tuple[float, float] | None:
        """``(min, max)`` of ``key`` over the layers, None when no layer has it."""
        found = [v[key] for v in self.values.values() if key in v]
        return (min(found), max(found)) if found else None

    def column(self, key: str) -> dict[str, float]:
        return {layer: v[key] for layer, v in self.values.items() if key in v}


Runnable = tuple[nn.Module | None, tuple[int, ...] | None, str]


def runnable(source: ModelSource) -> Runnable:
    """``(module, input shape, "")`` that runs ``source`` layer by layer, or ``(None, _, why)``."""
    from kdgui.engine.models.frozen import opaque_title
    from kdgui.engine.netron_sources import _load_module, _load_program, _program_input_shape

    path, shape = source.path, source.input_shape
    if source.kind == "stage":
        if path is None or not path.is_file():
            return None, shape, f"{source.label} has no saved model"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix == ".pt2":
                program = _load_program(path)
                shape = shape or _program_input_shape(program)
                return torch.export.unflatten(program), shape, ""
            if path.suffix == ".ts":
                return load_script_module(path), shape, ""
        return None, shape, f"{source.label} is an ONNX Runtime model: not measured per layer"
    if path is not None and path.suffix.lower() == ".onnx":
        return None, shape, f"{source.label} is an ONNX model: not measured per layer"
    module, shape = _load_module(source)
    if opaque_title(module) is not None:
        return None, shape, f"{source.label} is a compiled model (no layers to time one by one)"
    return module.eval(), shape, ""


def is_quantized(layers: list[dict[str, Any]]) -> bool:
    return any(r.get("bits") is not None for r in layers)


def _twins(float_layers: list[dict[str, Any]], layers: list[dict[str, Any]]) -> bool:
    """True when ``layers`` is ``float_layers`` quantized: no bits on the float side, and every
    layer both have has the same parameter count and output shape (so same-named layers are
    the same layer, not a teacher's layer beside a student's)."""
    ours = {r["name"]: r for r in layers}
    common = [r for r in float_layers if r["name"] in ours]
    return (not is_quantized(float_layers) and len(common) * 2 >= len(layers) and all(
        r.get("params") == ours[r["name"]].get("params")
        and r.get("out_shape") == ours[r["name"]].get("out_shape") for r in common))


def float_reference(source: ModelSource) -> ModelSource | None:
    """The nearest earlier stage of ``source``'s run whose layer table has no bits."""
    from kdgui.core.run_folders import STAGE_METRICS_FILE, read_json

    if source.kind != "stage" or source.run_dir is None:
        return None
    earlier: list[ModelSource] = []
    for other in run_sources(source.run_dir):
        if other.stage_dir == source.stage_dir:
            break
        if other.kind == "stage" and other.stage_dir is not None:
            earlier.append(other)
    for other in reversed(earlier):
        layers = (read_json(other.stage_dir / STAGE_METRICS_FILE) or {}).get("layers") or []
        if not is_quantized(layers) and other.path is not None and other.path.suffix == ".pt2":
            return other
    return None


def example_batches(source: ModelSource, shape: tuple[int, ...], *, batches: int = 3,
                    batch_size: int = 8) -> tuple[list[torch.Tensor], str]:
    """``batches`` batches of the run's validation data, else of seeded random inputs."""
    if source.run_dir is not None:
        try:
            from kdgui.core.config_io import load_config
            from kdgui.core.run_folders import config_path
            from kdgui.engine.data import load_data

            bundle = load_data(load_config(config_path(source.run_dir)).data)
            xs = [bundle.val[i][0] for i in range(min(len(bundle.val), batches * batch_size))]
            if len(xs) >= batch_size and tuple(xs[0].shape) == tuple(shape):
                out = [torch.stack(xs[i:i + batch_size])
                       for i in range(0, len(xs) - batch_size + 1, batch_size)]
                return out, f"{len(out)} batches of {batch_size} of the run's validation data"
        except Exception:  # no config, data moved, another shape: fall back to random inputs
            pass
    gen = torch.Generator().manual_seed(0)
    out = [torch.randn((batch_size, *shape), generator=gen) for _ in range(batches)]
    return out, f"{batches} batches of {batch_size} random example inputs"


def measure(prepared: PreparedModel, *, reference: PreparedModel | None = None,
            batches: int = 3, batch_size: int = 8, repeats: int = 3) -> LayerOverlays:
    """Latency of every layer of ``prepared``'s model and, when it is quantized, each layer's
    error against its float counterpart (``reference``, else an earlier float stage)."""
    source = prepared.source
    result = LayerOverlays(batch_size=batch_size)
    model, shape, why = runnable(source)
    if model is None:
        result.notes.append(why)
        return result
    twin: nn.Module | None = None
    if is_quantized(prepared.layers):
        ref_source = reference.source if reference is not None and _twins(
            reference.layers, prepared.layers) else float_reference(source)
        if ref_source is not None and ref_source is not source:
            twin, twin_shape, why = runnable(ref_source)
            shape = shape or twin_shape
            result.reference = ref_source.label if twin is not None else None
            if twin is None:
                result.notes.append(f"no quantization error: {why}")
        else:
            result.notes.append("no quantization error: no float counterpart of this model "
                                "(compare it with the model before quantization)")
    if not shape:
        result.notes.append(f"{source.label}: input shape unknown, not measured")
        return result
    data, result.inputs = example_batches(source, shape, batches=batches, batch_size=batch_size)
    result.batches = len(data)
    captured = capture(twin, data) if twin is not None and accepts_hooks(twin) else None
    if not accepts_hooks(model) and captured is None:
        result.notes.append(f"{source.label}: TorchScript layers are timed on inputs captured "
                            "from a float counterpart, and none was found")
    else:
        with one_thread():
            timings = layer_latency(model, data, repeats=repeats, inputs=captured)
        for layer, ms in timings.items():
            result.values.setdefault(layer, {})["latency_ms"] = ms
        if source.path is not None and source.path.suffix == ".pt2":
            result.notes.append(f"{source.label} runs through torch.export's module "
                                "interpreter, which adds time to every layer call: compare its "
                                "latencies with each other or with other .pt2 stages")
    if twin is not None:
        errors = layer_quant_error(twin, model, data, captured=captured)
        for layer, error in errors.items():
            result.values.setdefault(layer, {})["quant_error"] = error
    return result


def write_overlays(onnx_path: str | Path, overlays: LayerOverlays | None,
                   changes: dict[str, str] | None = None) -> int:
    """Write the measurements (and ``changes``, ``{layer: change kind}`` of a comparison) on the
    ONNX file's annotated nodes, replacing earlier ones; returns how many nodes."""
    from kdgui.engine.netron_annotate import add_layer_values

    values: dict[str, dict[str, Any]] = {}
    about = ""
    if overlays is not None:
        values = {layer: dict(v) for layer, v in overlays.values.items()}
        about = f"measured on {overlays.inputs}" if overlays.inputs else ""
        if overlays.reference:
            about += f"; quantization error against {overlays.reference}"
    for layer, kind in (changes or {}).items():
        values.setdefault(layer, {})["change"] = kind
    return add_layer_values(onnx_path, values, about=about)


__all__ = ["OVERLAYS", "LayerOverlays", "example_batches", "float_reference", "is_quantized",
           "measure", "runnable", "write_overlays"]
