"""The student's fast path: its layout (and precision when set) chosen by timing forward +
backward on a copy (see :mod:`kdgui.engine.fast_path` for the rules and the teacher's choice).

The student keeps fp32 weights; under ``auto`` it also keeps fp32 arithmetic, since whether its
accuracy holds in a lower precision cannot be checked in a few batches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

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
            best = fast_path.keep_fastest(choice, variant, ms, best)
    choice.reason = f"fastest of {len(choice.timings_ms)} measured (auto; weights stay fp32)"
    return choice


#: Torch's default thread count is kept only when a whole training step is this much faster
#: with it than on one thread. An extra thread that does not speed the run up only competes for
#: the cores (with the window's UI thread, with other programs): the 8×8 demo, whose step times
#: under 1.1× faster on 2 threads headless, trained in the window at 0.80× its headless speed on
#: 2 threads against 0.98× on 1 (UI lateness p99 15.9 vs 9.4 ms). Not higher: the MNIST pair's
#: step is 1.5–1.7× faster on 2 threads (its run 1.7×), and at a 1.5× bar its first run in the
#: window, timed while the window painted, fell to 1 thread.
THREADS_GAIN = 1.25
#: The default count's first pass this many times slower than one thread's warm-up pass (which
#: also pays one-time set-up) decides at once: under heavy load a 2-thread pass took seconds
#: (54x one thread's). Not lower: the window's paints at Run made one MNIST 2-thread pass 3.6x
#: slower, and a factor of 3 then decided on that one disturbed pass.
GIVE_UP = 10.0


def choose_threads(
    step: Callable[[], Any], device: torch.device, cfg: TrainingConfig
) -> tuple[int, dict[str, float]]:
    """Torch's intra-op threads for the run: its default when a whole training step (the chosen
    teacher and student variants) runs :data:`THREADS_GAIN` faster on it, else 1; and the
    timings (ms).

    On a machine whose cores are busy (other programs, other runs), every parallel region waits
    until all its threads are scheduled: at a load of 7-14 on 2 cores, a 2-thread step of the
    MNIST pair was 2-5x slower than a 1-thread one here, the student's short kernels worst.
    Idle, a model whose kernels split across threads keeps the default. Nothing is measured off
    the CPU, with one thread, or when ``training.num_threads`` is set. Passes alternate (1,
    default, 1, default, 1; the first is a warm-up) so that a change of load hits both; the
    fastest pass of each is compared (see :data:`GIVE_UP` for the early decision); the caller's
    count is put back after. The fastest, not the median: interference only adds time, and a
    burst of it hits one pass, not a count (the window paints its cleared plots while the run
    times its threads: the MNIST pair, 1.7x faster on 2 threads, was once timed on the median
    below the gain and trained on 1 at 0.62x), while a machine that is busy for good slows
    every pass.

    A run in the window is timed the same way: with the window's UI thread active, 2 threads
    still won on 2 cores (MNIST pair: 7,000–7,500 samples/s in the window against 4,650 when
    the window held one core back for its UI, and 7,500–8,200 headless).
    """
    caller = default = torch.get_num_threads()
    if cfg.num_threads or device.type != "cpu" or default <= 1:
        return default, {}
    times: dict[int, list[float]] = {1: [], default: []}
    try:
        for n in (1, default, 1, default, 1):
            torch.set_num_threads(n)
            t0 = fast_path.clock()
            step()
            times[n].append((fast_path.clock() - t0) * 1000.0)
            if len(times[default]) == 1 and times[default][0] > GIVE_UP * times[1][0]:
                break  # decided: even a warm-up pass on one thread was far faster
    finally:
        torch.set_num_threads(caller)
    ms = {f"{n} thread{'s' * (n > 1)}": min(v[1:] or v if n == 1 else v)
          for n, v in times.items()}
    one, many = ms["1 thread"], ms[f"{default} threads"]
    return (default if one > THREADS_GAIN * many else 1), ms


__all__ = ["THREADS_GAIN", "choose_student", "choose_threads", "student_pass"]
