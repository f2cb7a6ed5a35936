"""Two classroom lessons that reproduce published distillation results (issue 17).

* ``missing-digit`` (Hinton, Vinyals & Dean 2015, §3): a teacher trained on every digit; a
  student distilled on a transfer set with every 3 removed (``data.exclude_classes``). The
  student never sees a 3, yet recognises most of them from the teacher's soft targets; raising
  its class-3 output bias (:mod:`kdgui.engine.bias_correction`, shift computed from data)
  recovers most of the rest. A student trained on the same set from labels alone gets no 3
  right: that is the comparison.
* ``unlabelled``: a student trained from 100 labels against the same student distilled on the
  whole training split with its labels hidden (``data.labelled_count``), the hard loss seeing
  only those same 100 labels (:class:`kdgui.engine.distill.losses.HardLoss` skips label -1).

Both use MNIST when its files are found (the 10,000-image test set is enough: 8,000 train,
2,000 validation) and fall back to the embedded 8×8 digits otherwise. The networks are small
MLPs trained with plain loops (no run folder machinery) so that each lesson finishes in under
60 s on two CPU cores; the losses are the engine's own. Results go to ``OUT/lesson.json`` (the
lesson text, the paper's numbers beside the measured ones, per-class accuracy) and
``OUT/per_class.png`` when matplotlib is installed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kdgui.core.components.distill import HardParams, SoftParams
from kdgui.core.config import DataConfig
from kdgui.core.config_io import atomic_write_text
from kdgui.core.events import Event, JobFinished, JobProgress, LogEvent, RunControl
from kdgui.engine.bias_correction import (
    apply_shifts,
    frequency_matching_shifts,
    per_class_accuracy,
    teacher_shares,
)
from kdgui.engine.data.load import load_data
from kdgui.engine.device import one_thread
from kdgui.engine.distill.losses import HardLoss, SoftTargetLoss
from kdgui.engine.lessons_kd_results import (
    PAPER_MISSING_DIGIT,
    bar_chart,
    missing_digit_compare,
    missing_digit_lines,
)

#: Where the lessons look for MNIST (a root holding MNIST/raw), after ``--data`` and
#: $KDGUI_MNIST_ROOT: a ``data`` folder beside where the lesson is run, and this project's
#: shared data folder.
MNIST_ROOTS = ("data", "/work/shared/data")
#: Class the missing-digit lesson removes (the paper's).
MISSING = 3


def mnist_places() -> list[str]:
    """The folders searched for MNIST, in order ($KDGUI_MNIST_ROOT first when set)."""
    return [r for r in (os.environ.get("KDGUI_MNIST_ROOT", ""), *MNIST_ROOTS) if r]


def lesson_data_spec() -> str:
    """``mnist:ROOT`` when the MNIST files are present, else the embedded ``digits``."""
    for root in mnist_places():
        raw = Path(root) / "MNIST" / "raw"
        if raw.is_dir() and any(raw.glob("*idx1*")):
            return f"mnist:{root}"
    return "digits"


def _data_lines(spec: str, chosen: bool) -> list[str]:
    """What data the lesson runs on, and — on the digits fallback — how to give it MNIST."""
    if spec.startswith("mnist") or chosen:
        return []
    return [f"MNIST was not found (looked for MNIST/raw in: {', '.join(mnist_places())}), so "
            "this runs on the embedded 8×8 digits (1,797 images): the lesson works, but its "
            "effect is smaller and the paper's numbers are not reached there.",
            "For MNIST: pass --data mnist:ROOT (ROOT holds MNIST/raw; the two t10k files of "
            "the 10,000-image test set are enough) or set KDGUI_MNIST_ROOT=ROOT."]


def _arrays(cfg: DataConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Flattened train/val inputs and labels of ``cfg``'s data, and the number of classes."""
    bundle = load_data(cfg)
    x_tr, y_tr = bundle.train.tensors  # type: ignore[attr-defined]
    x_va, y_va = bundle.val.tensors  # type: ignore[attr-defined]
    return x_tr.flatten(1), y_tr, x_va.flatten(1), y_va, bundle.num_classes


def mlp(inputs: int, hidden: int, classes: int, dropout: float = 0.0,
        seed: int = 0) -> nn.Sequential:
    """Two hidden ReLU layers: the paper's MNIST nets (there 1200/800 units; smaller here),
    initialised from ``seed`` so that a lesson gives the same numbers every time."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, classes))


def train(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, seed: int,
          teacher_logits: Tensor | None = None, alpha: float = 0.0, temperature: float = 1.0,
          control: RunControl | None = None, batch_size: int = 128, lr: float = 1e-3) -> None:
    """``(1 − α)·hard + α·soft`` with the engine's losses; label -1 samples skip the hard term."""
    torch.manual_seed(seed)
    hard, soft = HardLoss(HardParams()), SoftTargetLoss(SoftParams(temperature=temperature))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            out = model(x[idx])
            loss = (1 - alpha) * hard(out, y[idx]) if alpha < 1 else out.sum() * 0.0
            if teacher_logits is not None and alpha > 0:
                loss = loss + alpha * soft(out, teacher_logits[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if control is not None:
                control.wait_while_paused()
                if control.stop_requested:
                    return
    model.eval()


@torch.no_grad()
def logits_of(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    return torch.cat([model(x[i:i + 1024]) for i in range(0, len(x), 1024)])


def _accuracy(logits: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(y)).mean())


def _sizes(spec: str) -> dict[str, Any]:
    """Network sizes and epochs per dataset: sized for 60 s on two cores."""
    if spec.startswith("mnist"):
        return {"teacher_hidden": 512, "student_hidden": 300, "teacher_epochs": 6,
                "student_epochs": 6, "labels": 100, "dropout": 0.2}
    return {"teacher_hidden": 256, "student_hidden": 128, "teacher_epochs": 30,
            "student_epochs": 40, "labels": 50, "dropout": 0.1}


class _Stopped(Exception):
    """Raised by :meth:`_Lesson.step` when the user stopped the lesson."""


class _Lesson:
    """Progress events and the shared teacher of both lessons."""

    def __init__(self, name: str, out: Path, control: RunControl, total: int) -> None:
        self.name, self.out, self.control, self.total, self.done = name, out, control, total, 0
        self.start = time.perf_counter()

    def step(self, message: str, last: bool = False) -> Generator[Event, None, None]:
        """A progress event (the window's bar) and the same words as a log line (the CLI);
        then, when a stop was asked for, :class:`_Stopped` (the half-trained models of a
        stopped lesson prove nothing, so nothing more is measured or written)."""
        self.done += 1
        yield JobProgress(job=f"lesson:{self.name}", done=self.done, total=self.total,
                          message=message)
        yield LogEvent(level="info", message=message)
        if self.control.stop_requested and not last:  # the last step: everything is measured
            raise _Stopped

    def stopped(self) -> Generator[Event, None, dict[str, Any]]:
        """The end of a stopped lesson: no result, no lesson.json."""
        result = {"lesson": self.name, "stopped": True}
        yield LogEvent(level="info", message=f"stopped after {self.done} of {self.total} steps")
        yield JobFinished(job=f"lesson:{self.name}", out_dir=str(self.out), result=result,
                          stopped=True)
        return result

    def log(self, message: str) -> Event:
        return LogEvent(level="info", message=message)

    def data(self, spec: str, chosen: bool) -> Generator[Event, None, tuple[DataConfig, Any]]:
        """Where the data comes from (log lines), its split, and the full train/validation
        arrays ``(x_tr, y_tr, x_va, y_va, k)``."""
        for line in _data_lines(spec, chosen):
            yield self.log(line)
        base = DataConfig(spec=spec, val_fraction=0.2, split="ordered")
        return base, _arrays(base)

    def teacher(self, arrays: Any, size: dict[str, Any]
                ) -> Generator[Event, None, tuple[nn.Module, Tensor]]:
        """The teacher, trained with every label of the training split (its first step), and
        its validation logits."""
        x_tr, y_tr, x_va, y_va, k = arrays
        teacher = mlp(x_tr.shape[1], size["teacher_hidden"], k, size["dropout"])
        train(teacher, x_tr, y_tr, epochs=size["teacher_epochs"], seed=0, control=self.control)
        t_val = logits_of(teacher, x_va)
        yield from self.step(f"teacher: val accuracy {_accuracy(t_val, y_va):.1%}")
        return teacher, t_val

    def end(self, result: dict[str, Any], rows: dict[str, Any]
            ) -> Generator[Event, None, dict[str, Any]]:
        """The chart, the last step and ``lesson.json``; returns the result."""
        bar_chart(self.out, rows, result["class_names"])
        yield from self.step("results written", last=True)
        result["seconds"] = round(time.perf_counter() - self.start, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "lesson.json", json.dumps(result, indent=2) + "\n")
        yield JobFinished(job=f"lesson:{self.name}", out_dir=str(self.out), result=result,
                          stopped=self.control.stop_requested)
        return result


def run_missing_digit(out_dir: str | Path, *, control: RunControl | None = None,
                      meta: dict[str, Any] | None = None,
                      spec: str | None = None) -> Generator[Event, None, dict[str, Any]]:
    """The missing-digit lesson; returns (and writes) its result."""
    chosen, spec = spec is not None, spec or lesson_data_spec()
    size = _sizes(spec)
    lesson = _Lesson("missing-digit", Path(out_dir), control or RunControl(), 5)
    with one_thread():
        try:
            base, arrays = yield from lesson.data(spec, chosen)
            x_tr, _, x_va, y_va, k = arrays
            tx, ty, _, _, _ = _arrays(base.model_copy(update={"exclude_classes": [MISSING]}))
            yield lesson.log(f"data: {spec} · {len(x_tr):,} train ({len(tx):,} without "
                             f"{MISSING}s: the transfer set) · {len(x_va):,} validation")
            teacher, t_val = yield from lesson.teacher(arrays, size)

            hard_only = mlp(x_tr.shape[1], size["student_hidden"], k, seed=1)
            train(hard_only, tx, ty, epochs=size["student_epochs"], seed=1, control=lesson.control)
            yield from lesson.step("student from labels alone trained")

            student = mlp(x_tr.shape[1], size["student_hidden"], k, seed=1)
            train(student, tx, ty, epochs=size["student_epochs"], seed=1, control=lesson.control,
                  teacher_logits=logits_of(teacher, tx), alpha=0.9, temperature=8.0)
            s_val = logits_of(student, x_va)
            yield from lesson.step("distilled student trained")

            shifts = frequency_matching_shifts(s_val.numpy(), [MISSING],
                                               teacher_shares(t_val.numpy(), k))
            apply_shifts(student, shifts, k)
            c_val = logits_of(student, x_va)
            yield from lesson.step(f"bias of class {MISSING} raised by {shifts[MISSING]:.2f}")

            y = y_va.numpy()
            rows = {name: _summary(logits.numpy(), y, k) for name, logits in (
                ("teacher", t_val), ("labels only", logits_of(hard_only, x_va)),
                ("distilled", s_val), ("distilled + bias", c_val))}
            result = {"lesson": "missing-digit", **(meta or {}), "data": spec,
                      "n_train": len(x_tr), "n_transfer": len(tx), "n_val": len(x_va),
                      "excluded": [MISSING], "bias_shift": shifts[MISSING],
                      "bias_rule": "class share of the student's predictions on the validation "
                                   "images = the teacher's (no labels used)",
                      "models": rows, "paper": PAPER_MISSING_DIGIT,
                      "held_out": {"class": MISSING,
                                   "before": rows["distilled"]["accuracy_on_3"],
                                   "after": rows["distilled + bias"]["accuracy_on_3"]},
                      "class_names": [str(c) for c in range(k)]}
            result["compare"] = missing_digit_compare(result)
            for line in missing_digit_lines(result):
                yield lesson.log(line)
            return (yield from lesson.end(result, rows))
        except _Stopped:
            return (yield from lesson.stopped())


def _summary(logits: np.ndarray, y: np.ndarray, k: int) -> dict[str, Any]:
    pred = logits.argmax(1)
    per_class = per_class_accuracy(logits, y, k)
    errors = int((pred != y).sum())
    return {"accuracy": float((pred == y).mean()), "errors": errors,
            "errors_on_3": int(((pred != y) & (y == MISSING)).sum()),
            "count_3": int((y == MISSING).sum()),
            "accuracy_on_3": per_class[MISSING], "per_class": per_class}


def run_unlabelled(out_dir: str | Path, *, control: RunControl | None = None,
                   meta: dict[str, Any] | None = None,
                   spec: str | None = None) -> Generator[Event, None, dict[str, Any]]:
    """The unlabelled-transfer lesson: few labels alone vs the same labels plus a teacher on
    the whole (unlabelled) training split. The teacher itself was trained with all labels —
    it stands for a model trained elsewhere."""
    chosen, spec = spec is not None, spec or lesson_data_spec()
    size = _sizes(spec)
    lesson = _Lesson("unlabelled", Path(out_dir), control or RunControl(), 4)
    with one_thread():
        try:
            base, arrays = yield from lesson.data(spec, chosen)
            x_tr, _, x_va, y_va, k = arrays
            masked = base.model_copy(update={"ignore_labels": True,
                                             "labelled_count": size["labels"]})
            ux, uy, _, _, _ = _arrays(masked)
            labelled = uy >= 0
            yield lesson.log(f"data: {spec} · {len(ux):,} training images, {int(labelled.sum())} "
                             f"of them labelled · {len(x_va):,} validation")
            teacher, t_val = yield from lesson.teacher(arrays, size)

            # Same number of optimizer steps as the distilled student: the comparison is the data.
            few = mlp(x_tr.shape[1], size["student_hidden"], k, seed=1)
            steps = size["student_epochs"] * len(ux) // int(labelled.sum())
            train(few, ux[labelled], uy[labelled], epochs=max(1, steps), seed=1,
                  control=lesson.control, batch_size=min(128, int(labelled.sum())))
            f_val = logits_of(few, x_va)
            yield from lesson.step(f"student from {int(labelled.sum())} labels: "
                              f"{_accuracy(f_val, y_va):.1%}")

            student = mlp(x_tr.shape[1], size["student_hidden"], k, seed=1)
            train(student, ux, uy, epochs=size["student_epochs"], seed=1, control=lesson.control,
                  teacher_logits=logits_of(teacher, ux), alpha=0.5, temperature=4.0)
            s_val = logits_of(student, x_va)
            yield from lesson.step(f"distilled student: {_accuracy(s_val, y_va):.1%}")

            y = y_va.numpy()
            rows = {name: {"accuracy": _accuracy(lg, y),
                           "per_class": per_class_accuracy(lg.numpy(), y, k)}
                    for name, lg in (("teacher", t_val), (f"{int(labelled.sum())} labels", f_val),
                                     ("distilled, unlabelled", s_val))}
            result = {"lesson": "unlabelled", **(meta or {}), "data": spec,
                      "n_transfer": len(ux), "n_labelled": int(labelled.sum()),
                      "n_val": len(x_va), "models": rows,
                      "gain_points": 100 * (rows["distilled, unlabelled"]["accuracy"]
                                            - rows[f"{int(labelled.sum())} labels"]["accuracy"]),
                      "class_names": [str(c) for c in range(k)]}
            acc = [row["accuracy"] for row in rows.values()]
            result["compare"] = [
                ["few labels alone", "44.5% (hard labels of 3% of the data)",
                 f"{acc[1]:.1%} ({result['n_labelled']} labels)"],
                ["distilled", "57.0% (soft targets on the same 3%)",
                 f"{acc[2]:.1%} ({len(ux):,} images, {result['n_labelled']} labelled)"],
                ["all labels", "58.9% (all the data)", f"{acc[0]:.1%} (the teacher)"]]
            for name, row in rows.items():
                yield lesson.log(f"{name:<24} validation accuracy {row['accuracy']:.1%}")
            yield lesson.log(f"distillation on unlabelled images adds {result['gain_points']:.1f} "
                             "points")
            return (yield from lesson.end(result, rows))
        except _Stopped:
            return (yield from lesson.stopped())
