"""Check that teacher, student and data agree before any training starts.

A dummy forward pass at batch 2 on CPU finds every disagreement in a fraction of a second, and
the messages translate PyTorch's errors ("expected input[2, 1, 8, 8] to have 3 channels") into
what the user must change.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from kdgui.core.errors import CompatibilityError
from kdgui.core.student_shapes import fmt_shape
from kdgui.engine.models.weights import set_mode

_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels")
_MATMUL = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
_FIXED_BATCH = re.compile(r"(?:shape\[0\] to be equal to|\.size\(\)\[0\] ==) (\d+)")


def check_compatibility(teacher: nn.Module | None, student: nn.Module | None,
                        input_shape: tuple[int, ...], num_classes: int,
                        in_channels: int | None = None) -> dict[str, Any]:
    """Run both models on a dummy batch; raise :class:`CompatibilityError` on disagreement.

    Returns the per-sample output shapes (``{"teacher": (10,), "student": (10,)}``).
    """
    if in_channels is not None and input_shape and input_shape[0] != in_channels:
        input_shape = (in_channels, *input_shape[1:])
    result: dict[str, Any] = {}
    for role, model in (("teacher", teacher), ("student", student)):
        if model is not None:
            result[role] = _check_one(role, model, tuple(input_shape), num_classes)
    return result


@torch.no_grad()
def _check_one(role: str, model: nn.Module, input_shape: tuple[int, ...],
               num_classes: int) -> tuple[int, ...]:
    x = torch.zeros(2, *input_shape)
    was = model.training
    set_mode(model, training=False)  # never update BatchNorm statistics with a dummy batch
    try:
        out = model(x)
    except Exception as exc:  # translate the common shape errors, name the rest
        raise _translate(role, exc, input_shape) from None
    finally:
        set_mode(model, training=was)
    if not isinstance(out, Tensor):
        raise CompatibilityError(
            f"the {role} returns a {type(out).__name__}, not a tensor of class scores",
            "Wrap the model so forward() returns the logits tensor only", source=role)
    if out.dim() != 2 or out.shape[0] != 2:
        raise CompatibilityError(
            f"the {role} outputs a tensor of shape {tuple(out.shape)} for a batch of 2, "
            "not (batch, classes) scores",
            "End the model with a classifier (global pool + Linear) that outputs class scores",
            source=role)
    if out.shape[1] != num_classes:
        raise CompatibilityError(
            f"the {role} outputs {out.shape[1]} classes but the dataset has {num_classes}",
            f"Set the {role}'s num_classes to {num_classes} (--num-classes) or pick a "
            f"checkpoint/head trained for this dataset",
            source=role)
    return tuple(out.shape[1:])


def _translate(role: str, exc: Exception, input_shape: tuple[int, ...]) -> CompatibilityError:
    msg = str(exc)
    if m := _CHANNELS.search(msg):
        want, got = m.groups()
        return CompatibilityError(
            f"the {role} expects {want} input channels but the data has {got}",
            f"Use data with {want} channels (e.g. another dataset), or a {role} whose first "
            f"layer takes {got} channels",
            source=role)
    if m := _MATMUL.search(msg):
        got, want = m.group(2), m.group(3)
        return CompatibilityError(
            f"the {role} expects {want} input features but the data gives {got} "
            f"({fmt_shape(input_shape)} images)",
            f"Resize the data (data.image_size) or use a {role} made for "
            f"{fmt_shape(input_shape)} inputs",
            source=role)
    if m := _FIXED_BATCH.search(msg):
        return CompatibilityError(
            f"the {role} was exported for batch size {m.group(1)} only",
            "Export it again with a dynamic batch dimension (dynamic_shapes)", source=role)
    first = msg.strip().splitlines()[0][:200] if msg.strip() else type(exc).__name__
    return CompatibilityError(
        f"the {role} fails on inputs of shape {fmt_shape(input_shape)}: {first}",
        f"Check that the {role} is made for this data's input size and channels", source=role)
