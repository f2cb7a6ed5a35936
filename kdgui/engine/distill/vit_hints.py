"""Hidden-state and attention-map hints between a ViT teacher and a ViT student.

The losses are TinyBERT's (Jiao et al. 2020) transformer-layer losses applied to vision
transformers, with its layer mapping:

* **Hidden states**: ``MSE(H_s W + b, H_t)`` between a student block's output tokens, through a
  learned linear adapter when the widths differ (TinyBERT's ``W_h``; the identity otherwise), and
  the paired teacher block's, averaged over tokens and channels.
* **Attention maps**: the paired blocks' self-attention probabilities, compared as distributions
  with ``KL(A_t ‖ A_s)`` per query row (MiniLM, Wang et al. 2020; TinyBERT's MSE on unnormalised
  scores has no meaning once token grids are resampled), averaged over rows, heads and samples.
  When the head counts differ, each side's maps are averaged over its heads first.
* **Layer mapping**: without pairs, student block m (1-based, of M) learns from teacher block
  ``m·N/M`` (of N): ``uniform``; ``last`` pairs the last blocks only. With a deeper student, the
  roles swap (each teacher block teaches one student block).

Token counts may differ (different patch sizes, or image sizes when a model resizes its input):
each model's tokens are its *prefix* tokens (class token; DeiT's distillation token) followed by
a patch grid, read from the model (torchvision's ``class_token``/``image_size``/``patch_size``,
timm's ``num_prefix_tokens``/``patch_embed.grid_size``) or, failing that, inferred from the
token count as prefix + a square grid. Prefix tokens are compared one to one as far as both have
them (a DeiT teacher's distillation token is dropped for a student with only a class token).
Hidden patch tokens of the student are resized to the teacher's grid (average-pooled down,
bilinearly interpolated up, as FitNets hints here); attention maps are brought to the smaller
grid on both axes by average pooling, and each row renormalised to sum to 1. Everything is
computed in float32; the teacher's side is detached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgui.core.components.distill import ViTHintParams
from kdgui.core.errors import ConfigError
from kdgui.engine.distill.attention_probs import ATTENTION, find_attention, is_attention
from kdgui.engine.distill.losses import resize_map
from kdgui.engine.distill.pairing import Pair, TermSetup
from kdgui.engine.distill.taps import Shape, probe_shapes

#: Probabilities are clamped at this before the logarithm of the attention KL.
KL_EPS = 1e-8
#: At most this many prefix tokens are inferred from a token count alone.
MAX_PREFIX = 8


@dataclass(frozen=True)
class TokenLayout:
    """``prefix`` tokens (class, distillation) followed by a ``grid`` of patch tokens."""

    prefix: int
    grid: tuple[int, int]

    @property
    def length(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]


def token_layout(model: nn.Module, length: int) -> TokenLayout:
    """The layout of a block's ``length`` tokens: from the model's attributes, else inferred."""
    prefix = getattr(model, "num_prefix_tokens", None)  # timm
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if prefix is None and hasattr(model, "class_token"):  # torchvision VisionTransformer
        prefix = 1
        size, patch = getattr(model, "image_size", None), getattr(model, "patch_size", None)
        if isinstance(size, int) and isinstance(patch, int) and patch > 0:
            grid = (size // patch, size // patch)
    if prefix is not None and grid is not None:
        layout = TokenLayout(int(prefix), (int(grid[0]), int(grid[1])))
        if layout.length == length:
            return layout
    candidates = [int(prefix)] if prefix is not None else range(MAX_PREFIX + 1)
    for p in candidates:
        side = math.isqrt(max(length - p, 0))
        if side > 0 and p + side * side == length:
            return TokenLayout(p, (side, side))
    raise ConfigError(
        f"cannot read {length} tokens of a {type(model).__name__} as class tokens and a "
        "square patch grid",
        "Pair the blocks of vision transformers (torchvision VisionTransformer, timm ViT/DeiT).")


def _blocks(model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str | None,
            ) -> tuple[list[tuple[str, Shape]], dict[str, Shape]]:
    """Transformer blocks in forward order (an attention module among their children, called
    once, output ``(tokens, width)``) and every layer's probed output shape."""
    shapes, calls = probe_shapes(model, input_shape, device)
    modules = dict(model.named_modules())
    blocks = [(name, shape) for name, shape in shapes.items()
              if len(shape) == 2 and calls.get(name, 0) == 1
              and any(is_attention(c) for c in modules[name].children())]
    return blocks, shapes


def map_blocks(teacher: Sequence[str], student: Sequence[str], mapping: str) -> list[Pair]:
    """TinyBERT's uniform mapping (student block m ↔ teacher block m·N/M), or the last blocks."""
    if not teacher or not student:
        return []
    if mapping == "last":
        return [(teacher[-1], student[-1])]
    n, m = len(teacher), len(student)
    k = min(n, m)
    return [(teacher[j * n // k - 1], student[j * m // k - 1]) for j in range(1, k + 1)]


def _describe(blocks: Sequence[tuple[str, Shape]]) -> str:
    return ", ".join(f"{name} {tuple(shape)}" for name, shape in blocks[:24]) or "none"


def resolve_blocks(params: ViTHintParams, setup: TermSetup,
                   ) -> tuple[list[Pair], dict[str, Shape], dict[str, Shape]]:
    """The term's block pairs (validated, or mapped by depth) and both models' probed shapes."""
    t_blocks, t_shapes = _blocks(setup.teacher, setup.input_shape, setup.device)
    s_blocks, s_shapes = _blocks(setup.student, setup.input_shape, setup.device)
    attention = params.which != "hidden"
    if not setup.pairs:
        pairs = map_blocks([n for n, _ in t_blocks], [n for n, _ in s_blocks], params.mapping)
        if not pairs:
            raise ConfigError(
                f"{setup.field}: no transformer blocks to pair (teacher: {_describe(t_blocks)}; "
                f"student: {_describe(s_blocks)})",
                "Use a ViT teacher and student (torchvision VisionTransformer, timm ViT/DeiT), "
                "or name their blocks in the term's pairs.")
        return pairs, t_shapes, s_shapes
    pairs = []
    for pair in setup.pairs:
        t_name, s_name = (str(p) for p in pair)
        for role, name, model, shapes, blocks in (
                ("teacher", t_name, setup.teacher, t_shapes, t_blocks),
                ("student", s_name, setup.student, s_shapes, s_blocks)):
            module = dict(model.named_modules()).get(name)
            if module is None or len(shapes.get(name, ())) != 2 or (
                    attention and find_attention(module) is None):
                raise ConfigError(
                    f"{setup.field}: the {role}'s layer '{name}' is not a transformer block "
                    "(tokens × width" + (" with an attention layer)" if attention else ")"),
                    f"Use one of the {role}'s blocks: {_describe(blocks)}.")
        pairs.append((t_name, s_name))
    return pairs, t_shapes, s_shapes


def _patch_grid(tokens: Tensor, layout: TokenLayout) -> Tensor:
    """(N, L, D) → the patch tokens as an (N, D, H, W) map."""
    patches = tokens[:, layout.prefix:layout.length]
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *layout.grid)


def hidden_mse(s: Tensor, t: Tensor, s_layout: TokenLayout, t_layout: TokenLayout) -> Tensor:
    """MSE of (adapted) student tokens against the teacher's, on the teacher's token grid."""
    p = min(s_layout.prefix, t_layout.prefix)
    s_patch = resize_map(_patch_grid(s.float(), s_layout), t_layout.grid).flatten(2).transpose(1, 2)
    t = t.detach().float()
    s_all = torch.cat([s[:, :p].float(), s_patch], dim=1)
    t_all = torch.cat([t[:, :p], t[:, t_layout.prefix:t_layout.length]], dim=1)
    return F.mse_loss(s_all, t_all)


def _pool_axis(a: Tensor, layout: TokenLayout, prefix: int, grid: tuple[int, int]) -> Tensor:
    """Along the last axis: the first ``prefix`` tokens, then the patch tokens pooled to ``grid``."""
    patches = a[..., layout.prefix:layout.length]
    if layout.grid != grid:
        lead = patches.shape[:-1]
        pooled = F.adaptive_avg_pool2d(patches.reshape(-1, 1, *layout.grid), grid)
        patches = pooled.reshape(*lead, grid[0] * grid[1])
    return torch.cat([a[..., :prefix], patches], dim=-1)


def common_attention(a: Tensor, layout: TokenLayout, prefix: int,
                     grid: tuple[int, int]) -> Tensor:
    """(N, H, L, L) probabilities on ``prefix`` tokens + ``grid``; rows renormalised to 1."""
    a = _pool_axis(a.float(), layout, prefix, grid)  # keys
    a = a / a.sum(dim=-1, keepdim=True).clamp_min(KL_EPS)
    return _pool_axis(a.transpose(-1, -2), layout, prefix, grid).transpose(-1, -2)  # queries


def attention_kl(a_s: Tensor, a_t: Tensor, s_layout: TokenLayout,
                 t_layout: TokenLayout) -> Tensor:
    """``mean KL(A_t ‖ A_s)`` over samples, heads and query rows, on the common token grid."""
    a_t = a_t.detach()
    if a_s.shape[1] != a_t.shape[1]:
        a_s, a_t = a_s.mean(dim=1, keepdim=True), a_t.mean(dim=1, keepdim=True)
    prefix = min(s_layout.prefix, t_layout.prefix)
    grid = (min(s_layout.grid[0], t_layout.grid[0]), min(s_layout.grid[1], t_layout.grid[1]))
    q_s = common_attention(a_s, s_layout, prefix, grid)
    q_t = common_attention(a_t, t_layout, prefix, grid)
    kl = q_t * (q_t.clamp_min(KL_EPS).log() - q_s.clamp_min(KL_EPS).log())
    return kl.sum(dim=-1).mean()


class ViTHintLoss(nn.Module):
    """``mean_pairs [w_h · hidden MSE + w_a · attention KL]`` over the paired blocks."""

    def __init__(self, params: ViTHintParams, pairs: Sequence[Pair],
                 widths: Sequence[tuple[int, int]],
                 layouts: Sequence[tuple[TokenLayout, TokenLayout]]) -> None:
        super().__init__()
        self.params = params
        self.pairs = list(pairs)
        self.layouts = list(layouts)
        self.hidden = params.which in ("hidden", "both")
        self.attention = params.which in ("attention", "both")
        self.adapters = nn.ModuleList(
            nn.Linear(w_s, w_t) if w_s != w_t else nn.Identity() for w_s, w_t in widths
        ) if self.hidden else nn.ModuleList()
        #: What the taps collect: block outputs, then the blocks' attention maps.
        self.tap_pairs = (self.pairs if self.hidden else []) + (
            [(t + ATTENTION, s + ATTENTION) for t, s in self.pairs] if self.attention else [])

    @classmethod
    def build(cls, params: ViTHintParams, setup: TermSetup) -> ViTHintLoss:
        pairs, t_shapes, s_shapes = resolve_blocks(params, setup)
        widths = [(int(s_shapes[s][1]), int(t_shapes[t][1])) for t, s in pairs]
        layouts = [(token_layout(setup.student, int(s_shapes[s][0])),
                    token_layout(setup.teacher, int(t_shapes[t][0]))) for t, s in pairs]
        return cls(params, pairs, widths, layouts)

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        n = len(self.pairs)
        if len(student_feats) != len(self.tap_pairs) or len(teacher_feats) != len(student_feats):
            raise ValueError(f"ViTHintLoss expects {len(self.tap_pairs)} student and teacher "
                             f"outputs, got {len(student_feats)} and {len(teacher_feats)}")
        device = student_feats[0].device
        with torch.autocast(device.type, enabled=False):  # fp16 adapters overflow on big tokens
            return self._total(student_feats, teacher_feats, n, device)

    def _total(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor], n: int,
               device: torch.device) -> Tensor:
        total = torch.zeros((), device=device)
        offset = 0
        if self.hidden:
            for j in range(n):
                s = self.adapters[j](student_feats[j].float())
                total = total + self.params.hidden_weight * hidden_mse(
                    s, teacher_feats[j], *self.layouts[j])
            offset = n
        if self.attention:
            for j in range(n):
                total = total + self.params.attention_weight * attention_kl(
                    student_feats[offset + j], teacher_feats[offset + j], *self.layouts[j])
        return total / n


__all__ = ["TokenLayout", "ViTHintLoss", "attention_kl", "common_attention", "hidden_mse",
           "map_blocks", "resolve_blocks", "token_layout"]
