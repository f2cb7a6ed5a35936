"""The student's fast path: its layout (and precision when set) chosen by timing forward +
backward on a copy (see :mod:`kdgui.engine.fast_path` for the rules and the teacher's choice).

The student keeps fp32 weights; under ``auto`` it also keeps fp32 arithmetic, since whether its
accuracy holds in a lower precision cannot be checked in a few batches.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from kdgui.core.config import TrainingConfig
from kdgui.engine import fast_path
from kdgui.engine.fast_path import FastChoice, Variant


def student_pass(model: nn.Module, x: Tensor, variant: Variant, device: torch.device) -> None:
    from kdgui.engine.distill.distiller import as_logits

    with fast_path.autocast(device, variant.precision):
        out = as_logits(model(fast_path.layout_input(x, variant.channels_last)))
    out.float().logsumexp(1).mean().backward()
    model.zero_grad(set_to_none=True)


def choose_student(
    student: nn.Module, batch: Tensor, cfg: TrainingConfig, device: torch.device,
    *, features: bool = False,
) -> FastChoice:
    """Pick the student's layout (and precision when set) by timing forward + backward on a copy,
    so the real student's batch-norm statistics and the run's random stream are untouched."""
    precision = "fp32" if cfg.student_precision == "auto" else cfg.student_precision
    cl = {"auto": [False, True], "on": [True], "off": [False]}[cfg.channels_last]
    why = fast_path.opaque_reason(student)
    if why is None and features:
        why = "feature/attention losses pair its layers as they are"
    if why is None and not (batch.dim() == 4 and fast_path.has_4d_weights(student)):
        cl = [False]
    if why is not None:
        return FastChoice("student", Variant(), why)
    candidates = [Variant(precision, c) for c in cl]
    settings = (cfg.student_precision, cfg.channels_last)
    choice = FastChoice("student", candidates[0], "set in the config" if "auto" not in settings
                        else "the only candidate (fp32 weights; no 2-D convolutions to lay out)")
    if len(candidates) == 1:
        return choice
    probe = copy.deepcopy(student).train()
    best: float | None = None
    deadline = fast_path.clock() + fast_path.BUDGET_S
    with fast_path.restore_rng(device):
        for variant in candidates:
            fast_path.set_channels_last(probe, variant.channels_last)
            ms = fast_path.time_passes(lambda v=variant: student_pass(probe, batch, v, device),
                                       device, best, deadline=deadline)
            if ms is None:
                choice.refused[variant.label] = "more than 3x slower than the best"
                continue
            choice.timings_ms[variant.label] = ms
            if best is None or ms < best:
                best, choice.variant = ms, variant
    choice.reason = f"fastest of {len(choice.timings_ms)} measured (auto; weights stay fp32)"
    return choice


__all__ = ["choose_student", "student_pass"]
