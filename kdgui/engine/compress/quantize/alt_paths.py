"""The int8 paths that are meant to replace ``torch.ao.quantization``: torchao and the pt2e flow.

PyTorch's migration guidance for the deprecated ``torch.ao.quantization`` is torchao's
``quantize_`` for eager models and the pt2e flow (``torch.export`` → ``prepare_pt2e`` →
calibrate → ``convert_pt2e`` → ``torch.compile``, with the x86 inductor quantizer on CPU) for
graph quantization. This module builds the same three user-facing methods that way —

* **dynamic-int8**: torchao ``Int8DynamicActivationInt8WeightConfig`` (eager), and pt2e with
  ``X86InductorQuantizer(is_dynamic=True)`` compiled by inductor;
* **static-int8**: pt2e with the x86 inductor quantizer, calibrated, compiled (inductor
  ``freezing`` on, which is what lets it fuse the int8 weight into oneDNN kernels);
* **qat-int8**: ``prepare_qat_pt2e`` with the same quantizer, fine-tuned, converted, compiled —

so ``bench/bench_compression.py`` can time each against today's torch.ao path in the same process.
The registered methods stay on torch.ao while it measures faster (the methods page has the figures
and the reasons); torchao is an optional package (``pip install torchao==0.18.0``): it is not a
dependency because importing it logs a torch notice and, on this project's CPUs, it was slower.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from kdgui.core.errors import CompressionError

TORCHAO_HINT = "Install it with: pip install torchao==0.18.0 (works with torch 2.14.1)."


@contextmanager
def _quiet_import() -> Any:
    """torchao 0.18 registers an Enum with torch's pytree at import, and torch 2.14 logs a
    deprecation notice for that through the ``torch.utils._pytree`` logger: hold that logger
    (only it) at ERROR while importing."""
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def torchao_version() -> str | None:
    """torchao's version when it is installed and imports, else None."""
    try:
        with _quiet_import():
            import torchao
    except Exception:  # absent, or built for another torch
        return None
    return str(getattr(torchao, "__version__", "unknown"))


def require_torchao(what: str) -> None:
    if torchao_version() is None:
        raise CompressionError(f"{what} needs torchao, which is not installed", TORCHAO_HINT)


def torchao_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with torchao int8 dynamic-activation, int8-weight Linear layers."""
    require_torchao("torchao dynamic int8")
    with _quiet_import():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    net = copy.deepcopy(model).eval()
    quantize_(net, Int8DynamicActivationInt8WeightConfig())
    return net


def _quantizer(dynamic: bool, qat: bool) -> Any:
    with _quiet_import():
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    config = xiq.get_default_x86_inductor_quantization_config(is_qat=qat, is_dynamic=dynamic)
    return xiq.X86InductorQuantizer().set_global(config)


def _exported(model: nn.Module, example: torch.Tensor) -> nn.Module:
    batch = example.expand(2, *example.shape[1:]).contiguous()
    return torch.export.export(model, (batch,),
                               dynamic_shapes=({0: torch.export.Dim.AUTO},)).module()


def pt2e_int8(
    model: nn.Module,
    example: torch.Tensor,
    calibration: Iterable[torch.Tensor] = (),
    *,
    dynamic: bool = False,
    qat_train: Callable[[nn.Module], None] | None = None,
    compile_model: bool = True,
) -> nn.Module:
    """``model`` through the pt2e flow with the x86 inductor quantizer: exported, prepared,
    calibrated on ``calibration`` (static) or trained by ``qat_train(prepared)`` (QAT),
    converted, and compiled by inductor with freezing on (eager pt2e int8 is a graph of
    quantize/dequantize ops, many times slower than float)."""
    require_torchao("the pt2e flow")
    with _quiet_import():
        from torchao.quantization.pt2e import (
            allow_exported_model_train_eval,
            move_exported_model_to_eval,
        )
        from torchao.quantization.pt2e.quantize_pt2e import (
            convert_pt2e,
            prepare_pt2e,
            prepare_qat_pt2e,
        )
    net = copy.deepcopy(model)
    qat = qat_train is not None
    graph = _exported(net.train() if qat else net.eval(), example)
    quantizer = _quantizer(dynamic, qat)
    if qat:
        prepared = allow_exported_model_train_eval(prepare_qat_pt2e(graph, quantizer))
        qat_train(prepared)  # .train()/.eval() work on it (an exported module refuses them)
    else:
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            prepared(example)
            for x in calibration:
                prepared(x)
    converted = move_exported_model_to_eval(convert_pt2e(prepared))
    converted = allow_exported_model_train_eval(converted)  # eval() works (latency measuring)
    for param in converted.parameters():
        param.requires_grad_(False)  # inference only: inductor traces no backward
    if not compile_model:
        return converted
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(converted)
    with torch.no_grad():  # compile now (and for batch 1), not inside the first timing
        compiled(example)
        compiled(example[:1])
    return compiled


__all__ = ["TORCHAO_HINT", "pt2e_int8", "require_torchao", "torchao_dynamic_int8",
           "torchao_version"]
