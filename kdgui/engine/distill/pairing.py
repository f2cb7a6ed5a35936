"""Which teacher layer teaches which student layer.

Automatic pairing follows the structure both networks share even when their widths and depths
differ: a CNN is a series of *stages*, each working at one spatial resolution, and the end of a
stage is where FitNets hints and attention maps are taken (Zagoruyko & Komodakis take the end of
each residual group). So each network's stage ends are the last layer (in forward order) of each
run of equal spatial size, and they are matched:

1. by equal spatial size when the two networks share resolutions (the usual case: same input,
   same downsampling schedule);
2. otherwise in order from the deepest stage backwards, as many as the shallower network has.

Pairs the user gives are validated against the probe so that a typo is a :class:`ConfigError`
that lists the candidate layers with their shapes, not a ``KeyError`` deep inside a training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from kdgui.core.errors import ConfigError
from kdgui.engine.distill.taps import Shape, candidate_layers, feature_maps, probe_shapes

#: The shape rule of a pair: FitNets adapters (maps with maps, vectors with vectors), attention
#: (maps only) or any (relation losses compare samples, so any two shapes go).
Kind = Literal["feature", "attention", "any"]
Pair = tuple[str, str]


def stage_ends(candidates: Sequence[tuple[str, Shape]]) -> list[tuple[str, Shape]]:
    """The last candidate of each run of equal spatial size, in forward order."""
    ends: list[tuple[str, Shape]] = []
    for name, shape in candidates:
        if ends and ends[-1][1][1:] == shape[1:]:
            ends[-1] = (name, shape)
        else:
            ends.append((name, shape))
    return ends


def match_stages(
    teacher_ends: Sequence[tuple[str, Shape]], student_ends: Sequence[tuple[str, Shape]]
) -> list[Pair]:
    """Pair stage ends by equal spatial size, else in order from the deepest stage backwards."""
    by_size = {shape[1:]: name for name, shape in student_ends}
    same_size = [(t, by_size[shape[1:]]) for t, shape in teacher_ends if shape[1:] in by_size]
    if same_size:
        return same_size
    k = min(len(teacher_ends), len(student_ends))
    if k == 0:
        return []
    return [(t, s) for (t, _), (s, _) in zip(teacher_ends[-k:], student_ends[-k:], strict=True)]


def _describe(candidates: Sequence[tuple[str, Shape]]) -> str:
    shown = [f"{name} {tuple(shape)}" for name, shape in candidates[:40]]
    more = f" … ({len(candidates) - 40} more)" if len(candidates) > 40 else ""
    return ", ".join(shown) + more if shown else "none"


def validate_pairs(
    pairs: Sequence[Sequence[str]],
    teacher_shapes: dict[str, Shape],
    student_shapes: dict[str, Shape],
    teacher_candidates: Sequence[tuple[str, Shape]],
    student_candidates: Sequence[tuple[str, Shape]],
    kind: Kind,
    field: str | None = None,
) -> list[Pair]:
    """Check user pairs against the probed output shapes; errors list the candidate layers.

    Attention needs 4-D feature maps on both sides; feature hints also accept two vectors
    (a linear adapter maps one onto the other) but not a map against a vector.
    """
    field = field or f"distill.{kind}.pairs"
    checked: list[Pair] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ConfigError(
                f"{field} entry {list(pair)!r} is not a (teacher layer, student layer) pair",
                "Give each pair as two layer names, e.g. ['layer2', 'features.4'].",
            )
        t_name, s_name = str(pair[0]), str(pair[1])
        for role, name, shapes, cands in (
            ("teacher", t_name, teacher_shapes, teacher_candidates),
            ("student", s_name, student_shapes, student_candidates),
        ):
            if name not in shapes:
                raise ConfigError(
                    f"{field}: the {role} has no layer '{name}' that outputs a tensor",
                    f"Use one of the {role}'s feature layers: {_describe(cands)}.",
                )
            if kind == "attention" and len(shapes[name]) != 3:
                raise ConfigError(
                    f"{field}: {role} layer '{name}' outputs shape {shapes[name]}, "
                    "not a feature map (C, H, W)",
                    f"Attention transfer needs feature maps; use one of: {_describe(cands)}.",
                )
        t_shape, s_shape = teacher_shapes[t_name], student_shapes[s_name]
        if kind == "feature" and (len(t_shape) != len(s_shape) or len(t_shape) not in (1, 3)):
            raise ConfigError(
                f"{field}: teacher layer '{t_name}' {t_shape} and student layer '{s_name}' "
                f"{s_shape} cannot be compared",
                "Pair two feature maps (C, H, W) or two feature vectors (C,).",
            )
        checked.append((t_name, s_name))
    return checked


def resolve_pairs(
    teacher: nn.Module,
    student: nn.Module,
    input_shape: tuple[int, ...],
    kind: Kind,
    pairs: Sequence[Sequence[str]] | None = None,
    device: torch.device | str | None = None,
    field: str | None = None,
) -> tuple[list[Pair], dict[str, Shape], dict[str, Shape]]:
    """Validated user pairs, or automatic ones, plus every layer's probed output shape.

    ``field`` names the config field in errors (default ``distill.KIND.pairs``)."""
    t_shapes, t_calls = probe_shapes(teacher, input_shape, device)
    s_shapes, s_calls = probe_shapes(student, input_shape, device)
    t_cands = feature_maps(t_shapes, t_calls)
    s_cands = feature_maps(s_shapes, s_calls)
    if pairs:
        chosen = validate_pairs(pairs, t_shapes, s_shapes, t_cands, s_cands, kind, field)
    else:
        chosen = match_stages(stage_ends(t_cands), stage_ends(s_cands))
        if not chosen:
            where = field or f"distill.{kind}.pairs"
            raise ConfigError(
                f"{where}: no feature maps to pair automatically "
                f"(teacher: {_describe(t_cands)}; student: {_describe(s_cands)})",
                f"Name the layers in {where}, or set the term's weight to 0.",
            )
    return chosen, t_shapes, s_shapes


def auto_pairs(
    teacher: nn.Module,
    student: nn.Module,
    input_shape: tuple[int, ...],
    kind: Kind = "feature",
    device: torch.device | str | None = None,
) -> list[Pair]:
    """Pair the teacher's and the student's stage ends (see the module docstring)."""
    pairs, _, _ = resolve_pairs(teacher, student, input_shape, kind, None, device)
    return pairs


@dataclass
class TermSetup:
    """What the distiller tells a loss that builds itself (``impl.build(params, setup)``): both
    networks, one sample's shape, the term's own ``pairs`` (None: automatic), the device, the
    config field to name in errors, and ``num_samples``, the training set's size (given when the
    loss reads sample indices; None when the caller did not say)."""

    teacher: nn.Module
    student: nn.Module
    input_shape: tuple[int, ...]
    pairs: Sequence[Sequence[str]] | None
    device: torch.device | str | None
    field: str
    num_samples: int | None = None

    def resolve(
        self, kind: Kind, *, deepest_only: bool = False
    ) -> tuple[list[Pair], dict[str, Shape], dict[str, Shape]]:
        """:func:`resolve_pairs` for this term; ``deepest_only`` keeps only the deepest automatic
        pair (a loss that, like CRD, distils the penultimate features)."""
        pairs, t_shapes, s_shapes = resolve_pairs(self.teacher, self.student, self.input_shape,
                                                  kind, self.pairs, self.device, self.field)
        if deepest_only and not self.pairs:
            pairs = pairs[-1:]
        return pairs, t_shapes, s_shapes


__all__ = [
    "TermSetup",
    "auto_pairs",
    "candidate_layers",
    "match_stages",
    "resolve_pairs",
    "stage_ends",
    "validate_pairs",
]
