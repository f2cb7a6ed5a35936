"""Mixed precision by sensitivity: per-layer weight-sharing bits (2–8) chosen to meet a size budget.

Deep Compression gives every fully connected layer the same bits (5) and every convolution 8.
Layers do not suffer alike, though: a large first layer often keeps its accuracy at 3 bits while
a small output layer needs 6. Here the weight-sharing step measures it:

1. **Sensitivity** (:func:`bit_sensitivity`): for each shared layer and each width b in 2..8, only
   that layer is clustered into 2^b values (the step's k-means), the model is evaluated on
   ``plan_samples`` samples of the *calibration* (training) data — not the validation split that
   the run reports, so the reported accuracy stays unbiased — and the layer is restored. The drop
   from the unshared model is the layer's predicted loss at b bits (a layers × bits matrix, what
   the window draws as a heatmap).
2. **Plan** (:func:`plan_bits`): the bits per layer minimising the *sum* of predicted drops (the
   usual additive assumption of per-layer sensitivity) subject to the size budget
   ``Σ nonzero_i · b_i ≤ bits_budget · Σ nonzero_i`` — the coded size of the indices, which is
   what the bits change. It is a multiple-choice knapsack, solved exactly by dynamic programming
   over layers on a cost grid (costs rounded *up*, so the plan never exceeds the budget).

Negative drops (noise: a layer that scores higher when coarser) count as 0; among plans with the
same predicted loss the one with more bits wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.share.kmeans import cluster_weights

#: The widths a plan chooses from (the issue's 2–8 bits).
PLAN_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
#: Cost grid of the dynamic programme (cells over the largest possible cost).
GRID = 4000


@torch.no_grad()
def bit_sensitivity(
    model: nn.Module, layers: dict[str, nn.Module], evaluate: Callable[[nn.Module], float],
    params: Any, bits: tuple[int, ...] = PLAN_BITS,
) -> dict[str, Any]:
    """``{"layers", "bits", "baseline", "accuracy", "accuracy_drop", "nonzero"}`` (rows =
    layers, columns = bits); each cell shares one layer at that width, all others untouched."""
    baseline = float(evaluate(model))
    accuracy: list[list[float]] = []
    nonzero: list[int] = []
    for module in layers.values():
        original = module.weight.detach().clone()
        weight = original.cpu().float().numpy()
        nonzero.append(int(np.count_nonzero(weight)))
        row = []
        try:
            for b in bits:
                shared = cluster_weights(weight, b, init=params.init,
                                         iterations=params.iterations, seed=params.seed)
                module.weight.copy_(torch.from_numpy(shared.weights()).to(original))
                row.append(float(evaluate(model)))
        finally:
            module.weight.copy_(original)
        accuracy.append(row)
    return {"layers": list(layers), "bits": list(bits), "baseline": baseline,
            "accuracy": accuracy, "accuracy_drop": [[baseline - a for a in r] for r in accuracy],
            "nonzero": nonzero}


def plan_bits(drops: list[list[float]], nonzero: list[int], bits: list[int],
              budget: float) -> list[int]:
    """Bits per layer minimising Σ drop subject to ``Σ nonzero·bits ≤ budget·Σ nonzero``.

    ``budget`` is the average bits per non-zero weight (2–8); a budget below the smallest width
    is a CompressionError naming the smallest average it can reach.
    """
    total = sum(nonzero)
    if total == 0:
        return [max(bits)] * len(drops)
    if budget < min(bits):
        raise CompressionError(
            f"bits_budget {budget:g} is below the smallest width a layer can have ({min(bits)})",
            f"Set bits_budget to at least {min(bits)} (bits per non-zero weight, on average).")
    limit = budget * total
    unit = max(bits) * total / GRID
    capacity = math.floor(limit / unit + 1e-9)
    inf = float("inf")
    # best[c]: least loss of the layers so far with cost exactly ≤ c cells; choice per layer
    best = np.full(capacity + 1, 0.0)
    choices: list[np.ndarray] = []
    for row, count in zip(drops, nonzero, strict=True):
        new = np.full(capacity + 1, inf)
        pick = np.full(capacity + 1, -1, dtype=np.int64)
        for j, b in enumerate(bits):
            cost = math.ceil(count * b / unit - 1e-9)
            if cost > capacity:
                continue
            # ties: more bits (later j) win through the tiny tie-break term
            loss = max(0.0, float(row[j])) - 1e-9 * b
            cand = np.full(capacity + 1, inf)
            cand[cost:] = best[: capacity + 1 - cost] + loss
            better = cand < new
            new[better], pick[better] = cand[better], j
        best = new
        choices.append(pick)
    if not np.isfinite(best[capacity]):  # rounding left no room (tiny budgets): all smallest
        return [min(bits)] * len(drops)
    plan, c = [], capacity
    for count, pick in zip(reversed(nonzero), reversed(choices), strict=True):
        j = int(pick[c])
        plan.append(bits[j])
        c -= math.ceil(count * bits[j] / unit - 1e-9)
    return plan[::-1]


def mixed_precision_plan(model: nn.Module, layers: dict[str, nn.Module], params: Any,
                         evaluate: Callable[[nn.Module], float]) -> dict[str, Any]:
    """Measure, plan, and describe: the sensitivity matrix plus ``plan`` (name → bits), the
    budget, the average bits reached and the predicted accuracy drop."""
    table = bit_sensitivity(model, layers, evaluate, params)
    plan = plan_bits(table["accuracy_drop"], table["nonzero"], table["bits"],
                     float(params.bits_budget))
    total = max(sum(table["nonzero"]), 1)
    index = {b: j for j, b in enumerate(table["bits"])}
    predicted = sum(max(0.0, row[index[b]]) for row, b in zip(table["accuracy_drop"], plan,
                                                                strict=True))
    return {**table, "plan": dict(zip(table["layers"], plan, strict=True)),
            "budget_bits": float(params.bits_budget),
            "average_bits": sum(n * b for n, b in zip(table["nonzero"], plan, strict=True))
            / total,
            "predicted_drop": predicted, "samples": int(params.plan_samples)}


__all__ = ["PLAN_BITS", "bit_sensitivity", "mixed_precision_plan", "plan_bits"]
