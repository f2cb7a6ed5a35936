"""Weight histograms per layer, for the window's histogram plot.

Pruning shows as a spike at zero and quantization as a comb of discrete levels; both are easier
to see than to explain, which is why each measured stage carries one histogram per layer.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from kdgui.engine.metrics._modules import prunable_weight


def weight_histograms(model: nn.Module, bins: int = 41) -> dict[str, dict[str, list[float]]]:
    """``{layer name: {"counts": [...], "edges": [...]}}`` for each Conv/Linear (incl. int8)."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, module in model.named_modules():
        weight = prunable_weight(module)
        if weight is None or weight.numel() == 0:
            continue
        values = weight.detach().float().reshape(-1).cpu().numpy()
        if not np.isfinite(values).all():
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
        limit = float(np.abs(values).max()) or 1.0
        counts, edges = np.histogram(values, bins=bins, range=(-limit, limit))
        out[name] = {"counts": counts.astype(float).tolist(), "edges": edges.tolist()}
    return out


__all__ = ["weight_histograms"]
