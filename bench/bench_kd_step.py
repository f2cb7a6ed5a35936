"""Time the engine's KD step against a plain hand-written KD loop, in one process.

Three variants, each with its own copy of the same student and its own SGD optimizer:

(a) ``plain``:  a hand-written KD step, teacher run every step (the baseline);
(b) ``engine``: :class:`kdgui.engine.distill.Distiller` with the teacher online;
(c) ``cached``: the Distiller given the teacher's logits, precomputed once per batch;
(d) ``plain-cached``: the hand-written step on the same cached logits (a diagnostic, no bar: it
    tells the engine's overhead apart from what the machine gives a student-only step);
(e) ``engine-auto``: the engine's online step with ``training.teacher_precision``,
    ``student_precision`` and ``channels_last`` all ``auto``: the precision and layout chosen by
    :mod:`kdgui.engine.fast_path` on these models and batches, and torch's CPU threads chosen
    as a run chooses them (1 when a whole step is faster on one thread: on a busy machine), printed
    with e/a (bar: ≥ 2 on an AMD EPYC with avx512_bf16; on a CPU where bf16 is slower, auto must
    not fall below fp32);
(f) ``plain-fast``: the hand-written step with the engine's choices (a diagnostic, no bar: e/f
    near 1 says the engine loses nothing to a hand-written loop given the same choices).

``--mode run`` times a whole run instead: the engine's session (what ``kdgui run`` runs) with the
teacher online (cache off), 1 epoch of MNIST (``--data``), against a plain fp32 loop over the
same prepared models and data in the same process; samples/s are the steps' own medians.

CNN teacher of width 64 → student of width 8 on 1×28×28 inputs, batch 256, SGD. Repetitions are
interleaved (the order rotates every round) so that a neighbour's load on this shared machine hits
all variants alike, and medians are reported; the cheap cached steps run 4× as many batches per
round so that their timing windows are not too short to measure. Rounds stop early once
``--budget`` seconds are spent (at least 3 rounds), which keeps a run under about a minute.
Bars: b/a ≥ 0.95 and c/a ≥ 2.5; with ``--check`` a failed bar exits 1.

On a shared machine whose cores are busy, torch's default of one thread per core oversubscribes
them and the short student-only steps suffer most (their spread gets wide); ``--threads 1`` then
gives steadier numbers. ``c/d`` near 1 shows that a low ``c/a`` is the machine, not the engine.

    .venv/bin/python bench/bench_kd_step.py [--check] [--rounds 9] [--steps 2] [--budget 40]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kdgui.core.config import DistillConfig
from kdgui.engine.distill import Distiller

BATCH = 256
INPUT = (1, 28, 28)
ALPHA, T = 0.7, 4.0
BARS = {"engine": 0.95, "cached": 2.5, "engine-auto": 2.0}


def cnn(width: int, classes: int = 10) -> nn.Module:
    """A small VGG-style CNN: two stages at 28×28 and 14×14, then pooling and a linear head."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, classes),
    )  # fmt: skip


def plain_step(
    teacher: nn.Module,
    student: nn.Module,
    opt: torch.optim.Optimizer,
    cache: dict[int, torch.Tensor] | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The hand-written KD step that the engine must keep up with."""

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        if cache is not None:
            t_logits = cache[id(x)]
        else:
            with torch.no_grad():
                t_logits = teacher(x)
        s_logits = student(x)
        soft = F.kl_div(
            F.log_softmax(s_logits / T, dim=1), F.softmax(t_logits / T, dim=1),
            reduction="batchmean",
        ) * (T * T)  # fmt: skip
        loss = (1 - ALPHA) * F.cross_entropy(s_logits, y) + ALPHA * soft
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def plain_fast_step(
    teacher: Callable[[torch.Tensor], torch.Tensor], student: nn.Module,
    opt: torch.optim.Optimizer, channels_last: bool,
) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The hand-written step with its teacher run as the engine chose (a diagnostic)."""

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        plain_step(None, student, opt, {id(x): teacher(x)})(x, y)  # type: ignore[arg-type]

    return run


def engine_step(
    distiller: Distiller, opt: torch.optim.Optimizer, cache: dict[int, torch.Tensor] | None
) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The engine's step; with ``cache`` the teacher's logits come from the cache."""

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        cached = cache[id(x)] if cache is not None else None
        terms, _ = distiller(x, y, cached)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    return step


def engine_auto(
    teacher: nn.Module, student: nn.Module, cfg: DistillConfig, x: torch.Tensor
) -> tuple[Distiller, bool, int, str]:
    """The engine's fast path on these models, chosen as a run chooses it (threads first, then
    the teacher's and the student's variants): (distiller, student channels_last, threads,
    description)."""
    from kdgui.core.config import TrainingConfig
    from kdgui.engine import fast_path, fast_student

    tcfg = TrainingConfig(batch_size=BATCH)
    device = torch.device("cpu")
    probe = copy.deepcopy(student).train()

    def whole_step() -> None:
        with torch.inference_mode():
            teacher(x)
        fast_student.student_pass(probe, x, fast_path.Variant(), device)

    threads, ms = fast_student.choose_threads(whole_step, device, tcfg)
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runner, t_choice = fast_path.choose_teacher(teacher, [x], tcfg, device)
        s_choice = fast_student.choose_student(student, x, tcfg, device)
    finally:
        torch.set_num_threads(default)
    fast_path.set_channels_last(student, s_choice.variant.channels_last)
    figures = ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
    text = (f"threads: {threads} ({figures or 'not measured'})\n      teacher: "
            f"{t_choice.sentence()}\n      student: {s_choice.sentence()}")
    return Distiller(runner, student, cfg, INPUT), s_choice.variant.channels_last, threads, text


def on_threads(threads: int, step: Callable[[torch.Tensor, torch.Tensor], None]
               ) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """``step`` run with torch's CPU threads set to ``threads`` (as a run sets them), then put
    back, so the other variants in this process keep the default."""

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        default = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            step(x, y)
        finally:
            torch.set_num_threads(default)

    return run


def auto_step(
    distiller: Distiller, opt: torch.optim.Optimizer, channels_last: bool
) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The engine's online step on its fast path (as :class:`TrainLoop` runs it)."""
    from kdgui.engine.fast_path import layout_input

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        terms, _ = distiller(layout_input(x, channels_last), y, None)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    return step


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # not on every platform
        return "n/a"


def run_mode(data: str, check: bool, rounds: int) -> int:
    """A whole run (teacher online, 1 epoch) vs a plain fp32 loop on the same prepared models."""
    import tempfile

    from kdgui.core.config import ExperimentConfig
    from kdgui.core.events import RunStarted, StepEvent
    from kdgui.engine.device import seed_everything
    from kdgui.engine.session import prepare, run
    from kdgui.engine.training import BatchSource

    cfg = ExperimentConfig(
        name="bench", data={"spec": data},
        training={"epochs": 1, "batch_size": BATCH, "cache_teacher": "off", "log_every": 5},
    )
    engine_rates: list[float] = []
    plain_rates: list[float] = []
    chosen = ""
    for r in range(max(1, rounds)):
        for which in (["engine", "plain"] if r % 2 == 0 else ["plain", "engine"]):
            if which == "engine":
                rates = []
                with tempfile.TemporaryDirectory() as d:
                    for ev in run(cfg, runs_root=d):
                        if isinstance(ev, RunStarted):
                            fp = ev.fast_path
                            chosen = f"teacher {fp['teacher']['label']}, " \
                                     f"student {fp['student']['label']}, " \
                                     f"{fp['teacher'].get('threads', '?')} thread(s)"
                        if isinstance(ev, StepEvent) and ev.stage == "distill":
                            rates.append(ev.samples_per_s)
                engine_rates.append(statistics.median(rates[1:] or rates))  # 1st: warm-up
                continue
            seed_everything(cfg.training.seed)
            prep = prepare(cfg)
            teacher = prep.teacher.eval().requires_grad_(False)
            student = prep.student.train()
            opt = torch.optim.Adam(student.parameters(), lr=cfg.training.lr)
            step = plain_step(teacher, student, opt)
            source = BatchSource(prep.train, BATCH, shuffle=True, seed=cfg.training.seed)
            rates, t0, n = [], time.perf_counter(), 0
            for i, (x, y, _) in enumerate(source.epoch(), start=1):
                step(x, y.long())
                n += int(y.shape[0])
                if i % 5 == 0:
                    now = time.perf_counter()
                    rates.append(n / (now - t0))
                    t0, n = now, 0
            plain_rates.append(statistics.median(rates[1:] or rates))
    eng, pl = statistics.median(engine_rates), statistics.median(plain_rates)
    ratio = eng / pl
    ok = ratio >= BARS["engine-auto"]
    print(f"load average {load_average()}")
    print(f"whole run, {data}, 1 epoch, batch {BATCH}, teacher online, {torch.get_num_threads()} "
          f"threads, {len(engine_rates)} rounds; chosen: {chosen}")
    print(f"  engine run   {eng:9.0f} samples/s  {[round(v) for v in engine_rates]}")
    print(f"  plain fp32   {pl:9.0f} samples/s  {[round(v) for v in plain_rates]}")
    print(f"  run/plain = {ratio:.3f}  (bar >= {BARS['engine-auto']})  {'ok' if ok else 'FAIL'}")
    return 1 if (check and not ok) else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a bar fails")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median taken)")
    ap.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    ap.add_argument("--budget", type=float, default=40.0, help="seconds of timed rounds, at most")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--mode", choices=["step", "run"], default="step",
                    help="'step': the KD step variants; 'run': a whole run vs a plain loop")
    ap.add_argument("--data", default="mnist:/work/shared/data", help="data spec for --mode run")
    ap.add_argument("--run-rounds", type=int, default=2, help="engine/plain pairs for --mode run")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "run":
        return run_mode(args.data, args.check, args.run_rounds)

    torch.manual_seed(0)
    teacher = cnn(64).eval().requires_grad_(False)
    student0 = cnn(8)
    batches = [
        (torch.randn(BATCH, *INPUT), torch.randint(0, 10, (BATCH,))) for _ in range(args.steps)
    ]
    cfg = DistillConfig(alpha=ALPHA, temperature=T)

    s_plain, s_engine, s_cached, s_plain_cached, s_auto = (
        copy.deepcopy(student0) for _ in range(5)
    )
    t_auto = copy.deepcopy(teacher)  # the fast path changes its teacher's layout in place
    d_auto, auto_cl, threads, chosen = engine_auto(t_auto, s_auto, cfg, batches[0][0])
    # (f) a diagnostic: the hand-written step with the engine's choices (teacher variant,
    # student layout, threads), to tell the engine's own overhead apart from what they give.
    s_plain_fast = copy.deepcopy(student0)
    from kdgui.engine.fast_path import set_channels_last
    set_channels_last(s_plain_fast, auto_cl)
    d_engine = Distiller(teacher, s_engine, cfg, INPUT)
    d_cached = Distiller(teacher, s_cached, cfg, INPUT)
    cache = {id(x): d_cached.teacher_logits(x) for x, _ in batches}

    def sgd(params: object) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)  # type: ignore[arg-type]

    steps = {
        "plain": plain_step(teacher, s_plain, sgd(s_plain.parameters())),
        "engine": engine_step(d_engine, sgd(d_engine.trainable_parameters()), None),
        "cached": engine_step(d_cached, sgd(d_cached.trainable_parameters()), cache),
        "plain-cached": plain_step(
            teacher, s_plain_cached, sgd(s_plain_cached.parameters()), cache
        ),
        "engine-auto": on_threads(threads, auto_step(d_auto, sgd(d_auto.trainable_parameters()),
                                                     auto_cl)),
        "plain-fast": on_threads(threads, plain_fast_step(
            d_auto.teacher_logits, s_plain_fast, sgd(s_plain_fast.parameters()), auto_cl)),
    }
    repeat = {"plain": 1, "engine": 1, "cached": 4, "plain-cached": 4, "engine-auto": 1,
              "plain-fast": 1}
    for model in (s_plain, d_engine, d_cached, s_plain_cached, d_auto, s_plain_fast):
        model.train()

    for fn in steps.values():  # warm-up: allocator, kernels, optimizer state
        fn(*batches[0])

    rates: dict[str, list[float]] = {k: [] for k in steps}
    names = list(steps)
    t_start = time.perf_counter()
    rounds = 0
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn, work = steps[name], batches * repeat[name]
            t0 = time.perf_counter()
            for x, y in work:
                fn(x, y)
            rates[name].append(len(work) * BATCH / (time.perf_counter() - t0))
        rounds += 1
        if rounds >= 3 and time.perf_counter() - t_start > args.budget:
            break
    elapsed = time.perf_counter() - t_start

    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"load average {load_average()}")
    print(
        f"KD step, teacher cnn(64) -> student cnn(8), {INPUT}, batch {BATCH}, SGD, "
        f"{torch.get_num_threads()} threads, {rounds} rounds x {args.steps} steps "
        f"({elapsed:.1f} s timed)"
    )
    for k in names:
        lo, hi = min(rates[k]), max(rates[k])
        tag = "abcdef"[names.index(k)]
        print(f"  ({tag}) {k:12s} {med[k]:9.0f} samples/s  [{lo:.0f} .. {hi:.0f}]")
    failed = False
    for k, bar in BARS.items():
        ratio = med[k] / med["plain"]
        ok = ratio >= bar
        failed |= not ok
        label = {"engine": "b/a", "cached": "c/a", "engine-auto": "e/a"}[k]
        print(f"  {label} = {ratio:.3f}  (bar >= {bar})  {'ok' if ok else 'FAIL'}")
    print(
        f"  diagnostics: c/d = {med['cached'] / med['plain-cached']:.3f} (engine vs plain, "
        f"cached), d/a = {med['plain-cached'] / med['plain']:.3f} (what caching gives here)"
    )
    print(f"  diagnostics: e/f = {med['engine-auto'] / med['plain-fast']:.3f} (engine vs the "
          f"hand-written step with the same choices), f/a = "
          f"{med['plain-fast'] / med['plain']:.3f} (what the choices give a hand-written loop)")
    print(f"  chosen (e): {chosen}")
    return 1 if (failed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
