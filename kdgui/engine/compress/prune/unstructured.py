"""Unstructured magnitude pruning: one-shot or gradual (Zhu & Gupta), layer-wise or global.

How masks are kept — our own masks, not ``torch.nn.utils.prune``: the pruned weights are set to
zero *in place* and the boolean masks live in a :class:`MaskSet` held by the pruner, not in the
model. ``torch.nn.utils.prune`` instead renames ``weight`` to ``weight_orig`` + a ``weight_mask``
buffer and recomputes the weight in a forward pre-hook; such a model's state_dict no longer loads
into its architecture, and quantization and export then need ``prune.remove`` first. With our
choice the model stays a plain model at every moment (``prune_state = "masked"`` means "zeros kept
in dense tensors"), and the zeros themselves *are* the persistent state: :func:`masks_from_zeros`
recovers the masks after a reload. During training a :class:`MaskKeeper` re-applies the masks in a
forward pre-hook, so an optimizer step that nudges a pruned weight never reaches a forward pass;
the last re-application happens when the keeper closes.

Dense CPU kernels multiply zeros as fast as any other number, so this pruning shrinks the
zip-compressed file but not the latency; the pipeline measures and says so.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Generator, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.core.events import Event
from kdgui.engine.compress.context import CompressionContext, check_layers_exist
from kdgui.engine.compress.prune.schedule import cubic_sparsity, schedule_points

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

MaskSet = dict[str, torch.Tensor]
"""Layer name → boolean mask of its weight (True = kept)."""


def prunable_layers(model: nn.Module, exclude: list[str] | None = None) -> dict[str, nn.Module]:
    """Linear and convolution layers whose weights magnitude pruning may zero."""
    skip = set(exclude or ())
    return {
        name: m for name, m in model.named_modules()
        if isinstance(m, PRUNABLE) and name not in skip
    }


def check_sparsity(sparsity: float, what: str = "sparsity") -> None:
    if not (0.0 <= sparsity < 1.0):
        raise CompressionError(
            f"{what} = {sparsity!r} is outside [0, 1)",
            "Give the fraction of weights to zero, e.g. 0.9 for 90%; 1.0 would remove every "
            "weight.",
        )


def _keep_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``(1 - sparsity)`` share of largest scores; exact count, ties broken by index."""
    n = scores.numel()
    k = round(sparsity * n)
    mask = torch.ones(n, dtype=torch.bool, device=scores.device)
    if k > 0:
        mask[torch.argsort(scores.flatten(), stable=True)[:k]] = False
    return mask.view_as(scores)


def magnitude_masks(layers: dict[str, nn.Module], sparsity: float, scope: str) -> MaskSet:
    """Masks zeroing the smallest |w|: per layer, or ranked across all ``layers`` at once."""
    check_sparsity(sparsity)
    if scope == "layer":
        return {n: _keep_mask(m.weight.detach().abs(), sparsity) for n, m in layers.items()}
    if scope != "global":
        raise CompressionError(f"pruning scope '{scope}' is unknown", "Use 'layer' or 'global'.")
    flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
    keep = _keep_mask(flat, sparsity)
    masks, offset = {}, 0
    for name, m in layers.items():
        size = m.weight.numel()
        masks[name] = keep[offset:offset + size].view_as(m.weight)
        offset += size
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: MaskSet) -> None:
    """Zero the pruned weights in place."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        modules[name].weight.mul_(mask.to(modules[name].weight.dtype))


def masks_from_zeros(model: nn.Module, exclude: list[str] | None = None) -> MaskSet:
    """Masks of a masked-pruned model recovered from its zero weights (e.g. after a reload)."""
    return {n: m.weight.detach() != 0 for n, m in prunable_layers(model, exclude).items()}


def mark_masked(model: nn.Module) -> None:
    """Record the prune state for reports: zeros kept in dense tensors."""
    if getattr(model, "kdgui_prune_state", None) != "removed":
        model.kdgui_prune_state = "masked"


class MaskKeeper:
    """Keeps pruned weights at zero while a model trains (forward pre-hooks, removed on close)."""

    def __init__(self, model: nn.Module, masks: MaskSet) -> None:
        self.model = model
        self.masks = masks
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def open(self) -> MaskKeeper:
        modules = dict(self.model.named_modules())
        for name in self.masks:
            self._handles.append(modules[name].register_forward_pre_hook(self._hook(name)))
        apply_masks(self.model, self.masks)
        return self

    def _hook(self, name: str):
        def hook(module: nn.Module, _inputs: tuple) -> None:
            with torch.no_grad():
                module.weight.mul_(self.masks[name].to(module.weight.dtype))
        return hook

    def reapply(self, _step: int | None = None) -> None:
        """Zero the pruned weights again (after an optimizer step moved them)."""
        apply_masks(self.model, self.masks)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        apply_masks(self.model, self.masks)

    def __enter__(self) -> MaskKeeper:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class GradualPruner:
    """Raises sparsity from ``s_i`` to ``s_f`` along the cubic schedule while a model trains.

    The trainer calls :meth:`step` with the global step ``t`` after each optimizer step (masks are
    recomputed every Δt steps inside the schedule and re-applied every call), or — when the
    training loop cannot be changed, as with the session's ``finetune`` callable — :meth:`attach`
    counts training-mode forward passes of the model and steps itself before each one.
    Masks are monotone: weights already at zero have the smallest magnitude and stay pruned.
    """

    def __init__(self, model: nn.Module, params: object, total_steps: int) -> None:
        self.model = model
        self.params = params
        check_sparsity(params.sparsity)
        check_sparsity(params.initial_sparsity, "initial_sparsity")
        check_layers_exist(model, list(params.exclude), "magnitude pruning")
        self.layers = prunable_layers(model, list(params.exclude))
        if not self.layers:
            raise CompressionError(
                "magnitude pruning found no Linear or convolution layer to prune",
                "Check the model and the 'exclude' list.",
            )
        self.total_steps = max(1, int(total_steps))
        self.t0, self.n, self.dt = schedule_points(
            self.total_steps, params.start_fraction, params.end_fraction, params.frequency
        )
        self.masks: MaskSet = {}
        self.current_sparsity = 0.0
        self._t = 0
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self.update(params.initial_sparsity)

    def target(self, t: int) -> float:
        p = self.params
        return cubic_sparsity(t, p.initial_sparsity, p.sparsity, self.t0, self.n, self.dt)

    def update(self, sparsity: float) -> None:
        self.masks = magnitude_masks(self.layers, sparsity, self.params.scope)
        self.current_sparsity = sparsity
        apply_masks(self.model, self.masks)

    def step(self, t: int) -> float:
        """Advance to step ``t``: update masks on schedule points, re-apply masks always."""
        end = self.t0 + self.n * self.dt
        if t > self.t0 and ((t - self.t0) % self.dt == 0 or t >= end):
            target = self.target(t)
            if target > self.current_sparsity + 1e-9:
                self.update(target)
                return self.current_sparsity
        apply_masks(self.model, self.masks)
        return self.current_sparsity

    def attach(self) -> GradualPruner:
        """Step automatically before every training-mode forward pass of the model."""
        def hook(module: nn.Module, _inputs: tuple) -> None:
            if module.training and torch.is_grad_enabled():
                self._t += 1
                self.step(self._t)
        self._handle = self.model.register_forward_pre_hook(hook)
        return self

    def detach(self) -> None:
        """Remove the hook and reach the final sparsity (in case training ended early)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.current_sparsity < self.params.sparsity - 1e-9:
            self.update(self.params.sparsity)
        apply_masks(self.model, self.masks)


@contextmanager
def keep_masks(model: nn.Module) -> Iterator[MaskKeeper | None]:
    """Keep a masked model's zeros during training (no-op unless ``prune_state == 'masked'``).

    Yields the keeper (or None): a trainer that can call back after each optimizer step should
    call :meth:`MaskKeeper.reapply` there, so the weights are zero between steps too (what the
    run's per-step sparsity reports), not only inside forward passes.
    """
    if getattr(model, "kdgui_prune_state", None) != "masked":
        yield None
        return
    with MaskKeeper(model, masks_from_zeros(model)) as keeper:
        yield keeper


def prune_oneshot(model: nn.Module, params: object) -> nn.Module:
    """Zero ``params.sparsity`` of the weights now (in place) and mark the model masked."""
    check_sparsity(params.sparsity)
    check_layers_exist(model, list(params.exclude), "magnitude pruning")
    layers = prunable_layers(model, list(params.exclude))
    if not layers:
        raise CompressionError(
            "magnitude pruning found no Linear or convolution layer to prune",
            "Check the model and the 'exclude' list.",
        )
    apply_masks(model, magnitude_masks(layers, params.sparsity, params.scope))
    mark_masked(model)
    return model


def apply(
    model: nn.Module, params: object, ctx: CompressionContext
) -> nn.Module | Generator[Event, None, nn.Module]:
    """The registered unit: one-shot pruning, or gradual pruning spanning the step's fine-tuning."""
    if params.schedule == "oneshot":
        return prune_oneshot(model, params)
    return _gradual(model, params, ctx)


def _gradual(
    model: nn.Module, params: object, ctx: CompressionContext
) -> Generator[Event, None, nn.Module]:
    if ctx.finetune is None or ctx.epochs < 1:
        raise CompressionError(
            "gradual magnitude pruning needs fine-tuning epochs, but the step has none",
            "Set finetune_epochs ≥ 1 on the step (CLI: --gradual --finetune-epochs N), or use "
            "schedule 'oneshot'.",
        )
    steps_per_epoch = ctx.steps_per_epoch
    if not steps_per_epoch:
        size = len(ctx.calibration) if ctx.calibration is not None else 0  # type: ignore[arg-type]
        steps_per_epoch = max(1, math.ceil(size / 64))
        ctx.log(
            f"gradual pruning: steps per epoch not given, assuming {steps_per_epoch} "
            "(batch 64); the final sparsity is enforced at the end either way", "warning"
        )
    total = ctx.epochs * steps_per_epoch
    pruner = GradualPruner(model, params, total)
    ctx.log(
        f"gradual pruning {params.initial_sparsity:.0%} → {params.sparsity:.0%} over {total} "
        f"steps (t0={pruner.t0}, n={pruner.n}, Δt={pruner.dt})"
    )
    if "on_step" in inspect.signature(ctx.finetune).parameters:
        # the trainer calls on_step after each optimizer step: masks follow every update
        counter = itertools.count(1)
        keeper = MaskKeeper(model, pruner.masks).open()  # zeros kept in forward passes too

        def on_step(_t: int) -> None:
            pruner.step(next(counter))
            keeper.masks = pruner.masks

        try:
            yield from ctx.finetune(model, ctx.epochs, on_step=on_step)
        finally:
            keeper.close()
            pruner.detach()
    else:
        pruner.attach()
        try:
            yield from ctx.finetune(model, ctx.epochs)
        finally:
            pruner.detach()
    ctx.trained = True
    mark_masked(model)
    return model
