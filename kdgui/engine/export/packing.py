"""An int8 state_dict as plain tensors plus a JSON layout, so safetensors can hold it.

A ``torch.ao`` dynamic-int8 model's state_dict holds quantized tensors inside tuples
(``fc._packed_params._packed_params = (qweight, bias)``) and ``torch.dtype`` values: safetensors,
which holds plain dense tensors and a string header only, cannot store them as they are. Each
quantized tensor is stored as its int8 values (``int_repr``) plus its scale and zero point (one
per tensor, or one per channel with the axis), each tuple as its items, and scalars and dtypes go
to the JSON layout; :func:`unpack_state` reverses it exactly (bit for bit), so nothing needs
pickle and a reloaded int8 model computes what the exported one did.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor

LAYOUT_KEY = "kdgui_layout"


def needs_packing(state: dict[str, Any]) -> bool:
    """True when some entry is not a plain dense tensor."""
    return any(not isinstance(v, Tensor) or v.is_quantized for v in state.values())


def pack_state(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, layout)``: plain tensors for safetensors, and how to reassemble the entries."""
    tensors: dict[str, Tensor] = {}
    entries: dict[str, Any] = {}
    for key, value in state.items():
        entries[key] = _pack(key, value, tensors)
    # Per-module versions: quantized layers read their state differently by version.
    versions = {k: dict(v) for k, v in (getattr(state, "_metadata", None) or {}).items()}
    return tensors, {"entries": entries, "versions": versions}


def _pack(key: str, value: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(value, Tensor):
        if not value.is_quantized:
            tensors[key] = value.detach().cpu().contiguous().clone()
            return {"t": "tensor"}
        tensors[key] = value.int_repr().contiguous().clone()
        dtype = str(value.dtype).replace("torch.", "")
        if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            return {"t": "qtensor", "dtype": dtype, "scale": float(value.q_scale()),
                    "zero_point": int(value.q_zero_point())}
        tensors[key + ".__scales"] = value.q_per_channel_scales().clone()
        tensors[key + ".__zero_points"] = value.q_per_channel_zero_points().clone()
        return {"t": "qchannel", "dtype": dtype, "axis": int(value.q_per_channel_axis())}
    if isinstance(value, (tuple, list)):
        return {"t": "tuple" if isinstance(value, tuple) else "list",
                "items": [_pack(f"{key}.__{i}", item, tensors) for i, item in enumerate(value)]}
    if isinstance(value, torch.dtype):
        return {"t": "dtype", "value": str(value).replace("torch.", "")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"t": "value", "value": value}
    raise TypeError(f"state_dict entry '{key}' is a {type(value).__name__}")


def unpack_state(tensors: dict[str, Tensor], layout: dict[str, Any]) -> dict[str, Any]:
    """The state_dict :func:`pack_state` took apart (an OrderedDict with its ``_metadata``)."""
    state = OrderedDict(
        (key, _unpack(key, entry, tensors)) for key, entry in layout["entries"].items())
    state._metadata = OrderedDict(layout.get("versions", {}))  # type: ignore[attr-defined]
    return state


def _unpack(key: str, entry: dict[str, Any], tensors: dict[str, Tensor]) -> Any:
    kind = entry["t"]
    if kind == "tensor":
        return tensors[key]
    if kind == "qtensor":  # the int8/uint8 values pick qint8/quint8
        return torch._make_per_tensor_quantized_tensor(
            tensors[key], entry["scale"], entry["zero_point"])
    if kind == "qchannel":
        return torch._make_per_channel_quantized_tensor(
            tensors[key], tensors[key + ".__scales"], tensors[key + ".__zero_points"],
            entry["axis"])
    if kind in ("tuple", "list"):
        items = [_unpack(f"{key}.__{i}", item, tensors) for i, item in enumerate(entry["items"])]
        return tuple(items) if kind == "tuple" else items
    if kind == "dtype":
        return getattr(torch, entry["value"])
    return entry["value"]

