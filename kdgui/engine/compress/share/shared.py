"""The weight-sharing step: cluster each layer, then fine-tune the shared centroids.

Shared-centroid fine-tuning, as in Deep Compression §3.3: the gradient of a centroid is the sum of
the gradients of the weights in its cluster. We get exactly that from autograd by making each
shared layer's weight a *function of its codebook* during training: a
``torch.nn.utils.parametrize`` parametrization computes ``weight = [0, c_1..c_k][index + 1]``,
where the codebook ``c`` is the only trainable tensor and ``index`` a buffer. The backward of that
gather is a scatter-add, which sums each cluster's gradients into its centroid; pruned weights
(index -1) read the constant zero and stay zero, so the pruning masks are kept without a hook.
The optimizer the fine-tuning builds sees the codebooks (the original weights are frozen), so any
optimizer, learning-rate schedule or distillation loss works unchanged.

After fine-tuning the parametrizations are removed with the shared values written into plain
weights, so the model is an ordinary model again (exportable, measurable): the weight sharing is
then visible as each layer holding at most 2^bits distinct non-zero values, which is what the
Deep Compression exporter (:mod:`kdgui.engine.export.deepc`) codes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from kdgui.core.errors import CompressionError
from kdgui.core.events import Event
from kdgui.engine.compress.context import CompressionContext, check_layers_exist
from kdgui.engine.compress.prune.unstructured import PRUNABLE, mark_masked
from kdgui.engine.compress.share.kmeans import Clustering, cluster_weights

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class SharedWeight(nn.Module):
    """Parametrization: a weight read from a trainable codebook through a fixed index.

    ``forward`` ignores the original weight: the layer's weight *is* ``codebook[index]``.
    """

    def __init__(self, clustering: Clustering, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.codebook = nn.Parameter(
            torch.as_tensor(clustering.centroids, dtype=dtype, device=device).clone())
        self.register_buffer(
            "index", torch.as_tensor(clustering.index + 1, dtype=torch.long, device=device))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        table = torch.cat([self.codebook.new_zeros(1), self.codebook])
        return table[self.index]


def layer_bits(name: str, module: nn.Module, params: Any) -> int:
    """Bits of a layer: the first matching pattern in ``params.bits``, else conv / fc default."""
    for pattern, bits in params.bits.items():
        if fnmatch.fnmatchcase(name, pattern):
            return int(bits)
    return int(params.conv_bits if isinstance(module, CONV) else params.fc_bits)


def shareable_layers(model: nn.Module, exclude: list[str]) -> dict[str, nn.Module]:
    skip = set(exclude)
    return {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE) and n not in skip}


def cluster_model(model: nn.Module, params: Any, plan: dict[str, int] | None = None
                  ) -> dict[str, tuple[int, Clustering]]:
    """Cluster every shared layer in place (bits from ``plan`` when given, a mixed-precision
    plan); returns ``name -> (bits, clustering)``."""
    check_layers_exist(model, list(params.exclude), "weight sharing")
    for pattern in params.bits:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in shareable_layers(model, [])):
            raise CompressionError(
                f"weight sharing: the bits pattern {pattern!r} matches no Linear or Conv layer",
                "Use layer names or shell patterns from the model's layer table (e.g. 'fc*').")
    layers = shareable_layers(model, list(params.exclude))
    if not layers:
        raise CompressionError("weight sharing found no Linear or convolution layer",
                               "Check the model and the 'exclude' list.")
    result = {}
    for name, module in layers.items():
        bits = plan[name] if plan and name in plan else layer_bits(name, module, params)
        weight = module.weight.detach().cpu().float().numpy()
        clustering = cluster_weights(weight, bits, init=params.init,
                                     iterations=params.iterations, seed=params.seed)
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(clustering.weights()).to(module.weight))
        module.kdgui_bits = bits  # the layer table and the graph show the shared layer's bits
        result[name] = (bits, clustering)
    return result


@contextmanager
def shared_training(model: nn.Module, clusters: dict[str, tuple[int, Clustering]]
                    ) -> Iterator[dict[str, SharedWeight]]:
    """Train only the codebooks: parametrize the shared layers, bake the values in on exit."""
    modules = dict(model.named_modules())
    added: dict[str, SharedWeight] = {}
    try:
        for name, (_bits, clustering) in clusters.items():
            module = modules[name]
            shared = SharedWeight(clustering, module.weight.dtype, module.weight.device)
            parametrize.register_parametrization(module, "weight", shared, unsafe=True)
            module.parametrizations.weight.original.requires_grad_(False)
            added[name] = shared
        yield added
    finally:
        for name in added:
            module = modules[name]
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            module.weight.requires_grad_(True)


def distinct_values(model: nn.Module, exclude: list[str] | None = None) -> dict[str, int]:
    """Distinct non-zero weight values per layer (what sharing bounds by 2^bits)."""
    out = {}
    for name, module in shareable_layers(model, list(exclude or [])).items():
        w = module.weight.detach().cpu().numpy()
        out[name] = int(np.unique(w[w != 0]).size)
    return out


def apply(model: nn.Module, params: Any, ctx: CompressionContext
          ) -> nn.Module | Generator[Event, None, nn.Module]:
    """The registered unit: cluster now; fine-tune the codebooks for the step's epochs."""
    was_masked = getattr(model, "kdgui_prune_state", None) == "masked"
    plan = None
    if getattr(params, "bits_budget", None) is not None:
        plan = _mixed_plan(model, params, ctx)
    clusters = cluster_model(model, params, plan)
    summary = ", ".join(f"{n} {b} bits ({c.clusters} values)" for n, (b, c) in clusters.items())
    ctx.log(f"weight sharing: {summary}")
    if was_masked:
        mark_masked(model)
    if ctx.epochs < 1:
        return model
    return _finetune(model, clusters, ctx)


def _mixed_plan(model: nn.Module, params: Any, ctx: CompressionContext) -> dict[str, int]:
    """Bits per layer from the per-layer sensitivity (:mod:`.mixed`); the measurement and the
    plan go into the stage's metrics as ``bit_plan`` (summary.json, the window, the CLI)."""
    from kdgui.engine.compress.share.mixed import mixed_precision_plan

    batches = list(ctx.calibration_batches(params.plan_samples, 256,
                                           what="the mixed-precision bit plan"))
    layers = shareable_layers(model, list(params.exclude))
    report = mixed_precision_plan(model, layers, params, batches)
    ctx.report["bit_plan"] = report
    drop = report["predicted_drop"]
    ctx.log("mixed precision: " + ", ".join(f"{n} {b} bits" for n, b in report["plan"].items())
            + f" (average {report['average_bits']:.2f} bits per non-zero weight, budget "
            f"{report['budget_bits']:g}; predicted output change {report['predicted_kl']:.4f} "
            "nats" + ("" if drop is None else f", accuracy drop {100 * drop:.2f} points")
            + f" on {report['samples']} training samples)")
    return report["plan"]


def _finetune(model: nn.Module, clusters: dict[str, tuple[int, Clustering]],
              ctx: CompressionContext) -> Generator[Event, None, nn.Module]:
    if ctx.finetune is None:
        raise CompressionError("weight sharing was asked to fine-tune, but no fine-tuning is "
                               "available", "Set finetune_epochs to 0, or run it in a session.")
    with shared_training(model, clusters):
        yield from ctx.finetune(model, ctx.epochs)
    ctx.trained = True
    ctx.log(f"weight sharing: fine-tuned the shared centroids for {ctx.epochs} epoch(s)")
    return model


__all__ = ["SharedWeight", "apply", "cluster_model", "distinct_values", "layer_bits",
           "shared_training"]
