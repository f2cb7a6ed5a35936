"""Structured channel pruning that physically removes channels (Torch-Pruning 1.6.1).

Torch-Pruning traces the model once and builds a dependency graph: removing output channel *c*
of a convolution also removes input channel *c* of every consumer, the matching BatchNorm entry,
the same channel of every tensor added to it in a residual sum, the slice of a concatenation and
the whole group of a depthwise convolution. Hand-rolled channel surgery gets exactly these cases
wrong, so we rely on the library and only choose the importance, the ratio and the layers kept.
The result is a new, smaller architecture (``prune_state = "removed"``); each pruned layer gets
``kdgui_removed_channels`` for the reports.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.context import (
    CompressionContext,
    check_layers_exist,
    output_layer_name,
)

_CHANNELLED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _importance(name: str) -> tp.importance.Importance:
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise CompressionError(
        f"channel importance '{name}' is unknown", "Use l1, l2, bn_scale or taylor."
    )


def _out_channels(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.modules.conv._ConvNd) else (
        module.out_features
    )


def _taylor_gradients(model: nn.Module, params: object, ctx: CompressionContext) -> None:
    """Accumulate ∂L/∂w on calibration data; Taylor importance reads ``weight.grad``."""
    model.zero_grad()
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    for x, y in ctx.calibration_batches(
        params.calibration_batches * 32, 32, what="Taylor channel importance"
    ):
        loss_fn(model(x), y.long()).backward()
    model.eval()


def prune_channels(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """Remove ``params.ratio`` of the channels of every prunable layer, in place."""
    if not (0.0 <= params.ratio < 1.0):
        raise CompressionError(
            f"channel pruning ratio = {params.ratio!r} is outside [0, 1)",
            "Give the fraction of channels to remove, e.g. 0.5.",
        )
    check_layers_exist(model, list(params.ignore), "structured pruning 'ignore'")
    modules = dict(model.named_modules())
    ignored = [modules[n] for n in params.ignore]
    out_name = output_layer_name(model)
    if out_name is not None:
        ignored.append(modules[out_name])  # the classes the model predicts are not prunable
    before = {n: _out_channels(m) for n, m in modules.items() if isinstance(m, _CHANNELLED)}
    was_training = model.training
    model.eval()
    example = ctx.example(1)
    try:
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=_importance(params.importance),
            global_pruning=params.global_pruning,
            pruning_ratio=params.ratio,
            iterative_steps=params.iterative_steps,
            ignored_layers=ignored,
            round_to=params.round_to,
        )
    except Exception as exc:  # tracing failed: the model's forward is not traceable
        raise CompressionError(
            f"structured pruning could not trace the model ({type(exc).__name__}: {exc})",
            "Use unstructured magnitude pruning for this model, or a model whose forward has "
            "no data-dependent control flow.",
        ) from exc
    for _ in range(params.iterative_steps):
        if params.importance == "taylor":
            _taylor_gradients(model, params, ctx)
        pruner.step()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    with torch.no_grad():
        model.eval()
        model(example)  # fail here, naming the step, rather than later in a report
        model.train(was_training)
    for name, module in model.named_modules():
        if name in before and isinstance(module, _CHANNELLED):
            removed = before[name] - _out_channels(module)
            if removed > 0:
                module.kdgui_removed_channels = removed
    model.kdgui_prune_state = "removed"
    return model


def apply(model: nn.Module, params: object, ctx: CompressionContext) -> nn.Module:
    """The registered unit (see :func:`prune_channels`)."""
    return prune_channels(model, params, ctx)
