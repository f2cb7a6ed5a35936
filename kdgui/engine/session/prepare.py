"""Preparation: data, teacher and student loaded from a config and checked against each other.

Everything here happens before a run folder exists, so bad input (a missing dataset, a corrupt
model file, mismatched shapes) fails without leaving a half-written folder behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdgui.core.config import ExperimentConfig


@dataclass
class Prepared:
    """Everything a run needs, loaded and checked, before any file is written."""

    teacher: nn.Module
    student: nn.Module
    train: Dataset | DataLoader
    val: Dataset | DataLoader
    input_shape: tuple[int, int, int]
    num_classes: int
    data_info: dict[str, Any] = field(default_factory=dict)
    teacher_info: dict[str, Any] = field(default_factory=dict)
    student_info: dict[str, Any] = field(default_factory=dict)
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None


def prepare(config: ExperimentConfig) -> Prepared:
    """Load data, teacher and student from the config and check they fit together."""
    from kdgui.engine.data import load_data
    from kdgui.engine.models import check_compatibility, load_model, make_student

    bundle = load_data(config.data)
    teacher_ref = config.teacher
    classes = bundle.num_classes or None  # 0: unlabelled images only, the teacher will say
    if teacher_ref.path is None and teacher_ref.num_classes is None and teacher_ref.arch:
        teacher_ref = teacher_ref.model_copy(update={"num_classes": classes})
    loaded = load_model(teacher_ref, input_shape=bundle.input_shape, num_classes=classes)
    teacher = loaded.module
    if bundle.num_classes == 0:  # a folder of unlabelled images only: the teacher says
        bundle = _classes_from_teacher(bundle, teacher, config.teacher.path)
    student, student_info = make_student(
        config.student, teacher, bundle.input_shape, bundle.num_classes
    )
    check_compatibility(
        teacher, student, bundle.input_shape, bundle.num_classes, bundle.input_shape[0]
    )
    teacher_info = {
        "format": loaded.format,
        "source": loaded.source,
        **{k: v for k, v in loaded.metadata.items() if isinstance(v, (str, int, float, bool))},
    }
    return Prepared(
        teacher=teacher,
        student=student,
        train=bundle.train,
        val=bundle.val,
        input_shape=tuple(bundle.input_shape),  # type: ignore[arg-type]
        num_classes=bundle.num_classes,
        data_info=bundle.describe(),
        teacher_info=teacher_info,
        student_info=student_info,
        augment=bundle.augment,
    )


def _classes_from_teacher(bundle: Any, teacher: nn.Module, path: str | None) -> Any:
    """The number of classes of an all-unlabelled dataset: the teacher's output size."""
    import dataclasses

    from kdgui.core.errors import DataError

    if not path:
        raise DataError(f"{bundle.name} has no labelled images, so the number of classes is "
                        "unknown", "Use a teacher file (its outputs give the classes) or add "
                        "one subfolder per class with a few images.", source="data.spec")
    with torch.no_grad():
        out = teacher(torch.zeros(2, *bundle.input_shape))
    k = int(out.shape[-1])
    return dataclasses.replace(bundle, num_classes=k, class_names=[str(c) for c in range(k)])


__all__ = ["Prepared", "prepare"]
