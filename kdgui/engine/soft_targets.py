"""What the soft-target explorer shows: images with the teacher's and the student's logits.

The explorer's slider must redraw instantly, so the models run once here — over a few hundred
validation images — and the window then only re-applies ``softmax(z / T)`` (numpy) per slider
step. Logits, not probabilities, are kept: the temperature is applied afterwards.

The student is the one a finished run saved (``RUN/student/student.safetensors``), or, without a
run, the config's student freshly initialised — near-uniform outputs, itself a lesson.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdgui.core.config import ExperimentConfig, ModelRef
from kdgui.core.errors import ModelLoadError
from kdgui.core.run_folders import student_path


@dataclass
class ExplorerData:
    """``images`` N×C×H×W scaled to 0..1 for display; logits N×K; labels N."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    teacher_logits: np.ndarray
    student_logits: np.ndarray | None = None
    student_source: str = ""


def _logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model(x[i:i + batch]).float())
    return torch.cat(out).numpy().astype(np.float64)


def _display(images: torch.Tensor) -> np.ndarray:
    """Each image min-max scaled to 0..1 (normalisation undone well enough to look at)."""
    arr = images.detach().cpu().numpy().astype(np.float32)
    lo = arr.reshape(len(arr), -1).min(1).reshape(-1, 1, 1, 1)
    hi = arr.reshape(len(arr), -1).max(1).reshape(-1, 1, 1, 1)
    return (arr - lo) / np.maximum(hi - lo, 1e-8)


def explorer_data(config: ExperimentConfig, run_dir: str | Path | None = None,
                  limit: int = 300) -> ExplorerData:
    """Teacher (and student) logits on the first ``limit`` validation images of ``config``."""
    from kdgui.engine.data import load_data
    from kdgui.engine.models import load_model, make_student

    bundle = load_data(config.data)
    val = bundle.val
    tensors = getattr(val, "tensors", None)
    if tensors is not None:
        x, y = tensors[0][:limit], tensors[1][:limit]
    else:
        items = [val[i] for i in range(min(limit, len(val)))]  # type: ignore[arg-type]
        x = torch.stack([it[0] for it in items])
        y = torch.as_tensor([int(it[1]) for it in items])
    teacher = load_model(config.teacher, input_shape=bundle.input_shape,
                         num_classes=bundle.num_classes).module
    student, source = None, ""
    weights = student_path(run_dir) if run_dir else None
    if weights is not None and weights.is_file():
        student = load_model(ModelRef(path=str(weights)), input_shape=bundle.input_shape,
                             num_classes=bundle.num_classes).module
        source = f"trained student of {run_dir}"
    elif run_dir is not None:
        raise ModelLoadError(f"'{run_dir}' has no saved student ({weights})",
                             "Pick a run that finished, or explore without a run.")
    else:
        torch.manual_seed(config.training.seed)
        student, _ = make_student(config.student, teacher, bundle.input_shape,
                                  bundle.num_classes)
        source = "untrained student (no run chosen)"
    return ExplorerData(
        images=_display(x),
        labels=y.numpy().astype(np.int64),
        class_names=list(bundle.class_names),
        teacher_logits=_logits(teacher, x),
        student_logits=_logits(student, x) if student is not None else None,
        student_source=source,
    )


__all__ = ["ExplorerData", "explorer_data"]
