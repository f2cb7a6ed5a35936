"""Per-layer measurements for the graph overlays: time spent in each leaf layer, and each quantized
layer's own output error against its float counterpart.

**Latency.** Forward pre/post hooks on every leaf module take the clock around the layer's call
over a few passes of the same batches (after two warm-up passes); a layer's figure is the median
over passes of its mean milliseconds per batch. The hooks run in place, inside the real forward
pass, so each layer sees the inputs it sees in the model. Models that refuse hooks (TorchScript)
are timed layer by layer instead: each leaf is called on its own on inputs captured from a
hookable twin (the float model it was quantized from).

**Quantization error.** Each leaf of the quantized model is run on *the float model's input to
the same layer*, and its output compared with the float layer's output: ``||q - f|| / ||f||``
(relative L2 over the batches). So the figure is the error the layer itself adds, not the error
accumulated upstream: a layer left in float has exactly 0, a quantized layer more than 0. Layers
are matched by module name (compression keeps names); a layer only one side has is left out.

Both return ``{layer name: float}`` over the leaves that ran; neither changes the models (eval
mode is restored, no gradients are taken).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kdgui.engine.metrics._modules import eval_mode, first_tensor, is_quantized_module

#: Untimed passes first (TorchScript's profiling executor optimises on its second call).
WARMUP = 2


def leaf_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The leaves of ``model`` by module name (a ``torch.ao`` quantized layer is one leaf, its
    packed-weights child is not listed)."""
    out: dict[str, nn.Module] = {}
    packed: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in packed):
            continue
        kind = getattr(module, "original_name", type(module).__name__)
        if is_quantized_module(module) or "PackedParams" in str(kind):
            packed.append(name)
            if "PackedParams" in str(kind):
                continue
        elif any(True for _ in module.children()):
            if not _is_quantized_script(module):
                continue
            packed.append(name)
        out[name] = module
    return out


def _is_quantized_script(module: nn.Module) -> bool:
    """A TorchScript quantized layer (its only child holds the packed weights)."""
    return all("PackedParams" in str(getattr(c, "original_name", type(c).__name__))
               for c in module.children())


def accepts_hooks(model: nn.Module) -> bool:
    """False for TorchScript modules (they refuse ``register_forward_hook``)."""
    return not isinstance(model, torch.jit.ScriptModule)


def capture(model: nn.Module, batches: Sequence[torch.Tensor]
            ) -> dict[str, list[tuple[tuple[Any, ...], torch.Tensor]]]:
    """``{leaf: [(positional inputs, output) per batch]}`` from forward hooks on ``model``."""
    seen: dict[str, list[tuple[tuple[Any, ...], torch.Tensor]]] = {}
    handles = []
    for name, module in leaf_modules(model).items():
        def hook(_m: nn.Module, args: tuple[Any, ...], out: Any, name: str = name) -> None:
            tensor = first_tensor(out)
            if tensor is not None and tensor.is_floating_point():
                seen.setdefault(name, []).append((args, tensor.detach().clone()))
        handles.append(module.register_forward_hook(hook))
    try:
        with eval_mode(model), torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def layer_latency(model: nn.Module, batches: Sequence[torch.Tensor], *, repeats: int = 3,
                  inputs: dict[str, list[tuple[tuple[Any, ...], torch.Tensor]]] | None = None
                  ) -> dict[str, float]:
    """Milliseconds per batch spent in each leaf layer (median over ``repeats`` passes).

    ``inputs`` (from :func:`capture` on a twin) is needed only for models that refuse hooks.
    """
    if not accepts_hooks(model):
        return _isolated_latency(model, inputs or {}, repeats)
    spent: dict[str, float] = {}
    started: dict[str, float] = {}
    handles = []
    for name, module in leaf_modules(model).items():
        def before(_m: nn.Module, _a: Any, name: str = name) -> None:
            started[name] = time.perf_counter()

        def after(_m: nn.Module, _a: Any, _o: Any, name: str = name) -> None:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started.pop(name, 0.0)
        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    passes: list[dict[str, float]] = []
    try:
        with eval_mode(model), torch.no_grad():
            for index in range(max(1, repeats) + WARMUP):
                spent.clear()
                for batch in batches:
                    model(batch)
                if index >= WARMUP:
                    passes.append(dict(spent))
    finally:
        for handle in handles:
            handle.remove()
    return _median_per_batch(passes, len(batches))


def _isolated_latency(model: nn.Module,
                      inputs: dict[str, list[tuple[tuple[Any, ...], torch.Tensor]]],
                      repeats: int) -> dict[str, float]:
    leaves = leaf_modules(model)
    passes: list[dict[str, float]] = []
    count = 1
    with torch.no_grad():
        for index in range(max(1, repeats) + WARMUP):
            spent: dict[str, float] = {}
            for name, calls in inputs.items():
                layer = leaves.get(name)
                if layer is None:
                    continue
                count = len(calls)
                start = time.perf_counter()
                try:
                    for args, _ in calls:
                        layer(*args)
                except (RuntimeError, TypeError):  # e.g. a static int8 layer wants qint8 input
                    continue
                spent[name] = time.perf_counter() - start
            if index >= WARMUP:
                passes.append(spent)
    return _median_per_batch(passes, count)


def _median_per_batch(passes: list[dict[str, float]], batches: int) -> dict[str, float]:
    names = [n for n in passes[0]] if passes else []
    return {n: statistics.median(p.get(n, 0.0) for p in passes) * 1000.0 / max(1, batches)
            for n in names}


def layer_quant_error(reference: nn.Module, model: nn.Module, batches: Sequence[torch.Tensor],
                      *, captured: dict[str, list[tuple[tuple[Any, ...], torch.Tensor]]]
                      | None = None) -> dict[str, float]:
    """Relative L2 error of each of ``model``'s leaves against ``reference``'s same-named leaf,
    both run on the reference layer's inputs (so upstream error is not counted)."""
    captured = captured if captured is not None else capture(reference, batches)
    leaves = leaf_modules(model)
    out: dict[str, float] = {}
    with eval_mode(model), torch.no_grad():
        for name, calls in captured.items():
            layer = leaves.get(name)
            if layer is None:
                continue
            diffs, norms = 0.0, 0.0
            try:
                for args, expected in calls:
                    got = first_tensor(layer(*args))
                    if got is None or got.shape != expected.shape:
                        raise TypeError("shape")
                    got = got.dequantize() if got.is_quantized else got
                    diffs += float(torch.sum((got.float() - expected.float()) ** 2))
                    norms += float(torch.sum(expected.float() ** 2))
            except (RuntimeError, TypeError):  # a layer that cannot run on float inputs alone
                continue
            out[name] = (diffs ** 0.5 / norms ** 0.5) if norms > 0 else (0.0 if diffs == 0
                                                                       else float("inf"))
    return out


__all__ = ["WARMUP", "accepts_hooks", "capture", "layer_latency", "layer_quant_error",
           "leaf_modules"]
