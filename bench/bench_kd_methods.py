"""Every registered distillation method against scratch and plain KD: mean ± std over seeds.

Two protocols, one table. Each cell is the mean ± std over seeds of the validation accuracy at
the **last** epoch (never the best one), and every run goes through the engine (``kdgui.api``,
the same runs and run folders as ``kdgui run``).

* **CPU, runs here** (the default): the MNIST test set in ``../shared/data`` split 8,000 train /
  2,000 validation (ordered, by the data layer's own split), resized to 14×14 (``--image-size``),
  a *small labelled subset* of the
  training images for the student (``--labels``, default 1,000: the other images are unlabelled,
  so they teach only through the teacher, where soft targets matter most). The teacher is trained
  once, on all 8,000 labels, and reused by every run::

      nice .venv/bin/python bench/bench_kd_methods.py [--seeds 3] [--epochs 10] [--labels 1000]
                                                     [--methods KD,DKD,RKD] [--work DIR]

* **The published protocol**, for a machine with the data and a GPU: CIFAR-100, 240 epochs, SGD
  (lr 0.05, momentum 0.9, weight decay 5e-4), batch 64, x0.1 at epochs 150, 180 and 210, random
  crops and flips, every label; printed beside the published numbers::

      python bench/bench_kd_methods.py --data cifar100:ROOT --device cuda \\
          --pair resnet32x4-resnet8x4 [--teacher TRAINED_TEACHER_FILE]

  Without ``--teacher`` the teacher preset is first trained by the same protocol (once).

Loss weights are the authors' (mdistiller / RepDistiller CIFAR configs): KD 0.1 CE + 0.9 KD at
T = 4; DKD CE + DKD(α 1, β 8, T 4, warm-up 20 of 240 epochs, scaled to --epochs); DIST CE +
DIST(β 2, γ 2, T 4); "+LS" is logit standardization (Sun et al. 2024: base T 2, KD weight 9);
RKD CE + RKD (25, 50) and PKT CE + 30000 × PKT/batch on the penultimate embedding; SP CE + 3000 ×
SP on the last feature map; FitNets CE + 100 × hints (automatic stage-end pairs); AT CE + AT at
a weight equivalent to the authors' 1000 (10 on MNIST, 2 on CIFAR; see ``Protocol.at_weight``);
CRD CE + 0.8 × CRD on the penultimate embedding.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kdgui.api as kd  # noqa: E402
from kdgui.core.errors import UserError  # noqa: E402
from kdgui.core.events import Event  # noqa: E402
from kdgui.core.presets import get_preset  # noqa: E402
from kdgui.core.registry import losses  # noqa: E402
from kdgui.core.student_spec import GlobalAvgPool  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "data"

#: Published CIFAR-100 top-1 (%) of the issue's tables (CRD, DKD, DIST, logit-standardization
#: papers; most report the best epoch of one or a few runs).
PUBLISHED: dict[str, dict[str, float]] = {
    "resnet32x4-resnet8x4": {"scratch": 72.50, "KD": 73.33, "CRD": 75.51, "DKD": 76.32,
                             "DIST": 76.31, "DKD+LS": 77.01},
    "resnet56-resnet20": {"scratch": 69.06, "KD": 70.66, "CRD": 71.16, "DKD": 71.97},
}


@dataclass
class Protocol:
    """Everything a bench run needs besides the method's terms."""

    data: str
    pair: tuple[str, str]
    epochs: int
    teacher_epochs: int
    labels: int | None
    training: dict[str, Any]
    data_options: dict[str, Any] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    #: kdgui's AT is the paper's unsquared norm per sample; the authors' code weights (1000) a
    #: squared per-element mean. For the map sizes of each protocol, these weights give about
    #: the same loss: 1000 × ||d|| / (H·W) per pair, with ||d|| ≈ 0.3 (measured).
    at_weight: float = 10.0


def protocol(args: argparse.Namespace) -> Protocol:
    """The CPU protocol, or the published CIFAR-100 one when ``--data cifar100:ROOT``."""
    kind = args.data.partition(":")[0].lower()
    pair = tuple(args.pair.split("-", 1)) if args.pair else None
    if pair is not None and len(pair) != 2:
        raise UserError(f"--pair {args.pair} is not TEACHER-STUDENT",
                        "Write it as e.g. resnet32x4-resnet8x4 (presets: kdgui presets)")
    if kind == "cifar100":
        pair = pair or ("resnet32x4", "resnet8x4")
        training = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                    "batch_size": args.batch or 64, "schedule": "multistep",
                    "lr_milestones": [150 / 240, 180 / 240, 210 / 240], "lr_decay": 0.1}
        return Protocol(args.data, pair, args.epochs or 240, args.teacher_epochs or 240, args.labels,
                        training, {"augment": True, "val_fraction": 0.2},
                        PUBLISHED.get("-".join(pair), {}), at_weight=2.0)
    pair = pair or ("cnn-small", "cnn-tiny")
    training = {"optimizer": "adam", "lr": args.lr or 3e-3, "schedule": "cosine",
                "batch_size": args.batch or 64}
    options: dict[str, Any] = {"split": "ordered", "val_fraction": 0.2}
    if args.image_size:
        options["image_size"] = args.image_size
    return Protocol(args.data, pair, args.epochs or 10, args.teacher_epochs or 3,
                    1000 if args.labels is None else args.labels or None, training, options)


def embedding_layers(preset: str, shape: tuple[int, int, int], classes: int) -> tuple[str, str]:
    """(penultimate embedding, last feature map) of a preset network, by layer name."""
    layers = get_preset(preset).build(shape, classes).layers
    gap = next(i for i, layer in enumerate(layers) if isinstance(layer, GlobalAvgPool))
    return f"layers.{gap}", f"layers.{gap - 1}"


def method_terms(p: Protocol, shape: tuple[int, int, int], classes: int
                 ) -> dict[str, list[dict[str, Any]]]:
    """Each method's loss as terms, with the authors' weights (see the module docstring)."""
    t_emb, t_map = embedding_layers(p.pair[0], shape, classes)
    s_emb, s_map = embedding_layers(p.pair[1], shape, classes)
    emb, last_map = [[t_emb, s_emb]], [[t_map, s_map]]
    warm = round(20 * p.epochs / 240)  # DKD's 20 of 240 epochs, at this run's length
    ce = {"name": "hard", "weight": 1.0}
    table: dict[str, list[dict[str, Any]]] = {
        "scratch": [ce],
        "KD": [{"name": "hard", "weight": 0.1},
               {"name": "soft", "weight": 0.9, "params": {"temperature": 4.0}}],
        "DKD": [ce, {"name": "dkd", "weight": 1.0, "params": {"warmup_epochs": warm}}],
        "DIST": [ce, {"name": "dist", "weight": 1.0,
                      "params": {"beta": 2.0, "gamma": 2.0, "temperature": 4.0}}],
        "KD+LS": [{"name": "hard", "weight": 0.1},
                  {"name": "soft", "weight": 9.0,
                   "params": {"temperature": 2.0, "standardize": True}}],
        "DKD+LS": [ce, {"name": "dkd", "weight": 1.0, "params": {
            "warmup_epochs": warm, "temperature": 2.0, "standardize": True}}],
        "RKD": [ce, {"name": "rkd", "weight": 1.0, "pairs": emb}],
        "PKT": [ce, {"name": "pkt", "weight": 30000.0 / p.training["batch_size"], "pairs": emb}],
        "SP": [ce, {"name": "sp", "weight": 3000.0, "pairs": last_map}],
        "FitNets": [ce, {"name": "feature", "weight": 100.0}],
        "AT": [ce, {"name": "attention", "weight": p.at_weight}],
        "CRD": [ce, {"name": "crd", "weight": 0.8, "pairs": emb}],
    }
    known = set(losses.names())
    return {m: terms for m, terms in table.items() if all(t["name"] in known for t in terms)}


def config(p: Protocol, terms: list[dict[str, Any]], seed: int, teacher: dict[str, Any],
           student: str, *, labels: int | None, epochs: int, device: str, name: str
           ) -> dict[str, Any]:
    data = {"spec": p.data, **p.data_options, "labelled_count": labels}
    return {
        "schema_version": 2, "name": name, "data": data, "teacher": teacher,
        "student": {"preset": student},
        "distill": {"terms": terms},
        "training": {**p.training, "epochs": epochs, "seed": seed, "device": device,
                     "log_every": 1000},
    }


def run_once(cfg: dict[str, Any], out: Path) -> tuple[float, float]:
    """(last epoch's validation accuracy in %, seconds) of one run through the engine."""
    last: list[float] = []

    def on_event(event: Event) -> None:
        if event.kind == "epoch" and getattr(event, "stage", "distill") == "distill":
            last.append(percent(float(event.val_accuracy)))  # type: ignore[attr-defined]

    start = time.perf_counter()
    kd.run_experiment(cfg, out, on_event=on_event)
    if not last:
        raise RuntimeError(f"the run in {out} reported no epoch")
    return last[-1], time.perf_counter() - start


def train_teacher(p: Protocol, args: argparse.Namespace, work: Path) -> tuple[str, float]:
    """The teacher file (``--teacher``, a cached one in WORK, or trained now) and its accuracy."""
    if args.teacher:
        return args.teacher, float("nan")
    out = work / "teacher"
    model = out / "student" / "student.safetensors"
    terms = [{"name": "hard", "weight": 1.0}]
    cfg = config(p, terms, 0, {"arch": "preset:mlp-tiny"}, p.pair[0], labels=None,
                 epochs=p.teacher_epochs, device=args.device, name="bench-teacher")
    if model.is_file() and (out / "summary.json").is_file():
        import json

        summary = json.loads((out / "summary.json").read_text())
        return str(model), percent(float(summary["student"]["accuracy"]))
    acc, secs = run_once(cfg, out)
    print(f"teacher {p.pair[0]}: {acc:.2f}% after {p.teacher_epochs} epochs ({secs:.0f} s), "
          f"cached in {model}", flush=True)
    return str(model), acc


def percent(fraction: float) -> float:
    """The engine reports accuracies as fractions; the tables are in percent."""
    return 100.0 * fraction


def fmt(values: list[float]) -> str:
    if not values:
        return "failed"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def table(results: dict[str, list[float]], errors: dict[str, str], p: Protocol) -> str:
    """The markdown table: method, mean ± std, gain over scratch, published (CIFAR only)."""
    base = statistics.mean(results["scratch"]) if results.get("scratch") else None
    head = "| method | last-epoch val. accuracy (%) | vs scratch |"
    rule = "|---|---:|---:|"
    if p.published:
        head += " published (%) |"
        rule += "---:|"
    lines = [head, rule]
    for method, values in results.items():
        gain = (f"{statistics.mean(values) - base:+.2f}" if values and base is not None
                and method != "scratch" else "")
        row = f"| {method} | {fmt(values) if values else 'failed: ' + errors[method]} | {gain} |"
        if p.published:
            pub = p.published.get(method)
            row += f" {pub:.2f} |" if pub is not None else " |"
        lines.append(row)
    kd_values, scratch = results.get("KD") or [], results.get("scratch") or []
    if len(kd_values) > 1 and len(scratch) > 1:
        gap = statistics.mean(kd_values) - statistics.mean(scratch)
        noise = max(statistics.stdev(kd_values), statistics.stdev(scratch))
        verdict = "beyond" if gap > 2 * noise else "NOT beyond"
        lines.append(f"\nKD − scratch = {gap:+.2f} points; the larger seed std is {noise:.2f}: "
                     f"{verdict} noise (gap > 2 std).")
    return "\n".join(lines)


def main(argv: list[str] | None = None,
         runner: Callable[[dict[str, Any], Path], tuple[float, float]] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=f"mnist:{SHARED_MNIST}",
                        help="mnist:ROOT (CPU protocol, default: the shared MNIST test set) or "
                        "cifar100:ROOT (the published protocol)")
    parser.add_argument("--pair", help="TEACHER-STUDENT presets (default: cnn-small-cnn-tiny; "
                        "resnet32x4-resnet8x4 on CIFAR-100)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="student epochs (CPU 10, CIFAR 240)")
    parser.add_argument("--teacher-epochs", type=int, help="teacher epochs (CPU 3, CIFAR 240)")
    parser.add_argument("--labels", type=int, help="labelled training images for the student "
                        "(CPU default 1000; 0 = all)")
    parser.add_argument("--batch", type=int, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, help="learning rate of the CPU protocol (3e-3)")
    parser.add_argument("--methods", help="comma-separated methods (default: all registered); "
                        "scratch and KD are always run")
    parser.add_argument("--image-size", type=int, default=14, help="resize the CPU protocol's "
                        "images to this size (default 14: 4× fewer operations than 28; 0 = as is)")
    parser.add_argument("--teacher", help="a trained teacher model file (skips training one)")
    parser.add_argument("--work", help="keep run folders and the cached teacher here")
    args = parser.parse_args(argv)
    try:
        p = protocol(args)
        return _bench(p, args, runner or run_once)
    except UserError as exc:
        print(f"error: {exc.what}. {exc.fix}", file=sys.stderr)
        return 2


def _bench(p: Protocol, args: argparse.Namespace,
           runner: Callable[[dict[str, Any], Path], tuple[float, float]]) -> int:
    for name in p.pair:
        get_preset(name)  # an unknown preset is one line naming the known ones
    bundle = kd.load_data(p.data, **{k: v for k, v in p.data_options.items() if k != "augment"})
    shape, classes = tuple(bundle.input_shape), bundle.num_classes
    everything = method_terms(p, shape, classes)
    wanted = ["scratch", "KD", *(args.methods.split(",") if args.methods else everything)]
    unknown = [m for m in wanted if m not in everything]
    if unknown:
        raise UserError(f"unknown method '{unknown[0]}'", f"Use some of: {', '.join(everything)}")
    methods = list(dict.fromkeys(wanted))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.node()} · {os.cpu_count()} CPU cores · load average {load:.2f} · "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"data {p.data}: {len(bundle.train)} train / {len(bundle.val)} val, labels "
          f"{p.labels or 'all'}; {p.pair[0]} → {p.pair[1]}; {p.epochs} epochs, seeds "
          f"{args.seeds}, {p.training}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        teacher_file, teacher_acc = train_teacher(p, args, work)
        teacher = {"path": teacher_file}
        results: dict[str, list[float]] = {}
        errors: dict[str, str] = {}
        start = time.perf_counter()
        for method in methods:
            results[method] = []
            for seed in range(args.seeds):
                cfg = config(p, everything[method], seed, teacher, p.pair[1], labels=p.labels,
                             epochs=p.epochs, device=args.device, name=f"{method}-{seed}")
                try:
                    acc, secs = runner(cfg, work / f"{method.replace('+', '-')}-s{seed}")
                except UserError as exc:
                    errors[method] = f"{exc.what}"
                    print(f"{method} seed {seed}: {exc.what}", flush=True)
                    break
                results[method].append(acc)
                print(f"{method:<8} seed {seed}: {acc:6.2f}%  ({secs:.0f} s)", flush=True)
        print(f"\nteacher {p.pair[0]} {teacher_acc:.2f}%; {time.perf_counter() - start:.0f} s "
              f"for {len(methods)} methods × {args.seeds} seeds\n")
        print(table(results, errors, p))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
