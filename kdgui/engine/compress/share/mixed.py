"""Mixed precision by sensitivity: per-layer weight-sharing bits (2–8) chosen to meet a size budget.

Deep Compression gives every fully connected layer the same bits (5) and every convolution 8.
Layers do not suffer alike, though: a large first layer often keeps its accuracy at 3 bits while
a small output layer needs 6. Here the weight-sharing step measures it:

1. **Sensitivity** (:func:`bit_sensitivity`): for each shared layer and each width b in 2..8, only
   that layer is clustered into 2^b values (the step's k-means), the model is run on
   ``plan_samples`` samples of the *calibration* (training) data — not the validation split that
   the run reports, so the reported accuracy stays unbiased — and the layer is restored. How far
   the output distribution moved (KL divergence from the unshared model's, nats per sample) is
   the layer's sensitivity at b bits: a layers × bits matrix, what the window draws as a heatmap.
   Accuracy drops are measured beside it, but they saturate (a model at ~100% training accuracy
   showed no drop at all even at 2 bits on LeNet-300-100), so the plan does not rest on them.
2. **Plan** (:func:`plan_bits`): the bits per layer minimising the *sum* of sensitivities (the
   usual additive assumption of per-layer sensitivity) subject to the size budget
   ``Σ (nonzero_i · b_i + 32 · min(2^b_i, nonzero_i)) ≤ bits_budget · Σ nonzero_i``: the
   codebook indices and the float32 codebooks, what the bits change. It is a multiple-choice
   knapsack, solved exactly by dynamic programming over layers on a cost grid (costs rounded
   *up*, so the plan never exceeds the budget).

Negative values count as 0; among plans with the same predicted loss the one with more bits wins.
"""

from __future__ import annotations

import math
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
#: Bits of one codebook value (float32).
CODEBOOK_BITS = 32


Batches = list[tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def _outputs(model: nn.Module, batches: Batches) -> tuple[torch.Tensor, float | None]:
    """Log-probabilities over all samples, and accuracy over the labelled ones (None: none)."""
    logps, right, seen = [], 0, 0
    for x, y in batches:
        out = model(x)
        logps.append(torch.log_softmax(out.float(), dim=1))
        labelled = y >= 0  # unlabelled transfer samples are marked -1
        right += int((out.argmax(1)[labelled] == y[labelled]).sum())
        seen += int(labelled.sum())
    return torch.cat(logps), (right / seen if seen else None)


@torch.no_grad()
def bit_sensitivity(
    model: nn.Module, layers: dict[str, nn.Module], batches: Batches, params: Any,
    bits: tuple[int, ...] = PLAN_BITS,
) -> dict[str, Any]:
    """``{"layers", "bits", "nonzero", "kl", "baseline", "accuracy", "accuracy_drop"}`` (rows =
    layers, columns = bits); each cell shares one layer at that width, all others untouched.

    ``kl`` is the mean KL divergence (nats per sample) of the shared model's output distribution
    from the unshared model's: the sensitivity the plan minimises. Accuracy saturates (a model
    at 100% training accuracy loses nothing measurable at 2 bits on training samples, and the plan
    would be blind), while the output distribution moves with every bit taken away. Accuracy
    and its drop are recorded beside it for people (None without labelled samples).
    """
    was_training = model.training
    model.eval()
    reference, baseline = _outputs(model, batches)
    kl: list[list[float]] = []
    accuracy: list[list[float | None]] = []
    nonzero: list[int] = []
    try:
        for module in layers.values():
            original = module.weight.detach().clone()
            weight = original.cpu().float().numpy()
            nonzero.append(int(np.count_nonzero(weight)))
            kl_row, acc_row = [], []
            try:
                for b in bits:
                    shared = cluster_weights(weight, b, init=params.init,
                                             iterations=params.iterations, seed=params.seed)
                    module.weight.copy_(torch.from_numpy(shared.weights()).to(original))
                    logp, acc = _outputs(model, batches)
                    kl_row.append(float((reference.exp() * (reference - logp)).sum(1).mean()))
                    acc_row.append(acc)
            finally:
                module.weight.copy_(original)
            kl.append(kl_row)
            accuracy.append(acc_row)
    finally:
        model.train(was_training)
    drops = [[None if a is None or baseline is None else baseline - a for a in row]
             for row in accuracy]
    return {"layers": list(layers), "bits": list(bits), "nonzero": nonzero, "kl": kl,
            "baseline": baseline, "accuracy": accuracy, "accuracy_drop": drops}


def layer_cost(nonzero: int, bits: int, codebook_bits: int = CODEBOOK_BITS) -> int:
    """Bits a shared layer costs at ``bits``: an index per non-zero plus its codebook (at most
    2^bits float32 values, never more than the non-zeros) — for a small layer the codebook is
    most of it (LeNet-300-100's 10-way output layer: 558 non-zeros, 144 values at 8 bits)."""
    return nonzero * bits + codebook_bits * min(2 ** bits, nonzero)


def plan_bits(drops: list[list[float]], nonzero: list[int], bits: list[int],
              budget: float) -> list[int]:
    """Bits per layer minimising Σ drop subject to ``Σ layer_cost ≤ budget · Σ nonzero``.

    ``budget`` is the average bits per non-zero weight (2–8), codebooks included; a budget
    below what the smallest widths cost is a CompressionError naming the smallest reachable.
    """
    total = sum(nonzero)
    if total == 0:
        return [max(bits)] * len(drops)
    floor = sum(min(layer_cost(n, b) for b in bits) for n in nonzero) / total
    if budget < floor:
        raise CompressionError(
            f"bits_budget {budget:g} is below what the smallest widths cost here "
            f"({floor:.2f} bits per non-zero weight, codebooks included)",
            f"Set bits_budget to at least {math.ceil(floor * 100) / 100:g}.")
    limit = budget * total
    unit = sum(max(layer_cost(n, b) for b in bits) for n in nonzero) / GRID
    capacity = math.floor(limit / unit + 1e-9)
    inf = float("inf")
    # best[c]: least loss of the layers so far with cost ≤ c cells; pick: the width chosen
    best = np.full(capacity + 1, 0.0)
    choices: list[np.ndarray] = []
    for row, count in zip(drops, nonzero, strict=True):
        new = np.full(capacity + 1, inf)
        pick = np.full(capacity + 1, -1, dtype=np.int64)
        for j, b in enumerate(bits):
            cost = math.ceil(layer_cost(count, b) / unit - 1e-9)
            if cost > capacity:
                continue
            # ties: more bits win through the tiny tie-break term
            loss = max(0.0, float(row[j])) - 1e-12 * b
            cand = np.full(capacity + 1, inf)
            cand[cost:] = best[: capacity + 1 - cost] + loss
            better = cand < new
            new[better], pick[better] = cand[better], j
        best = new
        choices.append(pick)
    if not np.isfinite(best[capacity]):  # the grid's rounding left no room: all smallest
        return [min(bits, key=lambda b, n=n: layer_cost(n, b)) for n in nonzero]
    plan, c = [], capacity
    for count, pick in zip(reversed(nonzero), reversed(choices), strict=True):
        j = int(pick[c])
        plan.append(bits[j])
        c -= math.ceil(layer_cost(count, bits[j]) / unit - 1e-9)
    return plan[::-1]


def mixed_precision_plan(model: nn.Module, layers: dict[str, nn.Module], params: Any,
                         batches: Batches) -> dict[str, Any]:
    """Measure, plan, and describe: the sensitivity matrices plus ``plan`` (name → bits), the
    budget, the average bits reached, and the predicted KL and accuracy drop of the plan (sums
    of the chosen cells)."""
    table = bit_sensitivity(model, layers, batches, params)
    plan = plan_bits(table["kl"], table["nonzero"], table["bits"], float(params.bits_budget))
    total = max(sum(table["nonzero"]), 1)
    index = {b: j for j, b in enumerate(table["bits"])}
    chosen = [(i, index[b]) for i, b in enumerate(plan)]
    drops = [table["accuracy_drop"][i][j] for i, j in chosen]
    return {**table, "plan": dict(zip(table["layers"], plan, strict=True)),
            "budget_bits": float(params.bits_budget),
            "average_bits": sum(layer_cost(n, b) for n, b in zip(table["nonzero"], plan,
                                                                  strict=True)) / total,
            "predicted_kl": sum(max(0.0, table["kl"][i][j]) for i, j in chosen),
            "predicted_drop": None if None in drops else sum(max(0.0, d) for d in drops),
            "samples": sum(len(y) for _, y in batches)}


__all__ = ["PLAN_BITS", "bit_sensitivity", "layer_cost", "mixed_precision_plan", "plan_bits"]
