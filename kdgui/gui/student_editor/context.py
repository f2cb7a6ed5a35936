"""What the editor checks a student against, known without loading data or torch.

The Student panel needs the data's input shape and class count on every config change, before any
run; loading a dataset for that would be slow (and for torchvision sets may need the disk), so the
shapes of the known datasets are listed here. The demo teacher's architecture is read from its
``spec.json`` (plain JSON), which gives its parameter count and lets the editor derive a student
and show the pairing without loading weights.
"""

from __future__ import annotations

import json
from typing import Any

from kdgui.core.resources import resource_path
from kdgui.core.student_shapes import infer
from kdgui.core.student_spec import StudentSpec

#: (channels, size, classes) of the datasets a data spec can name.
KNOWN_DATA = {
    "digits": (1, 8, 10), "mnist": (1, 28, 10), "fashionmnist": (1, 28, 10),
    "kmnist": (1, 28, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "svhn": (3, 32, 10),
}


def data_context(data: dict[str, Any]) -> tuple[tuple[int, int, int], int] | None:
    """``((C, H, W), classes)`` for a data config dict, or ``None`` when it cannot be known."""
    kind = str(data.get("spec") or "digits").split(":", 1)[0].lower()
    if kind not in KNOWN_DATA:
        return None
    c, size, classes = KNOWN_DATA[kind]
    size = int(data.get("image_size") or size)
    return (c, size, size), classes


def demo_teacher_spec() -> StudentSpec | None:
    """The bundled demo teacher's architecture, or ``None`` when the file is missing."""
    path = resource_path("demo_teacher", "spec.json")  # core: no torch, safe before a run
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return StudentSpec.model_validate(raw.get("spec", raw))
    except (OSError, ValueError):
        return None


def spec_params(spec: StudentSpec, input_shape: tuple[int, int, int], classes: int) -> int | None:
    report = infer(spec, input_shape, classes)
    return report.total_params if report.ok else None
