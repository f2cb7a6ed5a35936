"""Per-layer pruning sensitivity: prune one layer at a time at several ratios, measure the drop.

The result is a matrix (layers × ratios) of accuracy drops that the window plots as a heatmap:
layers whose accuracy collapses at low ratios should be pruned less (or excluded). Each cell
zeroes the smallest-magnitude weights of one layer, evaluates, and restores that layer's weights,
so the model is unchanged afterwards and no copy of the whole model is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kdgui.engine.compress.context import check_layers_exist
from kdgui.engine.compress.prune.unstructured import (
    PRUNABLE,
    _keep_mask,
    check_sparsity,
    prunable_layers,
)


def sensitivity(
    model: nn.Module,
    layers: list[str] | None,
    ratios: list[float],
    evaluate: Callable[[nn.Module], float],
) -> dict[str, Any]:
    """``{"layers", "ratios", "baseline", "accuracy", "accuracy_drop"}`` (rows = layers).

    ``layers`` None means every Linear/conv layer; ``evaluate`` returns accuracy (any unit —
    drops are in the same unit). Magnitude (unstructured) pruning of the one layer is used.
    """
    for ratio in ratios:
        check_sparsity(ratio, "sensitivity ratio")
    if layers is None:
        layers = list(prunable_layers(model))
    check_layers_exist(model, list(layers), "sensitivity analysis")
    modules = dict(model.named_modules())
    baseline = float(evaluate(model))
    accuracy: list[list[float]] = []
    for name in layers:
        module = modules[name]
        if not isinstance(module, PRUNABLE):
            accuracy.append([baseline] * len(ratios))
            continue
        original = module.weight.detach().clone()
        row = []
        try:
            for ratio in ratios:
                with torch.no_grad():
                    module.weight.mul_(_keep_mask(original.abs(), ratio).to(original.dtype))
                row.append(float(evaluate(model)))
                with torch.no_grad():
                    module.weight.copy_(original)
        finally:
            with torch.no_grad():
                module.weight.copy_(original)
        accuracy.append(row)
    return {
        "layers": list(layers),
        "ratios": list(ratios),
        "baseline": baseline,
        "accuracy": accuracy,
        "accuracy_drop": [[baseline - a for a in row] for row in accuracy],
    }
