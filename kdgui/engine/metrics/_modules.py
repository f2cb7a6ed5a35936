"""Helpers shared by the metrics: eval mode without side effects, devices, quantized weights.

Metrics must not change the model they measure: running a forward pass in training mode would
update BatchNorm statistics, and moving a model to another device would move the caller's model.
Quantized modules from ``torch.ao`` keep their weights in packed C++ objects rather than in
parameters, so every count that walks parameters also has to unpack those.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

_CONV_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the first parameter or buffer (CPU for a model that has none)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def on_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` itself when it already lives on ``device``, else a copy moved there.

    A copy, not ``model.to(device)``: measuring must not move the caller's model.
    """
    target = torch.device(device)
    current = model_device(model)
    if current.type == target.type and (target.index is None or current.index == target.index):
        return model
    return copy.deepcopy(model).to(target)


def is_quantized_module(module: nn.Module) -> bool:
    """True for the modules of ``torch.ao.nn.quantized`` (static and dynamic) with packed weights."""
    return type(module).__module__.startswith("torch.ao.nn.quantized") and callable(
        getattr(module, "weight", None)
    )


def has_quantized_modules(model: nn.Module) -> bool:
    """True when any submodule keeps its weights packed by ``torch.ao`` quantization."""
    return any(is_quantized_module(m) for m in model.modules())


def packed_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The weight and bias of a ``torch.ao`` quantized module as float tensors (dequantized)."""
    out: list[torch.Tensor] = []
    for attr in ("weight", "bias"):
        getter = getattr(module, attr, None)
        if not callable(getter):
            continue
        try:
            value = getter()
        except (RuntimeError, AttributeError):  # e.g. a layer built without a bias
            continue
        if isinstance(value, torch.Tensor):
            out.append(value.dequantize() if value.is_quantized else value.detach())
    return out


def quantized_bits(module: nn.Module) -> int | None:
    """The weight bit width of a ``torch.ao`` quantized module (8 for qint8, 16 for float16)."""
    if not is_quantized_module(module):
        return None
    try:
        weight = module.weight()
    except (RuntimeError, AttributeError):
        return None
    return torch.iinfo(weight.dtype).bits if weight.is_quantized else torch.finfo(weight.dtype).bits


def unique_weight_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Every weight tensor of the model once, as the network actually uses it.

    Parameters shared between modules (tied weights) are counted once. For a layer pruned with
    ``torch.nn.utils.prune`` the effective ``weight`` (``weight_orig * weight_mask``) is yielded
    instead of the dense ``weight_orig``; ``torch.ao`` quantized modules are unpacked.
    """
    seen: set[int] = set()
    for module in model.modules():
        if is_quantized_module(module):
            yield from packed_tensors(module)
            continue
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            base = name[: -len("_orig")]
            if name.endswith("_orig") and hasattr(module, base + "_mask"):
                yield getattr(module, base).detach()
            else:
                yield param.detach()


def own_weight_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The weights one module holds itself (not its children), unpacked and pruning-aware."""
    if is_quantized_module(module):
        return packed_tensors(module)
    out: list[torch.Tensor] = []
    for name, param in module.named_parameters(recurse=False):
        base = name[: -len("_orig")]
        if name.endswith("_orig") and hasattr(module, base + "_mask"):
            out.append(getattr(module, base).detach())
        else:
            out.append(param.detach())
    return out


def prunable_weight(module: nn.Module) -> torch.Tensor | None:
    """The weight of a Conv or Linear layer (float, pruned or quantized), else None."""
    if isinstance(module, (nn.Linear, *_CONV_TYPES)):
        weight = getattr(module, "weight", None)
        return weight.detach() if isinstance(weight, torch.Tensor) else None
    if is_quantized_module(module):
        name = type(module).__name__
        if "Linear" in name or "Conv" in name:
            tensors = packed_tensors(module)
            return tensors[0] if tensors else None
    return None


def first_tensor(value: object) -> torch.Tensor | None:
    """The tensor a module produced: itself, or the first tensor inside a tuple, list or dict
    output (hooks see whatever ``forward`` returned)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        return first_tensor(list(value.values()))
    return None
