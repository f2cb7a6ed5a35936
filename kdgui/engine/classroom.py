"""Classroom presets: short lessons on compression trade-offs, as data.

Each lesson is one experiment on the embedded digits data and the bundled demo teacher — a sweep
of one knob, or a single run whose compression stages are the comparison — with the explanation a
teacher reads out, its formula, and what to look at in the plots. Every lesson is sized (epochs,
samples, number of values) to finish within 60 s on two CPU cores; ``bench/bench_classroom.py``
measures that. The lessons run through the ordinary sweep and run machinery, so their folders
open in the history, the report and the window like any other.

Output of ``run_lesson(name, OUT)``: a sweep folder (``OUT/sweep.csv``, one run folder per value,
the lesson text in ``sweep.json``'s ``meta``) or, for a single-run lesson, a run folder with the
lesson text in ``OUT/lesson.json``. The report (:mod:`kdgui.engine.report`) shows the text.

This module imports no torch (the window lists the lessons without loading it).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdgui.core.config import ExperimentConfig, demo_config
from kdgui.core.config_io import (
    apply_overrides,
    atomic_write_text,
    config_from_dict,
    config_to_dict,
)
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event, RunControl
from kdgui.core.run_folders import LESSON_FILE, config_path

#: Settings every lesson shares: few samples, few epochs — sized for two shared CPU cores.
_FAST = (
    "training.log_every=5",
    "training.batch_size=64",
    "training.num_threads=1",
)


@dataclass(frozen=True)
class Lesson:
    """One classroom preset: the text, the base config and what to vary."""

    name: str
    title: str
    explanation: str
    formula: str
    look_at: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    steps: tuple[dict[str, Any], ...] = ()
    vary: str | None = None
    values: tuple[Any, ...] = ()
    size_key: str = "zip_size_bytes"
    value_names: dict[str, str] = field(default_factory=dict)
    #: The ``student`` section, when the lesson needs its own network (e.g. a drawn spec).
    student: dict[str, Any] | None = None
    #: ``"module:function"`` of a lesson with its own experiment (not a sweep or a run), called
    #: as ``function(out_dir, control=..., meta=...)``; see :mod:`kdgui.engine.lessons_kd`.
    runner: str | None = None
    #: The published figure this lesson is measured against (source and numbers), shown beside
    #: what the lesson measures (``kdgui classroom run``, the window's Classroom view, the docs).
    published: str = ""

    def config(self) -> ExperimentConfig:
        """The lesson's base config: the demo, made fast, with the lesson's settings."""
        base = demo_config().model_copy(update={"name": self.name})
        config = apply_overrides(base, [*_FAST, *self.overrides])
        if self.steps or self.student:
            data = config_to_dict(config)
            if self.steps:
                data["compression"] = {"steps": [dict(s) for s in self.steps]}
            if self.student:
                data["student"] = dict(self.student)
            config = config_from_dict(data, source=f"lesson {self.name}")
        return config

    def meta(self) -> dict[str, Any]:
        """The text a report and the window show with the lesson's results."""
        return {"lesson": self.name, "title": self.title, "explanation": self.explanation,
                "formula": self.formula, "look_at": list(self.look_at),
                "published": self.published,
                "value_names": dict(self.value_names)}

    @property
    def runs(self) -> int:
        return len(self.values) if self.vary else 1


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        name="distillation",
        title="What distillation adds",
        explanation=(
            "The same small student is trained three times with the same seed and data: once from the "
            "labels alone (alpha = 0, 'scratch'), once mostly from the teacher's softened outputs "
            "(alpha = 0.9, 'distilled'), and once half and half. Only 180 training images (10%) "
            "are used, and the other 90% measure accuracy: with little data, the teacher's soft "
            "targets carry information the labels do not — which wrong digits "
            "look alike (a 7 resembles a 1 more than an 8).\n\n"
            "The student is about 6× smaller than the teacher in every run; what changes is what "
            "it learns from."
        ),
        formula="L = (1 − α)·CE(y, softmax(z_s)) + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))",
        look_at=(
            "Accuracy against alpha: the distilled student (alpha 0.9) against the scratch one "
            "(alpha 0); the dotted line is the teacher.",
            "The size plot: both students have the same size — distillation changes accuracy, "
            "not the model.",
            "Agreement in the table: how often the student predicts what the teacher predicts.",
        ),
        overrides=("data.val_fraction=0.9", "training.epochs=15", "distill.temperature=4"),
        vary="distill.alpha",
        values=(0.0, 0.5, 0.9),
        value_names={"0": "scratch (labels only)", "0.5": "half and half", "0.9": "distilled"},
        published=("Hinton, Vinyals & Dean 2015, §3 (MNIST, 60,000 training images): a net "
                   "of 2×800 units made 146 test errors trained on the labels and 74 distilled "
                   "from a 2×1200-unit teacher (67 errors) at T = 20."),
    ),
    Lesson(
        name="temperature",
        title="Temperature",
        explanation=(
            "The temperature T divides the teacher's logits before the softmax. At T = 1 the "
            "teacher's output is nearly one-hot; as T grows, the probabilities of the wrong "
            "classes — the 'dark knowledge' — become visible and the student can learn from "
            "them. Too high, and every class looks equally likely.\n\n"
            "The soft loss is multiplied by T² so that its gradients keep the same scale when T "
            "changes (Hinton et al., 2015)."
        ),
        formula="p_i = exp(z_i/T) / Σ_j exp(z_j/T),   L_soft = T²·KL(p_teacher ‖ p_student)",
        look_at=(
            "Accuracy against T: on these small digits the differences are small (about a "
            "point) — the soft targets matter more on harder data; compare T = 1 (close to the "
            "labels again) with T = 4.",
            "Open the soft-target explorer and move the T slider to see the teacher's "
            "distribution flatten.",
        ),
        overrides=("data.val_fraction=0.85", "training.epochs=6", "distill.alpha=1.0"),
        vary="distill.temperature",
        values=(1, 2, 4, 8, 16),
        published=("Hinton et al. 2015, §3 (MNIST): with 300 or more units per hidden layer, "
                   "all temperatures above 8 gave fairly similar results; with 30 units per "
                   "layer, T from 2.5 to 4 worked significantly better than higher or lower."),
    ),
    Lesson(
        name="pruning",
        title="How far can we prune?",
        explanation=(
            "Magnitude pruning sets the smallest weights to zero. A network has many redundant "
            "weights: half of them can usually go at almost no cost, then accuracy falls off a "
            "cliff. Each pruned student is fine-tuned for two epochs with the distillation loss, "
            "which recovers much of the loss.\n\n"
            "Unstructured zeros do not make dense CPU kernels faster — the latency stays the same "
            "— but the file compresses better (zip) and sparse formats can store only non-zeros."
        ),
        formula="w ← 0 where |w| < quantile(|W|, s)   (s = sparsity)",
        look_at=(
            "Accuracy against sparsity: where is the knee?",
            "Accuracy against size: the zip-compressed size shrinks as sparsity grows.",
            "Accuracy against latency: the points stack at the same latency — no speed-up.",
        ),
        overrides=("training.epochs=4",),
        steps=({"kind": "prune", "method": "magnitude",
                "params": {"sparsity": 0.5, "scope": "global"},
                "finetune_epochs": 2, "name": "prune"},),
        vary="prune.sparsity",
        values=(0.0, 0.5, 0.8, 0.9, 0.95, 0.98),
        published=("Han, Pool, Tran & Dally 2015 (Learning both Weights and Connections): "
                   "LeNet-300-100 on MNIST kept 8% of its weights (12× fewer) after pruning "
                   "and retraining, error 1.64% → 1.59%."),
    ),
    Lesson(
        name="bits",
        title="How few bits?",
        explanation=(
            "Quantization stores each weight with fewer bits: 8-bit integers instead of 32-bit "
            "floats are 4× smaller. Here the rounding is simulated (fake quantization) so any "
            "bit width from 8 down to 2 can be tried: the weights are rounded to 2^b levels and "
            "the accuracy measured.\n\n"
            "8 and 6 bits are usually free; somewhere around 4 to 3 bits the rounding error "
            "becomes larger than the network tolerates."
        ),
        formula="w_q = s·clamp(round(w/s), −2^(b−1)+1, 2^(b−1)−1),   s = max|w| / (2^(b−1)−1)",
        look_at=(
            "Accuracy against bits: flat, then a cliff.",
            "The size axis is the effective size, non-zero weights × bits / 8: what the weights "
            "would take stored at b bits (fake quantization itself keeps float32 tensors).",
        ),
        overrides=("training.epochs=4",),
        steps=({"kind": "quantize", "method": "fake", "params": {"bits": 8}, "name": "quantize"},),
        vary="quantize.bits",
        values=(8, 6, 4, 3, 2),
        published=("Han, Mao & Dally 2016 (Deep Compression), AlexNet on ImageNet: weights at "
                   "8 bits in the convolutions and 5 bits in the fully connected layers lost "
                   "no accuracy; with fewer bits the accuracy fell."),
        size_key="effective_bytes",
    ),
    Lesson(
        name="lowrank",
        title="Low-rank",
        explanation=(
            "A weight matrix W (out × in) can be approximated by the product of two thin "
            "matrices of rank r, from its singular value decomposition: r·(in + out) numbers "
            "instead of in·out. Convolutions are decomposed the same way after reshaping the "
            "kernel. The smaller r, the fewer parameters and multiply-adds — and the larger the "
            "approximation error. Each decomposed student is fine-tuned for two epochs."
        ),
        formula="W ≈ U_r Σ_r V_rᵀ,   params: out·in → r·(out + in)",
        look_at=(
            "Accuracy against the rank fraction.",
            "Accuracy against size and latency: unlike unstructured pruning, low rank shrinks "
            "the dense model itself, so size and (for large layers) latency fall.",
        ),
        overrides=("training.epochs=4",),
        steps=({"kind": "lowrank", "method": "conv", "params": {"rank_fraction": 0.5},
                "finetune_epochs": 2, "name": "lowrank"},),
        vary="lowrank.rank_fraction",
        values=(1.0, 0.5, 0.25, 0.125),
        published=("Denton, Zaremba, Bruna, LeCun & Fergus 2014 (Exploiting Linear Structure "
                   "Within Convolutional Networks): low-rank approximations sped up a large "
                   "CNN's convolutional layers about 2× with accuracy within 1% of the "
                   "original."),
        size_key="size_bytes",
    ),
    Lesson(
        name="deep-compression",
        title="The full pipeline (Deep Compression)",
        explanation=(
            "Han et al. (2016) chained three steps: prune the small weights and retrain, quantize "
            "the survivors to a few bits, then entropy-code the result. Here the distilled "
            "student is pruned gradually to 80% sparsity while fine-tuning, then its weights are "
            "rounded to 5 bits; the zip-compressed size stands in for Huffman coding.\n\n"
            "Each stage is measured, so the table shows what each step costs in accuracy and "
            "saves in size."
        ),
        formula="teacher ─distill→ student ─prune s=0.8→ ─quantize 5 bits→ ─zip→",
        look_at=(
            "The compression stages table: accuracy and zip size after each step.",
            "Accuracy against size: each step moves the model left; watch how far it drops.",
            "Latency: only a smaller dense model (distillation) is faster on a CPU here.",
        ),
        overrides=("training.epochs=5",),
        steps=(
            {"kind": "prune", "method": "magnitude",
             "params": {"sparsity": 0.8, "schedule": "gradual", "frequency": 5,
                        "scope": "global"},
             "finetune_epochs": 4, "name": "prune"},
            {"kind": "quantize", "method": "fake", "params": {"bits": 5}, "name": "quantize"},
        ),
        published=("Han, Mao & Dally 2016 (Deep Compression), LeNet-300-100 on MNIST: 40× "
                   "smaller (1,070 KB → 27 KB) after pruning, 5-bit sharing and Huffman coding, "
                   "error 1.64% → 1.58%; pruning alone: 12×."),
    ),
)

#: LeNet-300-100 (Han et al.'s fully connected network), drawn as a student spec.
_LENET_300_100 = {"preset": None, "spec": {"name": "lenet-300-100", "layers": [
    {"type": "flatten"}, {"type": "linear", "out_features": 300}, {"type": "relu"},
    {"type": "linear", "out_features": 100}, {"type": "relu"},
    {"type": "linear", "out_features": 10}]}}

LESSONS += (
    Lesson(
        name="deep-compression-coded",
        title="Deep Compression, all three stages (LeNet-300-100)",
        explanation=(
            "The paper's own pipeline on its own fully connected network, LeNet-300-100: prune "
            "90% of the weights while fine-tuning, then share the survivors — each layer's "
            "weights are clustered by k-means into 2^5 = 32 values and only the 32 centroids "
            "are fine-tuned (each gets the sum of its cluster's gradients), so a weight is "
            "stored as a 5-bit index — and finally Huffman-code the indices and the gaps between "
            "non-zero weights. The coded file (.kdc) is reloaded and checked against the model.\n\n"
            "The stages table puts our size ratio after each stage beside the paper's (12×, "
            "32×, 40× on MNIST). Here the data is the 8×8 digits, so the first layer has 64 "
            "inputs instead of 784 and the absolute sizes are smaller."
        ),
        formula="32 bits → non-zeros only → log2(k) + index bits → Huffman (Σ −p log2 p)",
        look_at=(
            "The Deep Compression table: size ratio after pruning, sharing and coding, beside "
            "the paper's 12×, 32×, 40×.",
            "Accuracy per stage: sharing with fine-tuned centroids costs little; coding costs "
            "nothing (the file decodes to the same weights).",
            "Bits per weight per layer, and how Huffman compares with zlib and lzma on the same "
            "streams.",
        ),
        overrides=("training.epochs=5", "distill.alpha=0.5", "export.formats=[deepc]"),
        steps=(
            {"kind": "prune", "method": "magnitude",
             "params": {"sparsity": 0.9, "schedule": "gradual", "frequency": 5,
                        "scope": "global", "end_fraction": 0.6},
             "finetune_epochs": 4, "name": "prune"},
            {"kind": "quantize", "method": "kmeans", "params": {"fc_bits": 5},
             "finetune_epochs": 1, "name": "share"},
        ),
        student=_LENET_300_100,
        published=("Han, Mao & Dally 2016 (Deep Compression), LeNet-300-100 on MNIST: 12× after "
                   "pruning, 32× after sharing, 40× after Huffman coding (1,070 KB → 27 KB), "
                   "error 1.64% → 1.58%."),
    ),
)

from kdgui.engine.lessons_text import KD_LESSONS  # noqa: E402  (issue 17's lessons, as dicts)

LESSONS += tuple(Lesson(**fields) for fields in KD_LESSONS)

LESSONS_BY_NAME: dict[str, Lesson] = {lesson.name: lesson for lesson in LESSONS}


def get_lesson(name: str) -> Lesson:
    try:
        return LESSONS_BY_NAME[name]
    except KeyError:
        raise ConfigError(f"no classroom preset '{name}'",
                          f"Use one of: {', '.join(LESSONS_BY_NAME)}.") from None


def run_lesson(
    name: str,
    out_dir: str | Path,
    *,
    control: RunControl | None = None,
    run_fn: Any = None,
    data: str | None = None,
) -> Generator[Event, str | None, Any]:
    """Run a lesson into ``out_dir``; yields the sweep's (or the run's) events.

    ``data``: the dataset spec of a lesson with its own experiment (``mnist:ROOT``,
    ``digits``); by default it finds MNIST or falls back to the digits. The other lessons run
    on the embedded digits with the demo teacher, and refuse it.
    """
    lesson = get_lesson(name)
    config = lesson.config()
    control = control or RunControl()
    out = Path(out_dir)
    if data is not None:
        check_lesson_data(lesson, data)
    if lesson.runner:
        from importlib import import_module

        module, _, func = lesson.runner.partition(":")
        runner = getattr(import_module(module), func)
        return (yield from runner(out, control=control, meta=lesson.meta(), spec=data))
    if lesson.vary:
        from kdgui.engine.sweep import run_sweep

        return (yield from run_sweep(config, lesson.vary, list(lesson.values), out,
                                     control=control, run_fn=run_fn, size_key=lesson.size_key,
                                     meta=lesson.meta()))
    if run_fn is None:
        from kdgui.engine.session import run as run_fn
    result = yield from run_fn(config, out, control=control)
    if config_path(out).is_file():
        atomic_write_text(out / LESSON_FILE, json.dumps(lesson.meta(), indent=2) + "\n")
    return result


def check_lesson_data(lesson: Lesson, data: str) -> None:
    """A ``--data`` spec the lesson can use, or a one-line ConfigError saying what can."""
    from pydantic import ValidationError

    from kdgui.core.config import DataConfig

    if not lesson.runner:
        runners = ", ".join(x.name for x in LESSONS if x.runner)
        raise ConfigError(f"the lesson '{lesson.name}' runs on the embedded digits with the demo "
                          "teacher and takes no data", f"Leave --data out; it is for {runners}.")
    try:
        kind = DataConfig(spec=data).spec.partition(":")[0]
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"--data {data}: {message}",
                          "Write mnist:ROOT (ROOT holds MNIST/raw) or digits.") from None
    if kind not in ("mnist", "digits"):
        raise ConfigError(f"the lesson '{lesson.name}' needs MNIST or the digits, not '{kind}'",
                          "Write --data mnist:ROOT (ROOT holds MNIST/raw) or --data digits.")


__all__ = ["LESSONS", "LESSONS_BY_NAME", "LESSON_FILE", "Lesson", "check_lesson_data",
           "get_lesson", "run_lesson"]
