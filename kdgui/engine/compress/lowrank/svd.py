"""Truncated SVD of Linear layers: ``W (out×in) ≈ (U_r Σ_r)(V_rᵀ)`` as two Linears of rank r.

Parameters go from ``in·out`` to ``r·(in + out)`` — a saving only when ``r < in·out/(in+out)``;
layers where it would not save are left whole (``skip_if_no_saving``) and named in the log. The
factor pair is an ``nn.Sequential(Linear(in, r, bias=False), Linear(r, out))`` carrying
``kdgui_rank = r``, so the model stays made of standard layers that every exporter handles.
"""

from __future__ import annotations

import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import (
    CompressionContext,
    check_layers_exist,
    output_layer_name,
)
from kdgui.engine.compress.lowrank.rank import check_rank, choose_rank


@torch.no_grad()
def factorize_linear(layer: nn.Linear, rank: int, name: str = "linear") -> nn.Sequential:
    """Two Linears whose product is the best rank-``rank`` approximation of ``layer``."""
    limit = min(layer.in_features, layer.out_features)
    check_rank(rank, limit, name)
    w = layer.weight.detach().double()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    first.weight.copy_((root[:, None] * vh[:rank]).to(layer.weight.dtype))
    second.weight.copy_((u[:, :rank] * root[None, :]).to(layer.weight.dtype))
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    pair = nn.Sequential(first, second).to(layer.weight.device)
    pair.kdgui_rank = rank
    return pair


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def targets(model: nn.Module, params: object, types: tuple[type, ...], what: str) -> list[str]:
    """Layers to decompose: the named ones, or every layer of ``types`` except the output."""
    if params.layers:
        check_layers_exist(model, list(params.layers), what)
        modules = dict(model.named_modules())
        wrong = [n for n in params.layers if not isinstance(modules[n], types)]
        if wrong:
            raise CompressionError(
                f"{what}: layer {wrong[0]!r} is a {type(modules[wrong[0]]).__name__}, not one of "
                f"{', '.join(t.__name__ for t in types)}",
                "List only layers of the types this method decomposes.",
            )
        return list(params.layers)
    out = output_layer_name(model)
    return [n for n, m in model.named_modules() if isinstance(m, types) and n != out]


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """Factorize the chosen Linear layers in place; logs params/MACs per layer."""
    names = targets(model, params, (nn.Linear,), "SVD")
    if not names:
        raise CompressionError(
            "SVD found no Linear layer to decompose (the output layer is kept by default)",
            "Name the layers to decompose in 'layers', or use the 'conv' decomposer.",
        )
    changed = 0
    for name in names:
        layer = model.get_submodule(name)
        limit = min(layer.in_features, layer.out_features)
        singular = torch.linalg.svdvals(layer.weight.detach().double())
        rank = choose_rank(singular, params, limit, name)
        before = layer.in_features * layer.out_features
        after = rank * (layer.in_features + layer.out_features)
        if after >= before and params.skip_if_no_saving:
            ctx.log(f"SVD: '{name}' left whole: rank {rank} would need {after:,} weights "
                    f"≥ {before:,}", "warning")
            continue
        replace_module(model, name, factorize_linear(layer, rank, name))
        changed += 1
        ctx.log(f"SVD: '{name}' rank {rank}/{limit}: weights and MACs per sample "
                f"{before:,} → {after:,} ({after / before:.2f}×)")
    if changed == 0:
        ctx.log("SVD changed no layer: no rank below the break-even point", "warning")
    return model
