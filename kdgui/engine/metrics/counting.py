"""How big a model is: parameters, non-zero parameters, bytes on disk, per-layer sparsity.

Unstructured pruning zeroes weights without removing them, so the parameter count stays the same
and only the non-zero count and the *compressed* size show the effect; structured pruning and
low-rank factorisation change the parameter count itself. Reporting all three makes either kind of
compression visible.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import torch
from torch import nn

from kdgui.engine.metrics._modules import prunable_weight, unique_weight_tensors


def count_params(model: nn.Module) -> int:
    """Number of weights, tied parameters once, ``torch.ao`` quantized weights unpacked."""
    return int(sum(t.numel() for t in unique_weight_tensors(model)))


def count_nonzero(model: nn.Module) -> int:
    """Number of weights that are not exactly zero (pruning masks applied, int8 dequantized)."""
    return int(sum(int(torch.count_nonzero(t)) for t in unique_weight_tensors(model)))


def model_size_bytes(model: nn.Module) -> tuple[int, int]:
    """``(raw, compressed)`` bytes of ``torch.save(model.state_dict())``.

    ``compressed`` is the size of that file inside a zip archive (deflate), which is what a sparse
    model costs to ship: zeros compress, so unstructured pruning shows up here and not in ``raw``.
    Quantized models serialize their packed int8 weights, so both numbers shrink for them.
    """
    raw = io.BytesIO()
    torch.save(model.state_dict(), raw)
    data = raw.getvalue()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("model.pt", data)
    return len(data), len(packed.getvalue())


def layer_sparsity(model: nn.Module) -> tuple[list[str], np.ndarray]:
    """Fraction of exactly-zero weights in each Conv/Linear layer (float, pruned or quantized).

    Layers come in ``named_modules`` order, so names are stable while the architecture is; biases
    are excluded because pruning methods leave them alone.
    """
    names: list[str] = []
    values: list[float] = []
    for name, module in model.named_modules():
        weight = prunable_weight(module)
        if weight is None or weight.numel() == 0:
            continue
        names.append(name or type(module).__name__)
        values.append(1.0 - int(torch.count_nonzero(weight)) / weight.numel())
    return names, np.asarray(values, dtype=np.float64)
