"""Forward hooks that collect intermediate outputs by layer name.

Feature and attention losses read the teacher's and the student's intermediate outputs from
dictionaries filled by forward hooks (the torchdistill habit), so no loss and no model has to know
the other's architecture: a layer is addressed by its ``named_modules()`` name.

:func:`candidate_layers` runs one probe forward pass and lists the layers worth distilling from:
modules that output a 4-D feature map with more than one spatial position, called exactly once
per forward pass (a module reused at several places, like a shared ``self.relu``, has no single
output, so it is left out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn

from kdgui.core.errors import CompatibilityError, ConfigError
from kdgui.engine.distill.attention_probs import ATTENTION, attention_probs, find_attention
from kdgui.engine.models.frozen import FEATURE_FORMATS, feature_maps_refusal

Shape = tuple[int, ...]


def _first_tensor(output: Any) -> Tensor | None:
    """The tensor a layer produced: itself, or the first tensor of a tuple/list output."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


def check_hookable(model: nn.Module, role: str = "teacher") -> None:
    """A :class:`CompatibilityError` when ``model`` (a TorchScript, .pt2 or ONNX wrapper) cannot
    give feature maps, naming the formats that can. Called before any training starts."""
    reason = feature_maps_refusal(model, role)
    if reason is not None:
        raise CompatibilityError(
            reason, f"Give the {role} as {FEATURE_FORMATS}; or use only logit losses (set beta and "
            "gamma to 0, no feature-map terms: logit distillation works with every format).",
            source=role)


def _register(module: nn.Module, name: str, hook: Callable[..., None]) -> Any:
    """Register ``hook`` on ``module``; models that cannot take hooks get a user-facing error."""
    try:
        return module.register_forward_hook(hook)
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        raise CompatibilityError(
            f"cannot watch layer '{name}' of a {type(module).__name__} ({exc})",
            f"Feature and attention losses need an eager nn.Module: {FEATURE_FORMATS}; "
            "not a TorchScript, .pt2 or ONNX file. Or use only logit losses (set beta and gamma "
            "to 0, no feature-map terms).",
        ) from None


class FeatureTap:
    """Store the outputs of ``layer_names`` in :attr:`outputs` on every forward pass of ``model``.

    Hooks stay registered until :meth:`remove` (or the end of a ``with`` block), so a training loop
    can register them once and read :attr:`outputs` after each forward pass. Outputs keep their
    autograd graph (the student's features must back-propagate); call :meth:`clear` once a loss
    has used them so that the last batch's activations are not kept alive. A name
    ``"<layer>@attention"`` stores the attention probabilities of that attention layer (or of
    the first one inside that block) instead of an output (see :mod:`.attention_probs`).
    """

    def __init__(self, model: nn.Module, layer_names: Iterable[str]) -> None:
        check_hookable(model, "model")
        self.outputs: dict[str, Tensor] = {}
        self._handles: list[Any] = []
        modules = dict(model.named_modules())
        names = list(dict.fromkeys(layer_names))
        unknown = [n for n in names if n.removesuffix(ATTENTION) not in modules
                   or n.removesuffix(ATTENTION) == ""]
        if unknown:
            known = [n for n in modules if n]
            shown = ", ".join(known[:40]) + (" …" if len(known) > 40 else "")
            raise ConfigError(
                f"layer '{unknown[0]}' does not exist in {type(model).__name__}",
                f"Use one of: {shown or 'none (the model has no submodules)'}.",
            )
        for name in names:
            base = name.removesuffix(ATTENTION)
            if base == name:
                self._handles.append(_register(modules[name], name, self._hook(name)))
                continue
            attention = find_attention(modules[base])
            if attention is None:
                raise ConfigError(f"layer '{base}' of {type(model).__name__} has no attention "
                                  "module, so it has no attention map",
                                  "Name a transformer block or its attention layer.")
            self._handles.append(_register(attention, name, self._attention_hook(name)))
        self.layer_names = names

    def _hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        outputs = self.outputs

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is not None:
                outputs[name] = tensor

        return hook

    def _attention_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        outputs = self.outputs

        def hook(module: nn.Module, inputs: Any, _output: Any) -> None:
            outputs[name] = attention_probs(module, tuple(inputs))

        return hook

    def clear(self) -> None:
        """Forget the stored outputs (and the graphs they hold)."""
        self.outputs.clear()

    def remove(self) -> None:
        """Unregister every hook and forget the stored outputs."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.outputs.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def probe_shapes(
    model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str | None = None
) -> tuple[dict[str, Shape], dict[str, int]]:
    """Output shapes (without the batch dimension) of every submodule, in completion order.

    One forward pass of a single zero sample in eval mode under ``no_grad``; the model's
    train/eval mode is restored afterwards. Returns ``(shapes, calls)`` where ``calls`` counts
    how often each module ran (reused modules run more than once).
    """
    check_hookable(model, "model")
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else "cpu"
    shapes: dict[str, Shape] = {}
    calls: dict[str, int] = {}
    handles = []

    def make(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_m: nn.Module, _i: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            tensor = _first_tensor(output)
            if tensor is not None:
                shapes.pop(name, None)  # keep completion order of the last call
                shapes[name] = tuple(tensor.shape[1:])

        return hook

    was_training = model.training
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(_register(module, name, make(name)))
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return shapes, calls


def candidate_layers(
    model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str | None = None
) -> list[tuple[str, Shape]]:
    """Layers whose output is a feature map ``(C, H, W)`` with ``H*W > 1``, in forward order.

    Only modules called once per forward pass qualify. Containers are included alongside their
    children (``layer1`` as well as ``layer1.1.conv2``), so a stage's end is addressable by the
    container's name.
    """
    return feature_maps(*probe_shapes(model, input_shape, device))


def feature_maps(shapes: dict[str, Shape], calls: dict[str, int]) -> list[tuple[str, Shape]]:
    """The probed layers that qualify as candidates (see :func:`candidate_layers`)."""
    return [
        (name, shape)
        for name, shape in shapes.items()
        if len(shape) == 3 and shape[1] * shape[2] > 1 and calls.get(name, 0) == 1
    ]
