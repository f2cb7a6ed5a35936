"""``inspect_file``: what a model file holds, for ``kdgui inspect`` and the window's file picker.

It never unpickles code without ``trust`` (same rules as :func:`load_model`), and for a bare
state_dict it lists the tensors and says an architecture is needed, instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from kdgui.core.config import ModelRef
from kdgui.core.errors import ModelLoadError
from kdgui.engine.models import sniff
from kdgui.engine.models.arch import ARCH_FORMS
from kdgui.engine.models.frozen import FrozenTeacher
from kdgui.engine.models.hub import is_hf_folder
from kdgui.engine.models.loading import (
    _weights_metadata,
    embedded_architecture,
    load_model,
    load_pickle,
)
from kdgui.engine.models.weights import find_state_dict, read_safetensors

MAX_LAYERS = 500


def inspect_file(path: str | Path, arch: str | None = None, num_classes: int | None = None,
                 trust: bool = False, input_shape: tuple[int, ...] | None = None
                 ) -> dict[str, Any]:
    """Plain facts about a model file (``'demo'`` for the bundled teacher).

    Keys: ``path``, ``format``, ``format_title``; for weights-only files ``tensors``
    (name/shape/dtype), ``num_tensors``, ``tensor_params`` and a ``note`` (also in ``notes``);
    for loadable models ``layers`` (name/type/params), ``params``, ``input_shape``, ``num_classes``, ``macs`` (when
    the input shape is known) and ``metadata``.
    """
    text = str(path)
    info: dict[str, Any] = {"path": text}
    if text != "demo" and is_hf_folder(Path(text).expanduser()):
        info["format"], info["format_title"] = "hf_folder", "Hugging Face model folder"
    elif text != "demo":
        fmt = sniff.sniff(Path(text).expanduser())
        info["format"] = fmt
        info["format_title"] = sniff.TITLES[fmt]
        rebuilt = fmt in (sniff.SAFETENSORS, sniff.TORCH_SAVE) and isinstance(
            _weights_metadata(Path(text).expanduser()).get("rebuild"), dict)
        state = None if rebuilt else _bare_state(Path(text).expanduser(), fmt, trust)
        if state is not None:
            info.update(_tensor_table(state))
            if not arch and embedded_architecture(Path(text).expanduser()) is None:
                info["note"] = (f"this file holds only weights ({len(state)} tensors); an "
                                f"architecture ({ARCH_FORMS}) is needed to run it")
                info["notes"] = [info["note"]]
                return info
    if info.get("tensors"):
        info["notes"] = ["architecture read from the file's KD Studio metadata"] if not arch \
            else []
    ref = ModelRef(path=text, arch=arch, num_classes=num_classes, trust=trust)
    loaded = load_model(ref, num_classes=num_classes, input_shape=input_shape)
    info.setdefault("format", loaded.format)
    info.setdefault("format_title", sniff.TITLES.get(loaded.format, loaded.format))
    info.update(describe_module(loaded.module, loaded.input_shape))
    info["num_classes"] = loaded.num_classes
    info["metadata"] = {k: v for k, v in loaded.metadata.items() if k != "spec"}
    if "spec" in loaded.metadata:
        info["spec"] = loaded.metadata["spec"]
    return info


def _bare_state(path: Path, fmt: str, trust: bool) -> dict[str, Tensor] | None:
    if fmt == sniff.SAFETENSORS:
        return read_safetensors(path)
    if fmt == sniff.TORCH_SAVE:
        obj = load_pickle(path, trust=trust)
        if isinstance(obj, nn.Module):
            return None
        state = find_state_dict(obj)
        if state is None:
            raise ModelLoadError(
                f"the file holds a {type(obj).__name__}, neither a model nor a state_dict",
                "Save the model's state_dict() (or the model with torch.jit/torch.export)",
                source=str(path))
        return state
    return None


def _tensor_table(state: dict[str, Tensor]) -> dict[str, Any]:
    return {
        "tensors": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                    for k, v in state.items()],
        "num_tensors": len(state),
        "tensor_params": sum(int(v.numel()) for v in state.values()),
    }


def describe_module(module: nn.Module, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """Layers (leaf modules with their own parameter counts), totals and MACs when computable.

    A TorchScript or torch.export model lists the layers of the program inside its wrapper; an
    ONNX model lists its graph's nodes (with the sizes of the weights each one reads).
    """
    if isinstance(module, FrozenTeacher) and module.kind == "onnx":
        layers = _onnx_layers(module)
    else:
        inner = module.inner if isinstance(module, FrozenTeacher) else module
        layers = _layers(inner)
    out: dict[str, Any] = {
        "layers": layers,
        "params": int(sum(p.numel() for p in module.parameters())),
        "input_shape": list(input_shape) if input_shape else None,
        "macs": None,
    }
    if input_shape:
        _add_macs(module, input_shape, out)
    return out


def _layers(module: nn.Module) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for name, sub in module.named_modules():
        if not name or any(True for _ in sub.children()):
            continue
        own = sum(p.numel() for p in sub.parameters(recurse=False))
        kind = getattr(sub, "original_name", None) or type(sub).__name__
        layers.append({"name": name, "type": kind, "params": int(own)})
        if len(layers) >= MAX_LAYERS:
            break
    return layers


def _onnx_layers(module: FrozenTeacher) -> list[dict[str, Any]]:
    import onnx

    proto = onnx.load(str(module.path), load_external_data=False)
    sizes = {init.name: int(np.prod(init.dims)) if init.dims else 1
             for init in proto.graph.initializer}
    return [{"name": node.name or f"{node.op_type}_{i}", "type": node.op_type,
             "params": sum(sizes.get(n, 0) for n in node.input)}
            for i, node in enumerate(proto.graph.node[:MAX_LAYERS])]


def _add_macs(module: nn.Module, input_shape: tuple[int, ...], out: dict[str, Any]) -> None:
    """Total MACs, and per-layer output shapes and MACs where the layers can be hooked."""
    try:
        from kdgui.engine.metrics import trace_macs

        trace = trace_macs(module, tuple(input_shape))
    except Exception:  # MACs are a nicety; an untraceable model still gets inspected
        return
    out["macs"] = trace.total if trace.total >= 0 else None
    for layer in out["layers"]:  # per-layer output shapes and MACs from the same forward pass
        shape = trace.out_shapes.get(layer["name"])
        if shape is not None:
            layer["out_shape"] = list(shape)
        if trace.total >= 0 and layer["name"] in trace.per_module:
            layer["macs"] = int(trace.per_module[layer["name"]])
