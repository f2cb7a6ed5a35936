"""Inference latency: the median of timed forward passes after a warm-up, within a time cap.

The median, not the mean, because a shared machine (or the garbage collector) adds rare long
outliers. The cap matters for the window and the CLI: a slow teacher gets a few repeats rather than
minutes of timing; at least one pass is always timed.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from kdgui.engine.fast_path import FastForward, Variant, opaque_reason, set_channels_last
from kdgui.engine.metrics._modules import eval_mode, on_device


def _synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so the clock measures the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 5,
    repeats: int = 20,
    max_seconds: float = 2.0,
    variant: Variant | None = None,
) -> float:
    """Median milliseconds per forward pass of a batch of ``batch_size`` samples.

    ``input_shape`` is one sample's shape (no batch dim). Warm-up stops early once half of
    ``max_seconds`` is spent, timing stops once all of it is; the model is copied rather than
    moved when it lives on another device, and runs in eval mode under ``inference_mode``.
    ``variant`` (precision, channels_last; see :mod:`kdgui.engine.fast_path`) is how the model
    runs; its weights' layout is put back afterwards. Opaque programs always run as loaded.
    """
    target = torch.device(device)
    net = on_device(model, target)
    if variant is not None and variant != Variant() and opaque_reason(net) is None:
        was = set_channels_last(net, variant.channels_last)
        try:
            return _median_ms(FastForward(net, variant, target), input_shape, batch_size, target,
                              warmup, repeats, max_seconds)
        finally:
            set_channels_last(net, was)
    return _median_ms(net, input_shape, batch_size, target, warmup, repeats, max_seconds)


def _median_ms(
    net: nn.Module, input_shape: tuple[int, ...], batch_size: int, target: torch.device,
    warmup: int, repeats: int, max_seconds: float,
) -> float:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *input_shape), generator=gen).to(target)
    times: list[float] = []
    with eval_mode(net), torch.inference_mode():
        start = time.perf_counter()
        for _ in range(max(0, warmup)):
            net(x)
            _synchronize(target)
            if time.perf_counter() - start > max_seconds / 2:
                break
        for _ in range(max(1, repeats)):
            times.append(_timed_pass(net, x, target))
            if time.perf_counter() - start > max_seconds:
                break
    return statistics.median(times) * 1000.0


def _timed_pass(net: nn.Module, x: torch.Tensor, target: torch.device) -> float:
    """Seconds of one forward pass. On CUDA, measured by CUDA events recorded on the stream
    around the pass (the GPU's own time, not the host's launch time), after synchronising;
    elsewhere by the host clock after synchronising."""
    if target.type == "cuda":
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        net(x)
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1000.0  # elapsed_time is in ms
    t0 = time.perf_counter()
    net(x)
    _synchronize(target)
    return time.perf_counter() - t0
