"""Choosing, at run start, how the run's teacher and student run (see :mod:`kdgui.engine.fast_path`).

The choice is measured on the run's device with the run's first training batch and its batch size,
reported in one log line per model, kept on the :class:`RunContext` (``ctx.fast``) for
``RunStarted``, latency measurement and ``summary.json``. Nothing here changes what the run
computes beyond the bound the chooser checks (the teacher's soft targets within a KL of 1e-4 of
fp32's); the student's weights stay fp32.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kdgui.core.events import LogEvent
from kdgui.engine import fast_compile, fast_path, fast_student
from kdgui.engine.fast_path import FastChoice, Variant
from kdgui.engine.session.context import RunContext

#: Weights at or below this are off (``1 - 0.7 - 0.2 - 0.1`` is not exactly 0).
#: Measuring the teacher costs about 16 of its passes and can save at most about 2/3 of each
#: later pass (3x faster); below this many teacher batches in the whole run (a short run, or a
#: cached teacher that runs one small epoch, like the demo's 23) it cannot pay back, so ``auto``
#: keeps fp32 unmeasured.
MIN_TEACHER_BATCHES = 24


def choose(
    ctx: RunContext, teacher: nn.Module, student: nn.Module
) -> tuple[nn.Module, list[LogEvent]]:
    """Measure and choose; return the teacher to distil from (wrapped in its chosen variant)
    and the log lines to send after ``RunStarted`` (a run's first event)."""
    tcfg, dcfg, device = ctx.config.training, ctx.config.distill, ctx.device
    # From the term list (the shorthand maps onto it): a term-list config leaves alpha/beta/gamma
    # at their defaults, so they cannot say what the loss reads.
    features = dcfg.needs("features")
    started = time.perf_counter()
    t_was = fast_path.channels_last_now(teacher)
    batch = fast_path.first_batches(ctx.prepared.train, tcfg.batch_size, 1, device)[0]
    batches = _teacher_batches(ctx, features)
    auto = "auto" in (tcfg.teacher_precision, tcfg.channels_last)
    messages: list[tuple[str, str]] = []
    # Threads first: on a busy machine every other timing at the default count is slow and noisy.
    measure = auto and tcfg.compile == "off" and len(ctx.batches(shuffle=False)) * tcfg.epochs \
        >= MIN_TEACHER_BATCHES
    online = measure and (features or (dcfg.needs("logits") and not _cached(ctx, features)))
    messages += _threads(ctx, teacher if online else None, student, batch, measure=measure)
    if not dcfg.needs("logits") and not features:
        runner: nn.Module = teacher
        t_choice = FastChoice("teacher", Variant(), "it does not run during training (no term "
                              "reads the teacher)")
    elif auto and batches < MIN_TEACHER_BATCHES and not features:
        runner = teacher
        t_choice = FastChoice("teacher", Variant(), f"it runs only {batches} batches in this "
                              "run: measuring would cost more than it can save (auto)")
    else:
        runner, t_choice = fast_path.choose_teacher(teacher, [batch], tcfg, device,
                                                    features=features)
    s_choice = fast_student.choose_student(student, batch, tcfg, device, features=features)
    if tcfg.compile != "off":
        runner, s_choice, compiled = _compile(ctx, runner, t_choice, student, s_choice, batch)
        messages += compiled
    t_choice.threads = s_choice.threads = torch.get_num_threads()
    ctx.fast = {"teacher": t_choice, "student": s_choice}
    ctx.fast_teacher = runner
    ctx.restore_layout = _restorer(teacher, t_was)
    fast_path.set_channels_last(student, s_choice.variant.channels_last)
    took = time.perf_counter() - started
    log = [LogEvent(level="info", message=c.sentence()) for c in (t_choice, s_choice)]
    log += [LogEvent(level=level, message=message) for level, message in messages]
    log.append(LogEvent(level="info", message=f"fast path chosen in {took:.2f} s"))
    return runner, log


def _compile(
    ctx: RunContext, runner: nn.Module, t_choice: FastChoice, student: nn.Module,
    s_choice: FastChoice, batch: torch.Tensor,
) -> tuple[nn.Module, FastChoice, list[tuple[str, str]]]:
    """``training.compile``: try torch.compile on the teacher's runner and (in place) on the
    student; each is kept only when it works (and, for ``auto``, is faster)."""
    auto = ctx.config.training.compile == "auto"
    device = ctx.device
    messages: list[tuple[str, str]] = []
    dcfg = ctx.config.distill
    teacher_runs = dcfg.needs("logits") and not dcfg.needs("features")
    if teacher_runs and fast_path.opaque_reason(runner) is None:
        def teacher_once(m: nn.Module) -> Any:
            with torch.inference_mode():
                return m(batch)

        compiled, message = fast_compile.try_compile(runner, teacher_once, device, auto=auto)
        messages.append(("warning" if "failed" in message else "info", f"teacher: {message}"))
        if compiled is not runner:
            runner = compiled
            t_choice.variant = Variant(t_choice.variant.precision,
                                       t_choice.variant.channels_last, True)
    if fast_path.opaque_reason(student) is None:
        variant = s_choice.variant
        state = {k: v.clone() for k, v in student.state_dict().items()}

        def student_once(m: nn.Module) -> None:
            fast_student.student_pass(m, batch, variant, device)

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            fast_path.set_channels_last(student, variant.channels_last)
            _, message = fast_compile.try_compile(student, student_once, device, auto=auto,
                                               in_place=True)
        student.load_state_dict(state)  # the probe passes moved batch-norm statistics
        messages.append(("warning" if "failed" in message else "info", f"student: {message}"))
        if getattr(student, "_compiled_call_impl", None) is not None:
            s_choice.variant = Variant(variant.precision, variant.channels_last, True)
    return runner, s_choice, messages


def _threads(
    ctx: RunContext, runner: nn.Module | None, student: nn.Module, batch: torch.Tensor, *,
    measure: bool = True,
) -> list[tuple[str, str]]:
    """Torch's thread count for the run, by timing whole steps (the teacher's forward when it
    runs every step, and the student's forward + backward on a copy), as loaded; applied here
    and put back when the run ends (``ctx.previous_threads``). The same rule in the window and
    headless (:func:`fast_student.choose_threads`)."""
    device, tcfg = ctx.device, ctx.config.training
    if not measure or tcfg.num_threads or device.type != "cpu" or torch.get_num_threads() <= 1:
        return []
    probe = copy.deepcopy(student).train()
    variant = Variant()

    def step() -> None:
        if runner is not None:
            with torch.inference_mode():
                runner(batch)
        fast_student.student_pass(probe, batch, variant, device)

    with fast_path.restore_rng(device):
        threads, ms = fast_student.choose_threads(step, device, tcfg)
    if threads != torch.get_num_threads():
        if ctx.previous_threads is None:
            ctx.previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    figures = ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
    return [("info", f"training runs on {threads} CPU thread{'s' * (threads > 1)}: the faster "
             f"whole step measured (auto; {figures})")]


def _teacher_batches(ctx: RunContext, features: bool) -> int:
    """How many batches the teacher will run: one epoch when its outputs are cached, else all."""
    steps = len(ctx.batches(shuffle=False))
    return steps if _cached(ctx, features) else steps * ctx.config.training.epochs


def _cached(ctx: RunContext, features: bool) -> bool:
    """Whether the teacher's outputs will be cached (it then runs in the first epoch only)."""
    return (ctx.config.training.cache_teacher != "off" and not features
            and not ctx.config.data.augment and ctx.batches(shuffle=False).indexable)


def _restorer(teacher: nn.Module, was: bool) -> Callable[[], None]:
    """Puts the teacher's weights back in the layout they came in: a teacher handed in through
    the Python API is the user's object, and e.g. safetensors refuses channels_last tensors."""

    def restore() -> None:
        if fast_path.opaque_reason(teacher) is None:
            fast_path.set_channels_last(teacher, was)

    return restore


def plain_data(ctx: RunContext) -> dict[str, Any]:
    """The choice as plain data for ``RunStarted`` and ``summary.json``."""
    return {name: choice.as_dict() for name, choice in ctx.fast.items()}


__all__ = ["choose", "plain_data"]
