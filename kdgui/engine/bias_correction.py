"""Raising the output bias of classes the student never saw (Hinton et al. 2015, §3).

A student distilled on a transfer set with no 3s learns a lot about 3s from the soft targets of
the other digits, but its bias for class 3 is too low: nothing in training ever pushed it up.
The paper raised it by 3.5 by hand. Here the shift is computed from data, by a rule that needs
no labels:

    choose the shift b_c ≥ 0 of each excluded class c so that the share of held-out inputs the
    student assigns to c equals the share the *teacher* assigns to c on the same inputs.

The teacher saw every class, so its predicted frequency is the best label-free estimate of the
class prior; the predicted share of c grows monotonically with b_c, so bisection finds it. When
several classes are excluded, their shifts are solved in turn, a few rounds (each changes the
others' shares a little). Only held-out *images* are used, never their labels, so measuring
accuracy on the same held-out set stays fair.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: Largest shift tried: far beyond any useful value (logits of a trained net span ~10-30).
MAX_SHIFT = 50.0
_BISECT_STEPS = 40
_ROUNDS = 3


def predicted_share(logits: np.ndarray, shifts: dict[int, float], cls: int) -> float:
    """Fraction of rows whose argmax is ``cls`` after adding ``shifts`` to the logits."""
    z = np.array(logits, dtype=np.float64, copy=True)
    for c, b in shifts.items():
        z[:, c] += b
    return float(np.mean(z.argmax(axis=1) == cls))


def frequency_matching_shifts(
    student_logits: np.ndarray, classes: Sequence[int], target_share: dict[int, float]
) -> dict[int, float]:
    """The shift of each class in ``classes`` that makes its predicted share reach its target.

    ``target_share[c]`` is the wanted fraction (e.g. the teacher's predicted share). A class
    whose share already reaches the target gets 0 (the rule only raises biases).
    """
    shifts = {int(c): 0.0 for c in classes}
    for _ in range(_ROUNDS):
        for c in shifts:
            want = float(target_share[c])
            if predicted_share(student_logits, shifts, c) >= want:
                continue
            lo, hi = 0.0, MAX_SHIFT
            for _ in range(_BISECT_STEPS):
                mid = 0.5 * (lo + hi)
                shifts[c] = mid
                if predicted_share(student_logits, shifts, c) >= want:
                    hi = mid
                else:
                    lo = mid
            shifts[c] = hi
    return shifts


def teacher_shares(teacher_logits: np.ndarray, num_classes: int) -> dict[int, float]:
    """The teacher's predicted share of each class on the held-out inputs."""
    pred = np.asarray(teacher_logits).argmax(axis=1)
    counts = np.bincount(pred, minlength=num_classes)
    return {c: float(counts[c]) / max(len(pred), 1) for c in range(num_classes)}


def output_layer(model: nn.Module, num_classes: int) -> nn.Linear:
    """The last ``nn.Linear`` with ``num_classes`` outputs and a bias: the one to shift."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes \
                and module.bias is not None:
            last = module
    if last is None:
        raise ValueError(f"the model has no linear output layer with {num_classes} outputs "
                         "and a bias, so no class bias can be raised")
    return last


@torch.no_grad()
def apply_shifts(model: nn.Module, shifts: dict[int, float], num_classes: int) -> None:
    """Add ``shifts`` to the output bias of ``model`` (in place)."""
    layer = output_layer(model, num_classes)
    for c, b in shifts.items():
        layer.bias[c] += float(b)


def per_class_accuracy(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float]:
    """Recall of each class (NaN for a class absent from ``labels``)."""
    pred = np.asarray(logits).argmax(axis=1)
    labels = np.asarray(labels)
    out = []
    for c in range(num_classes):
        mask = labels == c
        out.append(float(np.mean(pred[mask] == c)) if mask.any() else float("nan"))
    return out


__all__ = ["MAX_SHIFT", "apply_shifts", "correct_models", "correct_run",
           "frequency_matching_shifts", "held_out_line", "output_layer", "per_class_accuracy",
           "predicted_share", "teacher_shares"]


def correct_run(run_dir: str | Path) -> dict[str, Any]:
    """The bias correction of a finished run whose config excluded classes from the transfer
    set: the computed shifts and the per-class validation accuracy without and with them.

    The shifts are added to the logits (the same as raising the output bias) so that any saved
    student format works; the target share is the run's teacher's predicted share when the
    teacher is a file, else the uniform 1/K.
    """
    from kdgui.core.config import ModelRef
    from kdgui.core.config_io import config_from_dict
    from kdgui.core.errors import ConfigError
    from kdgui.core.run_folders import read_config_dict, student_path
    from kdgui.engine.data import load_data
    from kdgui.engine.models import load_model

    config = config_from_dict(read_config_dict(run_dir), source=str(run_dir))
    classes = list(config.data.exclude_classes)
    if not classes:
        raise ConfigError(f"{run_dir} excluded no classes (data.exclude_classes is empty)",
                          "Bias correction is for runs with data.exclude_classes set.")
    if not student_path(run_dir).is_file():
        raise ConfigError(f"{run_dir} has no saved student", "Use a run that finished.")
    bundle = load_data(config.data)
    shape, k = bundle.input_shape, bundle.num_classes
    student = load_model(ModelRef(path=str(student_path(run_dir))), input_shape=shape,
                         num_classes=k).module.eval()
    teacher = (load_model(config.teacher, input_shape=shape, num_classes=k).module.eval()
               if config.teacher.path else None)
    return correct_models(student, teacher, bundle.val, classes, k)


def correct_models(student: nn.Module, teacher: nn.Module | None, val: Any,
                   classes: Sequence[int], k: int, device: Any = "cpu") -> dict[str, Any]:
    """:func:`correct_run` on models in memory (a run's end does this by itself when its
    config excludes classes): shifts, and per-class validation accuracy without and with."""
    x, y = _stack(val)
    s_logits = _logits(student, x, device)
    if teacher is not None:
        target = teacher_shares(_logits(teacher, x, device), k)
        rule = "teacher's predicted share"
    else:
        target, rule = {c: 1.0 / k for c in range(k)}, "uniform 1/K"
    shifts = frequency_matching_shifts(s_logits, list(classes), target)
    shifted = s_logits.copy()
    for c, b in shifts.items():
        shifted[:, c] += b
    labels = y.numpy()
    return {"classes": list(classes), "shifts": {str(c): b for c, b in shifts.items()},
            "rule": f"class share of the student's validation predictions = {rule}",
            "accuracy": [float((s_logits.argmax(1) == labels).mean()),
                         float((shifted.argmax(1) == labels).mean())],
            "per_class": [per_class_accuracy(s_logits, labels, k),
                          per_class_accuracy(shifted, labels, k)]}


def _stack(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=512)
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, device: Any = "cpu") -> np.ndarray:
    from kdgui.engine.metrics._modules import eval_mode

    with eval_mode(model):
        return torch.cat([model(x[i:i + 512].to(device)).float().cpu()
                          for i in range(0, len(x), 512)]).numpy()


def held_out_line(result: dict[str, Any]) -> str:
    """One line: each excluded class's accuracy before and after its computed shift."""
    before, after = result["per_class"]
    parts = [f"class {c}: {before[c]:.1%} → {after[c]:.1%} (bias +{result['shifts'][str(c)]:.2f})"
             for c in result["classes"]]
    return ("held-out classes, accuracy before → after the bias correction: " + "; ".join(parts)
            + f"; overall {result['accuracy'][0]:.1%} → {result['accuracy'][1]:.1%}")
