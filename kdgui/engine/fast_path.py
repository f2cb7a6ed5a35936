"""The fast path: in which precision and memory layout the teacher and student run, by measurement.

On the CPUs most people train on, the frozen teacher's forward pass is most of an online KD step,
and how fast it runs depends on the machine: bf16 autocast with channels_last weights was 4-5x
faster than fp32 on an AMD EPYC with avx512_bf16, while a CPU without native bf16 can be slower
in bf16. So nothing is assumed: ``auto`` times a few real batches of each candidate on the run's
device at run start, refuses a candidate whose soft targets drift from fp32's by more than
:data:`KL_BOUND` (KL at :data:`KL_TEMPERATURE`), and keeps the fastest. The choice and the figures
are plain data (:meth:`FastChoice.as_dict`) for the log, ``RunStarted`` and ``summary.json``.

Only plain ``nn.Module`` teachers are changed: a TorchScript, ``.pt2`` or ONNX teacher
(:class:`~kdgui.engine.models.frozen.FrozenTeacher`) runs as it was loaded. With a feature or
attention loss the teacher stays fp32 and contiguous too: those losses read its feature maps by
layer name through hooks, which a wrapper and a lower precision would change.

The student keeps fp32 weights. Under ``auto`` it also keeps fp32 arithmetic: bf16 autocast made
the student's training step slower here (forward + backward of a small CNN: 3.3 s vs 1.8 s per
batch of 256 under load), and whether its accuracy holds cannot be checked in a few batches; only
its layout is chosen by measurement. ``student_precision: bf16`` opts into autocast.

This module holds the variants, the timing and the teacher's choice;
:mod:`kdgui.engine.fast_student` chooses the student's layout and
:mod:`kdgui.engine.fast_compile` tries ``torch.compile``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgui.core.config import TrainingConfig

#: Largest KL(fp32 ‖ candidate) of the teacher's soft targets a candidate may have.
KL_BOUND = 1e-4
#: The temperature at which the soft targets are compared (the usual distillation temperature).
KL_TEMPERATURE = 4.0
#: Timed passes per candidate after one warm-up pass (the median is kept).
TIMED_PASSES = 3
#: A candidate whose warm-up pass is this many times slower than the best median so far is not
#: timed further: fp16 on a CPU can be 7x slower, and timing it fully would delay step 1.
GIVE_UP_FACTOR = 3.0
#: Seconds of measuring per model after which each further candidate gets one timed pass only
#: (not three): on a loaded machine a pass can take 10x its usual time, and the choice must not
#: delay step 1 by much. Every candidate is still measured.
BUDGET_S = 2.0
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: Timer used for every measurement here (tests replace it to make a candidate slower).
clock: Callable[[], float] = time.perf_counter


@dataclass(frozen=True)
class Variant:
    """One way to run a model: arithmetic precision, weight/input layout, compiled or not."""

    precision: str = "fp32"
    channels_last: bool = False
    compiled: bool = False

    @property
    def label(self) -> str:
        parts = [self.precision] + ["channels_last"] * self.channels_last
        return "+".join(parts + ["compiled"] * self.compiled)


@dataclass
class FastChoice:
    """What was chosen for one model, why, and the figures it was chosen on."""

    model: str
    variant: Variant
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    kl: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    #: Torch's CPU threads the run trains with (chosen with the variants; 0: not recorded).
    threads: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data; every candidate has the same fields whatever happened to it (-1.0: not
        timed / not compared), so the schema does not depend on the machine's load."""
        labels = list(dict.fromkeys([*self.timings_ms, *self.kl, *self.refused]))
        return {
            "precision": self.variant.precision, "channels_last": self.variant.channels_last,
            "compiled": self.variant.compiled, "label": self.variant.label, "reason": self.reason,
            "kl_bound": KL_BOUND, "kl_temperature": KL_TEMPERATURE, "threads": self.threads,
            "candidates": {k: {"ms": round(self.timings_ms.get(k, -1.0), 3),
                               "kl": float(self.kl.get(k, -1.0)),
                               "refused": self.refused.get(k, "")} for k in labels},
        }

    def sentence(self) -> str:
        """One log line: the choice and the measured figures."""
        times = ", ".join(f"{k} {v:.1f} ms" for k, v in self.timings_ms.items())
        refused = "; ".join(f"{k} refused: {v}" for k, v in self.refused.items())
        figures = f" ({times})" if times else ""
        return f"{self.model} runs in {self.variant.label}: {self.reason}{figures}" + (
            f"; {refused}" if refused else ""
        )


def opaque_reason(model: nn.Module) -> str | None:
    """Why ``model`` must run as loaded (a TorchScript/.pt2/ONNX program), or None."""
    from kdgui.engine.models.frozen import FrozenTeacher

    if isinstance(model, FrozenTeacher):
        return f"a {model.kind} teacher runs as it was loaded"
    if isinstance(model, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        return "a compiled program runs as it was loaded"
    return None


def has_4d_weights(model: nn.Module) -> bool:
    return any(p.dim() == 4 for p in model.parameters())


def set_channels_last(model: nn.Module, on: bool) -> bool:
    """Put ``model``'s 4-D weights in channels_last (or back); return whether they were before.

    In place (parameters keep their identity, so an optimizer built on them stays valid).
    """
    was = channels_last_now(model)
    if was != on:
        model.to(memory_format=torch.channels_last if on else torch.contiguous_format)
    return was


def channels_last_now(model: nn.Module) -> bool:
    """Whether some 4-D weight is in channels_last (and not also contiguous: 1-channel kernels
    are both)."""
    return any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
               and not p.is_contiguous() for p in model.parameters())


def layout_input(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Autocast to ``precision``; for fp32 explicitly *off* (so a student's autocast around a
    teacher that must stay fp32 does not reach into it)."""
    dtype = DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


class FastForward(nn.Module):
    """Runs a frozen model in a chosen :class:`Variant`; returns fp32 logits.

    The wrapped model is a submodule, so ``.to()``/``.eval()`` reach it; its weights are put in
    channels_last by :func:`apply_variant` (in place), the input here.
    """

    def __init__(self, module: nn.Module, variant: Variant, device: torch.device) -> None:
        super().__init__()
        self.module = module
        self.variant = variant
        self.device_type = torch.device(device)
        self._call: Callable[[Tensor], Any] = (
            torch.compile(module) if variant.compiled else module  # type: ignore[assignment]
        )

    def forward(self, x: Tensor) -> Tensor:
        from kdgui.engine.distill.distiller import as_logits

        x = layout_input(x, self.variant.channels_last)
        with autocast(self.device_type, self.variant.precision):
            out = as_logits(self._call(x))
        return out.float()


def apply_variant(module: nn.Module, variant: Variant, device: torch.device) -> nn.Module:
    """``module`` ready to run in ``variant``: a :class:`FastForward`, or itself for plain fp32."""
    set_channels_last(module, variant.channels_last)
    if variant == Variant():
        return module
    return FastForward(module, variant, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_passes(
    fn: Callable[[], Any], device: torch.device, best: float | None, warm: bool = False,
    deadline: float = float("inf"),
) -> float | None:
    """Median ms of :data:`TIMED_PASSES` calls after one warm-up call (skipped when ``warm``:
    the caller made it). None when the first timed call is :data:`GIVE_UP_FACTOR` times slower
    than ``best``: a first call also pays one-time set-up (kernels for a new layout or dtype),
    so the give-up test waits for the second."""
    if not warm:
        fn()
        _sync(device)
    times: list[float] = []
    for _ in range(TIMED_PASSES):
        t0 = clock()
        fn()
        _sync(device)
        times.append((clock() - t0) * 1000.0)
        if best is not None and len(times) == 1 and times[0] > GIVE_UP_FACTOR * best:
            return None
        if clock() > deadline:
            break
    return statistics.median(times)


def soft_kl(reference: Tensor, candidate: Tensor, temperature: float = KL_TEMPERATURE) -> float:
    """KL(softmax(ref/T) ‖ softmax(cand/T)), batch mean: how far the soft targets moved."""
    ref = F.log_softmax(reference.float() / temperature, dim=1)
    cand = F.log_softmax(candidate.float() / temperature, dim=1)
    return float(F.kl_div(cand, ref, log_target=True, reduction="batchmean"))


def teacher_candidates(cfg: TrainingConfig, device: torch.device, layouts: bool) -> list[Variant]:
    """What ``auto`` tries: fp32 and bf16 (fp16 too off the CPU: on a CPU it was 7x slower here),
    each contiguous and channels_last when the model has 4-D weights."""
    auto = ["fp32", "bf16"] + (["fp16"] if device.type != "cpu" else [])
    precisions = auto if cfg.teacher_precision == "auto" else [cfg.teacher_precision]
    cl = {"auto": [False, True], "on": [True], "off": [False]}[cfg.channels_last]
    if not layouts:
        cl = [False]
    # fp32 contiguous first (the reference), then the likely fastest, so that a budget cut on a
    # loaded machine drops the least promising candidates; the order decides nothing else.
    variants = [Variant(p, c) for p in precisions for c in cl]
    return sorted(variants, key=lambda v: (v != Variant(), -v.channels_last, v.precision))


def restore_rng(device: torch.device) -> Any:
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def choose_teacher(
    teacher: nn.Module, batches: list[Tensor], cfg: TrainingConfig, device: torch.device,
    *, features: bool = False,
) -> tuple[nn.Module, FastChoice]:
    """Pick the teacher's variant; return the module to run (wrapped or not) and the choice."""
    why = opaque_reason(teacher)
    if why is None and features:
        why = "feature/attention losses read its fp32 feature maps by layer name"
    if why is not None:
        return teacher, FastChoice("teacher", Variant(), why)
    layouts = batches[0].dim() == 4 and has_4d_weights(teacher)
    candidates = teacher_candidates(cfg, device, layouts)
    if len(candidates) == 1:  # nothing to choose: no timing
        only = candidates[0]
        return apply_variant(teacher, only, device), FastChoice("teacher", only, "set in the config")
    choice = FastChoice("teacher", candidates[0], "")
    with torch.inference_mode(), restore_rng(device):
        reference = None
        if len(candidates) > 1 and candidates[0] != Variant():  # e.g. bf16 set, layout auto
            reference = apply_variant(teacher, Variant(), device)(batches[0]).float()
        best: float | None = None
        deadline = clock() + BUDGET_S
        for variant in candidates:
            runner = apply_variant(teacher, variant, device)
            try:
                out = runner(batches[0])  # the warm-up pass, and the soft targets to compare
            except (RuntimeError, TypeError, NotImplementedError) as exc:
                choice.refused[variant.label] = f"failed: {str(exc).splitlines()[0][:120]}"
                continue
            if variant == Variant():
                reference = out.float()
            if reference is not None and len(candidates) > 1:
                kl = choice.kl[variant.label] = soft_kl(reference, out)
                if kl > KL_BOUND:
                    choice.refused[variant.label] = f"KL {kl:.2g} > {KL_BOUND:g}"
                    continue
            ms = time_passes(lambda r=runner: [r(b) for b in batches], device, best,
                       warm=len(batches) == 1, deadline=deadline)
            best = keep_fastest(choice, variant, ms, best)
    choice.reason = (
        f"fastest of {len(choice.timings_ms)} measured (auto)" if len(candidates) > 1
        else "set in the config"
    )
    return apply_variant(teacher, choice.variant, device), choice


def keep_fastest(choice: FastChoice, variant: Variant, ms: float | None,
                 best: float | None) -> float | None:
    """Record one candidate's timing on ``choice`` (``None``: given up on as too slow) and
    return the best time so far; the teacher's and the student's choosers share this rule."""
    if ms is None:
        choice.refused[variant.label] = "more than 3x slower than the best"
        return best
    choice.timings_ms[variant.label] = ms
    if best is None or ms < best:
        choice.variant = variant
        return ms
    return best


def first_batches(data: Any, batch_size: int, n: int, device: torch.device) -> list[Tensor]:
    """The first ``n`` training batches in file order (the run's shuffled order is untouched)."""
    from kdgui.engine.training import BatchSource

    out: list[Tensor] = []
    batches: Iterator[Any] = BatchSource(data, batch_size, shuffle=False).epoch()
    for x, _, _ in batches:
        out.append(x.to(device))
        if len(out) == n:
            break
    return out


__all__ = [
    "DTYPES", "KL_BOUND", "KL_TEMPERATURE", "FastChoice", "FastForward", "Variant",
    "apply_variant", "choose_teacher", "first_batches", "layout_input", "opaque_reason",
    "restore_rng", "set_channels_last", "soft_kl", "time_passes",
]
