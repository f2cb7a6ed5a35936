"""Convolution decompositions: SVD of the reshaped kernel, or Tucker-2 (HOSVD).

* ``svd``: the kernel ``W (O, I, kh, kw)`` reshaped to ``(O, I·kh·kw)`` is truncated to rank r and
  becomes a ``kh×kw`` convolution ``I → r`` (same stride/padding/dilation) followed by a ``1×1``
  convolution ``r → O`` with the bias. Limit ``min(O, I·kh·kw)``.
* ``tucker2``: ``W ≈ G ×₁ U_O ×₂ U_I`` with factor matrices from the SVDs of the two channel
  unfoldings (HOSVD) — a ``1×1`` conv ``I → r_in``, the core ``kh×kw`` conv ``r_in → r_out`` and a
  ``1×1`` conv ``r_out → O``. The same rank rule gives ``r_out`` (limit O) and ``r_in`` (limit I).
Grouped and depthwise convolutions are skipped (already cheap, and their kernels are per-group).
"""

from __future__ import annotations

import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import CompressionContext
from kdgui.engine.compress.lowrank.rank import check_rank, choose_rank
from kdgui.engine.compress.lowrank.svd import replace_module, targets


def _conv(src: nn.Conv2d, cin: int, cout: int, kernel: bool, bias: bool) -> nn.Conv2d:
    if kernel:
        return nn.Conv2d(cin, cout, src.kernel_size, src.stride, src.padding, src.dilation,
                         bias=bias, padding_mode=src.padding_mode)
    return nn.Conv2d(cin, cout, 1, bias=bias)


@torch.no_grad()
def svd_conv(conv: nn.Conv2d, rank: int, name: str = "conv") -> nn.Sequential:
    """``conv`` as a k×k conv to ``rank`` channels and a 1×1 conv back to its outputs."""
    o, i, kh, kw = conv.weight.shape
    check_rank(rank, min(o, i * kh * kw), name)
    u, s, vh = torch.linalg.svd(conv.weight.detach().double().reshape(o, -1), full_matrices=False)
    root = s[:rank].sqrt()
    first = _conv(conv, i, rank, True, False)
    second = _conv(conv, rank, o, False, conv.bias is not None)
    first.weight.copy_((root[:, None] * vh[:rank]).reshape(rank, i, kh, kw))
    second.weight.copy_((u[:, :rank] * root[None, :]).reshape(o, rank, 1, 1))
    if conv.bias is not None:
        second.bias.copy_(conv.bias)
    pair = nn.Sequential(first, second).to(conv.weight.device)
    pair.kdgui_rank = rank
    return pair


@torch.no_grad()
def tucker2_conv(conv: nn.Conv2d, rank_out: int, rank_in: int, name: str = "conv") -> nn.Sequential:
    """``conv`` as 1×1 (I→r_in), k×k core (r_in→r_out), 1×1 (r_out→O) convolutions."""
    o, i, _kh, _kw = conv.weight.shape
    check_rank(rank_out, o, f"{name} (output channels)")
    check_rank(rank_in, i, f"{name} (input channels)")
    w = conv.weight.detach().double()
    u_out = torch.linalg.svd(w.reshape(o, -1), full_matrices=False)[0][:, :rank_out]
    u_in = torch.linalg.svd(w.transpose(0, 1).reshape(i, -1), full_matrices=False)[0][:, :rank_in]
    core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)
    first = _conv(conv, i, rank_in, False, False)
    middle = _conv(conv, rank_in, rank_out, True, False)
    last = _conv(conv, rank_out, o, False, conv.bias is not None)
    first.weight.copy_(u_in.t().reshape(rank_in, i, 1, 1))
    middle.weight.copy_(core)
    last.weight.copy_(u_out.reshape(o, rank_out, 1, 1))
    if conv.bias is not None:
        last.bias.copy_(conv.bias)
    triple = nn.Sequential(first, middle, last).to(conv.weight.device)
    triple.kdgui_rank = (rank_out, rank_in)
    return triple


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """Decompose the chosen ungrouped Conv2d layers in place; logs params per layer."""
    names = [
        n for n in targets(model, params, (nn.Conv2d,), "conv decomposition")
        if model.get_submodule(n).groups == 1
    ]
    if not names:
        raise CompressionError(
            "conv decomposition found no ungrouped Conv2d layer to decompose",
            "Name the layers in 'layers', or use the 'svd' decomposer for Linear layers.",
        )
    for name in names:
        conv = model.get_submodule(name)
        o, i, kh, kw = conv.weight.shape
        before = o * i * kh * kw
        w = conv.weight.detach().double()
        if params.decomposition == "svd":
            limit = min(o, i * kh * kw)
            rank = choose_rank(torch.linalg.svdvals(w.reshape(o, -1)), params, limit, name)
            after = rank * (i * kh * kw + o)
            new = lambda c=conv, r=rank, n=name: svd_conv(c, r, n)  # noqa: E731
            label = f"rank {rank}/{limit}"
        else:
            r_out = choose_rank(torch.linalg.svdvals(w.reshape(o, -1)), params, o, name)
            r_in = choose_rank(torch.linalg.svdvals(w.transpose(0, 1).reshape(i, -1)),
                               params, i, name)
            after = i * r_in + r_in * r_out * kh * kw + r_out * o
            new = lambda c=conv, a=r_out, b=r_in, n=name: tucker2_conv(c, a, b, n)  # noqa: E731
            label = f"ranks out {r_out}/{o}, in {r_in}/{i}"
        if after >= before and params.skip_if_no_saving:
            ctx.log(f"conv {params.decomposition}: '{name}' left whole ({label} needs "
                    f"{after:,} ≥ {before:,} weights)", "warning")
            continue
        replace_module(model, name, new())
        ctx.log(f"conv {params.decomposition}: '{name}' {label}: weights {before:,} → "
                f"{after:,} ({after / before:.2f}×; MACs per output pixel scale alike)")
    return model
