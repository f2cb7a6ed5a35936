"""Self-attention maps of transformer layers, read by forward hooks.

Vision transformers do not return their attention probabilities (torchvision's ``EncoderBlock``
calls ``nn.MultiheadAttention`` with ``need_weights=False``; timm's ``Attention`` runs fused
``scaled_dot_product_attention``), so a hook on the attention module recomputes them from the
module's own input and weights: ``softmax(q kᵀ / sqrt(d))`` per head, with the module's
projections (and timm's optional q/k norms). The student's maps keep their graph, so a loss on
them trains the student's query and key projections.

A tap names such a map ``"<layer>@attention"`` (see :class:`kdgui.engine.distill.taps.FeatureTap`),
where ``<layer>`` is an attention module or a block containing one (its first).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The suffix of a tap name that reads a layer's attention probabilities.
ATTENTION = "@attention"


def is_attention(module: nn.Module) -> bool:
    """``nn.MultiheadAttention``, or a timm-style attention (a ``qkv`` linear and ``num_heads``)."""
    if isinstance(module, nn.MultiheadAttention):
        return True
    return isinstance(getattr(module, "qkv", None), nn.Linear) and hasattr(module, "num_heads")


def find_attention(module: nn.Module) -> nn.Module | None:
    """The module itself when it is an attention module, else its first attention submodule."""
    return next((m for m in module.modules() if is_attention(m)), None)


def _heads(q: Tensor, heads: int) -> Tensor:
    n, length, width = q.shape
    return q.reshape(n, length, heads, width // heads).transpose(1, 2)


def _mha(module: nn.MultiheadAttention, args: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
    query = args[0]
    key = args[1] if len(args) > 1 and isinstance(args[1], Tensor) else query
    if not module.batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    e = module.embed_dim
    if module._qkv_same_embed_dim:
        w_q, w_k = module.in_proj_weight[:e], module.in_proj_weight[e:2 * e]
    else:
        w_q, w_k = module.q_proj_weight, module.k_proj_weight
    bias = module.in_proj_bias
    b_q, b_k = (bias[:e], bias[e:2 * e]) if bias is not None else (None, None)
    heads = module.num_heads
    return _heads(F.linear(query, w_q, b_q), heads), _heads(F.linear(key, w_k, b_k), heads)


def _timm(module: nn.Module, args: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
    x = args[0]
    n, length, _ = x.shape
    heads = int(module.num_heads)
    qkv = module.qkv(x)
    qkv = qkv.reshape(n, length, 3, heads, qkv.shape[-1] // (3 * heads)).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    q_norm, k_norm = getattr(module, "q_norm", None), getattr(module, "k_norm", None)
    return (q_norm(q) if q_norm is not None else q), (k_norm(k) if k_norm is not None else k)


def attention_probs(module: nn.Module, args: tuple[Any, ...]) -> Tensor:
    """(N, heads, L_query, L_key) attention probabilities, float32, from the module's input."""
    q, k = _mha(module, args) if isinstance(module, nn.MultiheadAttention) else _timm(module, args)
    q, k = q.float(), k.float()
    scale = getattr(module, "scale", None)  # timm's head_dim ** -0.5
    scale = float(scale) if isinstance(scale, (int, float)) else 1.0 / math.sqrt(q.shape[-1])
    scores = (q * scale) @ k.transpose(-2, -1)
    return torch.softmax(scores, dim=-1)


__all__ = ["ATTENTION", "attention_probs", "find_attention", "is_attention"]
