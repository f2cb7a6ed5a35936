"""Per-layer tables and whole-model summaries as plain, JSON-able data.

Compression steps annotate the modules they change with ``kdgui_removed_channels`` (structured
pruning), ``kdgui_rank`` (low-rank factorisation) and ``kdgui_bits`` (quantization); the table
reads those attributes so the window and reports can show *what* was done to each layer without
this module knowing about any compression method. ``torch.ao`` quantized layers report their
weight bit width even when nobody set ``kdgui_bits``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdgui.engine.metrics._modules import is_quantized_module, own_weight_tensors, quantized_bits
from kdgui.engine.metrics.counting import count_nonzero, count_params, model_size_bytes
from kdgui.engine.metrics.latency import measure_latency
from kdgui.engine.metrics.macs import MacTrace, trace_macs


def _json_value(value: Any) -> Any:
    """Module annotations as JSON: tensors and tuples become lists, numbers stay numbers."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per leaf module, in module order, from one forward pass of one sample.

    Keys: ``name``, ``type``, ``out_shape`` (batch 1 included; None if the layer did not run),
    ``params``, ``nonzero``, ``sparsity`` (zero fraction of the layer's own weights), ``macs``
    (None if the model could not be traced), ``removed_channels``, ``rank``, ``bits``.
    """
    return _rows(model, trace_macs(model, input_shape))


def _rows(model: nn.Module, trace: MacTrace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    packed: list[str] = []  # quantized layers are leaves; their packed-params child is internal
    # A factorised layer is a container of two smaller layers marked with the rank as a whole;
    # the rank is shown on each of its leaves.
    inherited: dict[str, Any] = {}
    for name, module in model.named_modules():
        rank = getattr(module, "kdgui_rank", None)
        if rank is not None and any(True for _ in module.children()):
            for child_name, _ in module.named_modules():
                if child_name:
                    inherited[f"{name}.{child_name}" if name else child_name] = rank
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") or not p for p in packed):
            continue
        if is_quantized_module(module):
            packed.append(name)
        elif any(True for _ in module.children()):
            continue
        tensors = own_weight_tensors(module)
        params = sum(t.numel() for t in tensors)
        nonzero = sum(int(torch.count_nonzero(t)) for t in tensors)
        bits = getattr(module, "kdgui_bits", None)
        rows.append(
            {
                "name": name or type(module).__name__,
                "type": module._get_name(),
                "out_shape": trace.out_shapes.get(name),
                "params": int(params),
                "nonzero": int(nonzero),
                "sparsity": (1.0 - nonzero / params) if params else 0.0,
                "macs": trace.per_module.get(name) if trace.total >= 0 else None,
                "removed_channels": _json_value(getattr(module, "kdgui_removed_channels", None)),
                "rank": _json_value(getattr(module, "kdgui_rank", inherited.get(name))),
                "bits": _json_value(bits if bits is not None else quantized_bits(module)),
            }
        )
    return rows


def model_summary(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str = "cpu",
    latency: bool = True,
) -> dict[str, Any]:
    """Everything the comparison table shows about one model, as JSON-able data.

    Keys: ``params``, ``nonzero_params``, ``size_bytes``, ``zip_size_bytes``, ``macs`` (-1 when
    the model cannot be traced, with ``macs_note`` saying why), ``latency_ms`` (batch 1) and
    ``latency_ms_b32`` (batch 32; both None with ``latency=False``), ``layers`` (see
    :func:`layer_table`, each Conv/Linear with a weight ``hist``), ``input_shape``.
    """
    from kdgui.engine.metrics.histograms import weight_histograms

    raw, zipped = model_size_bytes(model)
    trace = trace_macs(model, input_shape)
    rows = _rows(model, trace)
    hists = weight_histograms(model)
    for row in rows:  # the window's weight-histogram plot reads these
        if row.get("name") in hists:
            row["hist"] = hists[row["name"]]
    return {
        "input_shape": list(input_shape),
        "params": count_params(model),
        "nonzero_params": count_nonzero(model),
        "size_bytes": raw,
        "zip_size_bytes": zipped,
        "macs": trace.total,
        "macs_note": trace.note,
        "latency_ms": measure_latency(model, input_shape, 1, device) if latency else None,
        "latency_ms_b32": measure_latency(model, input_shape, 32, device) if latency else None,
        "layers": rows,
    }
