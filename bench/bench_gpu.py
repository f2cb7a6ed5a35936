"""The engine's KD step against a plain hand-written loop on a CUDA GPU, in one process.

Two pairs: torchvision ResNet-50 → ResNet-18 at 3×224×224 (1,000 classes), and the CIFAR pair
of the distillation literature, ``preset:resnet32x4`` → ``preset:resnet8x4`` at 3×32×32 (100
classes; torchvision ResNet-50 → ResNet-18 at 32×32 where those presets are missing). For each,
on the same models and batches (kept on the GPU, so both loops time the step, not a copy):

- ``plain``: a hand-written KD step (teacher under ``no_grad``, KL at T plus cross-entropy, SGD);
- ``engine``: the engine's own :class:`~kdgui.engine.train_loop.TrainLoop` over a
  :class:`~kdgui.engine.distill.Distiller` (what ``kdgui run`` trains with), teacher online;
- ``cached``: the engine with the teacher's logits computed once (``training.cache_teacher``);
- each with AMP (fp16 autocast + GradScaler) and without, and the engine with ``torch.compile``
  of student and teacher against eager.

Printed next to the figures: engine ≥ 0.95× plain, cached ≥ 3× online, AMP ≥ 1.5× fp32. With
several GPUs, a DDP scaling line times ``kdgui run --nproc 1`` against ``--nproc N`` on the same
config (whole commands, start-up included).

Without a GPU it says so in one line and exits 0; ``--allow-cpu`` then runs a tiny CPU smoke of
the same code paths (small preset models, batches and inputs, a few steps; compile only with
``--compile``; ``--smoke-real-models`` loads the pairs' own models).

    .venv/bin/python bench/bench_gpu.py [--steps 20] [--pairs imagenet cifar] [--no-compile]
    .venv/bin/python bench/bench_gpu.py --allow-cpu      # CPU smoke (seconds)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ALPHA, T = 0.7, 4.0
TARGETS = {"engine/plain": 0.95, "cached/online": 3.0, "amp/fp32": 1.5}


@dataclass(frozen=True)
class Pair:
    name: str
    teacher: str
    student: str
    shape: tuple[int, int, int]
    classes: int
    batch: int


PAIRS = {
    "imagenet": Pair("imagenet", "torchvision:resnet50", "torchvision:resnet18", (3, 224, 224),
                     1000, 64),
    "cifar": Pair("cifar", "preset:resnet32x4", "preset:resnet8x4", (3, 32, 32), 100, 128),
}
#: The CPU smoke: the same code paths at sizes that take seconds on a CPU (small preset models
#: in place of each pair's, unless ``--smoke-real-models``).
SMOKE = {"shape": (3, 32, 32), "classes": 10, "batch": 4, "steps": 2,
         "teacher": "preset:resnet-tiny", "student": "preset:cnn-small"}


def load(arch: str, shape: tuple[int, int, int], classes: int) -> nn.Module:
    from kdgui.core.config import ModelRef
    from kdgui.engine.models import load_model

    return load_model(ModelRef(arch=arch, num_classes=classes), input_shape=shape,
                      num_classes=classes).module


def models(pair: Pair, shape: tuple[int, int, int], classes: int) -> tuple[nn.Module, nn.Module,
                                                                          str]:
    """Teacher, student and their names (the CIFAR presets, else torchvision at 32×32)."""
    try:
        return load(pair.teacher, shape, classes), load(pair.student, shape, classes), \
            f"{pair.teacher} -> {pair.student}"
    except Exception:  # presets not in this version: the fallback pair
        if pair.name != "cifar":
            raise
        t, s = "torchvision:resnet50", "torchvision:resnet18"
        return load(t, shape, classes), load(s, shape, classes), f"{t} -> {s} (fallback)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch(teacher: nn.Module, student: nn.Module, opt: torch.optim.Optimizer,
                batches: list[tuple[torch.Tensor, torch.Tensor]], amp: bool,
                scaler: torch.amp.GradScaler | None,
                cached: list[torch.Tensor] | None = None) -> None:
    """The hand-written KD loop a researcher writes (the baseline)."""
    device = batches[0][0].device
    for i, (x, y) in enumerate(batches):
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            if cached is not None:
                t_logits = cached[i]
            else:
                with torch.no_grad():
                    t_logits = teacher(x)
            s_logits = student(x)
            soft = F.kl_div(F.log_softmax(s_logits.float() / T, 1),
                            F.softmax(t_logits.float() / T, 1), reduction="batchmean") * T * T
            loss = (1 - ALPHA) * F.cross_entropy(s_logits.float(), y) + ALPHA * soft
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()


def engine_runner(teacher: nn.Module, student: nn.Module, batches: list, amp: bool,
                  cached: bool, shape: tuple[int, int, int]) -> Callable[[], None]:
    """One epoch of the engine's TrainLoop over ``batches`` (no events mid-epoch but the end's)."""
    from torch.utils.data import TensorDataset

    from kdgui.core.config import DistillConfig
    from kdgui.engine.distill import Distiller
    from kdgui.engine.train_loop import Phase, TrainLoop
    from kdgui.engine.training import BatchSource

    device = batches[0][0].device
    distiller = Distiller(teacher, student, DistillConfig(alpha=ALPHA, temperature=T), shape,
                          device=device).to(device)
    data = TensorDataset(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
    source = BatchSource(data, len(batches[0][0]), shuffle=False)
    cache = None
    if cached:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            cache = torch.cat([distiller.teacher_logits(x).float() for x, _ in batches])
    opt = torch.optim.SGD(distiller.trainable_parameters(), lr=0.01, momentum=0.9)
    loop = TrainLoop(device, log_every=10**9, amp=amp)
    phase = Phase(stage="distill", distiller=distiller, source=source, optimizer=opt,
                  scheduler=None, epochs=1, lr_setting="bench", cache=cache,
                  report_sparsity=False)

    def epoch() -> None:
        for _ in loop.run(phase):
            pass

    return epoch


def timed(fn: Callable[[], None], device: torch.device, rounds: int) -> float:
    """Median seconds of ``rounds`` calls after one warm-up call (compilation, cuDNN tuning)."""
    fn()
    sync(device)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_pair(pair: Pair, device: torch.device, steps: int, rounds: int, smoke: bool,
               compile_: bool, real_models: bool = False) -> list[str]:
    shape = SMOKE["shape"] if smoke else pair.shape
    classes = SMOKE["classes"] if smoke else pair.classes
    batch = SMOKE["batch"] if smoke else pair.batch
    torch.manual_seed(0)
    if smoke and not real_models:
        pair = Pair(pair.name, str(SMOKE["teacher"]), str(SMOKE["student"]), shape, classes,
                    batch)
    teacher, student0, names = models(pair, shape, classes)
    teacher = teacher.to(device).eval().requires_grad_(False)
    if device.type == "cuda":
        teacher = teacher.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch, *shape, generator=gen).to(device),
                torch.randint(0, classes, (batch,), generator=gen).to(device))
               for _ in range(steps)]
    amp_modes = [False, True] if device.type == "cuda" else [False]
    sec: dict[str, float] = {}  # seconds per timed epoch
    for amp in amp_modes:
        tag = "amp" if amp else "fp32"
        s = copy.deepcopy(student0).to(device).train()
        opt = torch.optim.SGD(s.parameters(), lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda") if amp else None
        sec[f"plain {tag} online"] = timed(
            lambda s=s, opt=opt, scaler=scaler, amp=amp: plain_epoch(teacher, s, opt, batches,
                                                                     amp, scaler), device, rounds)
        for cached in (False, True):
            run = engine_runner(teacher, copy.deepcopy(student0).to(device), batches, amp, cached,
                                shape)
            sec[f"engine {tag} {'cached' if cached else 'online'}"] = timed(run, device, rounds)
    if compile_:
        t_c, s_c = torch.compile(teacher), copy.deepcopy(student0).to(device)
        s_c.compile()
        sec["engine fp32 online compiled"] = timed(
            engine_runner(t_c, s_c, batches, False, False, shape), device, rounds)
    samples = steps * batch
    lines = [f"pair {pair.name}: {names}, {'x'.join(map(str, shape))}, {classes} classes, "
             f"batch {batch}, {steps} steps x {rounds} rounds, {device}"]
    for k, v in sec.items():
        lines.append(f"  {k:28s} {samples / v:10.1f} samples/s")
    if device.type != "cuda":
        lines.append("  amp: CUDA only (fp16 autocast + GradScaler); not in the CPU smoke")
    lines += ratios(sec, compile_)
    return lines


def ratios(sec: dict[str, float], compiled: bool) -> list[str]:
    """The ratios with their targets (faster = fewer seconds, so a ratio is base/variant)."""
    out = []

    def line(label: str, base: str, variant: str, target: float | None) -> None:
        if base in sec and variant in sec:
            r = sec[base] / sec[variant]
            mark = "" if target is None else f"  (target >= {target})  " + (
                "ok" if r >= target else "BELOW")
            out.append(f"  {label:34s} {r:6.2f}x{mark}")

    for tag in ("fp32", "amp"):
        line(f"engine/plain ({tag}, online)", f"plain {tag} online", f"engine {tag} online",
             TARGETS["engine/plain"])
        line(f"cached/online (engine, {tag})", f"engine {tag} online", f"engine {tag} cached",
             TARGETS["cached/online"])
    line("amp/fp32 (engine, online)", "engine fp32 online", "engine amp online",
         TARGETS["amp/fp32"])
    line("amp/fp32 (plain, online)", "plain fp32 online", "plain amp online", None)
    if compiled:
        line("compiled/eager (engine, fp32 online)", "engine fp32 online",
             "engine fp32 online compiled", None)
    else:
        out.append("  compile: not measured (--compile; on a CPU smoke it takes minutes)")
    return out


def ddp_line(gpus: int, timeout: float) -> str:
    """``kdgui run --nproc 1`` vs ``--nproc N`` on one config, or why it is skipped."""
    if gpus < 2:
        return f"DDP scaling: skipped (needs 2 or more GPUs; {gpus} here)"
    from kdgui.core.config import demo_config
    from kdgui.core.config_io import dump_config

    cfg = demo_config()
    cfg.training.epochs, cfg.training.batch_size, cfg.training.device = 4, 256, "cuda"
    walls = {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ddp.yaml"
        path.write_text(dump_config(cfg), encoding="utf-8")
        for n in (1, gpus):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "kdgui", "run", str(path), "--nproc",
                                   str(n), "--out", str(Path(d) / f"n{n}"), "--quiet"],
                                  capture_output=True, text=True, timeout=timeout, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                return f"DDP scaling: --nproc {n} failed (exit {done.returncode}): {tail[0]}"
            walls[n] = time.perf_counter() - t0
    return (f"DDP scaling (whole kdgui run, start-up included): 1 GPU {walls[1]:.1f} s, "
            f"{gpus} GPUs {walls[gpus]:.1f} s, speed-up {walls[1] / walls[gpus]:.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allow-cpu", action="store_true",
                    help="without a GPU, run a tiny CPU smoke of the same code paths")
    ap.add_argument("--steps", type=int, default=20, help="batches per timed epoch")
    ap.add_argument("--rounds", type=int, default=3, help="timed epochs per variant (median)")
    ap.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=["imagenet", "cifar"])
    ap.add_argument("--compile", dest="compile_", action="store_true", default=None,
                    help="also time torch.compile (the default on a GPU)")
    ap.add_argument("--no-compile", dest="compile_", action="store_false")
    ap.add_argument("--ddp-timeout", type=float, default=600.0)
    ap.add_argument("--smoke-real-models", action="store_true",
                    help="the CPU smoke loads each pair's own models (slow on a CPU)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(f"bench_gpu: no CUDA GPU here (torch {torch.__version__}); nothing measured "
              "(--allow-cpu runs a CPU smoke of the same code paths)")
        return 0
    device = torch.device("cuda" if cuda else "cpu")
    smoke = not cuda
    steps, rounds = (SMOKE["steps"], 1) if smoke else (args.steps, args.rounds)
    compile_ = args.compile_ if args.compile_ is not None else not smoke
    where = torch.cuda.get_device_name(device) if cuda else f"CPU smoke, {os.cpu_count()} cores"
    print(f"bench_gpu: {where}, torch {torch.__version__}"
          + ("" if cuda else " (no GPU: tiny sizes, figures mean nothing)"))
    if cuda:
        torch.backends.cudnn.benchmark = True
    for name in args.pairs:
        for text in bench_pair(PAIRS[name], device, steps, rounds, smoke, compile_,
                               args.smoke_real_models):
            print(text, flush=True)
    print(ddp_line(torch.cuda.device_count() if cuda else 0, args.ddp_timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
