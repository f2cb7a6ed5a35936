"""``training.compile``: torch.compile of the teacher's runner and the student, kept only when
it works (and, under ``auto``, when it is faster than eager on the run's own batch).

A failure (no C++ compiler, an unsupported operation) falls back to eager with one sentence for
the log that says why and how to skip the attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kdgui.engine import fast_path


def try_compile(
    model: nn.Module, run_once: Callable[[nn.Module], Any], device: torch.device, *, auto: bool,
    in_place: bool = False,
) -> tuple[nn.Module, str]:
    """``torch.compile`` ``model`` and keep it when it works (and, for ``auto``, is faster).

    Returns the model to use and one sentence for the log. A failure (no compiler, an
    unsupported operation) falls back to the eager model with that sentence saying why.
    """
    try:
        if in_place:
            model.compile()
            compiled = model
        else:
            compiled = torch.compile(model)  # type: ignore[assignment]
        run_once(compiled)  # compiles (the first call), outside the timing
        if not auto:
            return compiled, "torch.compile: on"
        eager_ms = _time_eager(model, run_once, device, in_place)
        ms = fast_path.time_passes(lambda: run_once(compiled), device, None)
    except Exception as exc:  # torch.compile raises many kinds (BackendCompilerFailed, ...)
        if in_place:
            model._compiled_call_impl = None  # back to eager
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return model, (f"torch.compile failed ({type(exc).__name__}: {first}); running without "
                       "it (set training.compile: off to skip the attempt)")
    assert ms is not None
    if ms < eager_ms:
        return compiled, f"torch.compile kept: {ms:.1f} ms vs {eager_ms:.1f} ms eager"
    if in_place:
        model._compiled_call_impl = None
    return model, f"torch.compile not kept: {ms:.1f} ms vs {eager_ms:.1f} ms eager"


def _time_eager(model: nn.Module, run_once: Callable[[nn.Module], Any], device: torch.device,
                in_place: bool) -> float:
    saved = getattr(model, "_compiled_call_impl", None) if in_place else None
    if in_place:
        model._compiled_call_impl = None
    try:
        ms = fast_path.time_passes(lambda: run_once(model), device, None)
    finally:
        if in_place:
            model._compiled_call_impl = saved
    assert ms is not None
    return ms


__all__ = ["try_compile"]
