"""``check_setup``: what a run would refuse in its first second, found before Run is pressed.

A run loads the data, the teacher and the student and runs both models on a dummy batch before
it writes anything (:func:`kdgui.engine.session.prepare.prepare`). The window runs the same steps
here whenever the data, teacher or student change, so a 3-channel teacher on MNIST, a 10-class
teacher on 5-class data or a weights-only file without its architecture is reported where it
was chosen, and Run stays disabled until it is fixed. Nothing is trained or written.
"""

from __future__ import annotations

import re
from typing import Any

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import UserError

_CHANNELS = re.compile(r"expects (\d+) input channels but the data has (\d+)")
_CLASSES = re.compile(r"outputs (\d+) classes but the dataset has (\d+)")
#: An exported (.pt2) teacher refuses other channels with a shape guard instead.
_GUARD = re.compile(r"Guard failed: input\.size\(\)\[1\] == (\d+)")


def check_setup(config: ExperimentConfig) -> dict[str, Any]:
    """Load data, teacher and student as a run would and check they fit together.

    Returns ``{"ok": True, "input_shape", "num_classes"}``, or ``{"ok": False, "part": "data" |
    "teacher" | "student", "error": {what, fix, type}, ...}`` with, for the two common
    mismatches, the numbers a front end needs to word its own fix: ``teacher_channels`` and
    ``data_channels``, or ``teacher_classes`` and ``data_classes``.
    """
    from kdgui.engine.data import load_data
    from kdgui.engine.models import check_compatibility, load_model, make_student

    try:
        bundle = load_data(config.data)
    except UserError as exc:
        return {"ok": False, "part": "data", "error": exc.to_dict()}
    facts: dict[str, Any] = {"input_shape": list(bundle.input_shape),
                             "num_classes": int(bundle.num_classes),
                             "data_name": str(bundle.describe().get("name", config.data.spec))}
    teacher_ref = config.teacher
    classes = bundle.num_classes or None  # 0: unlabelled images only, the teacher will say
    if teacher_ref.path is None and teacher_ref.num_classes is None and teacher_ref.arch:
        teacher_ref = teacher_ref.model_copy(update={"num_classes": classes})
    try:
        teacher = load_model(teacher_ref, input_shape=bundle.input_shape,
                             num_classes=classes).module
        if bundle.num_classes == 0:  # as a run does (session.prepare): the teacher's outputs
            from kdgui.engine.session.prepare import _classes_from_teacher

            bundle = _classes_from_teacher(bundle, teacher, config.teacher.path)
            facts["num_classes"] = int(bundle.num_classes)
        check_compatibility(teacher, None, bundle.input_shape, bundle.num_classes,
                            bundle.input_shape[0])
    except UserError as exc:
        return {"ok": False, "part": "teacher", "error": exc.to_dict(), **facts,
                **_numbers(exc.what, bundle.input_shape[0])}
    try:
        student, _info = make_student(config.student, teacher, bundle.input_shape,
                                      bundle.num_classes)
        check_compatibility(None, student, bundle.input_shape, bundle.num_classes,
                            bundle.input_shape[0])
    except UserError as exc:
        return {"ok": False, "part": "student", "error": exc.to_dict(), **facts}
    return {"ok": True, **facts}


def _numbers(what: str, data_channels: int) -> dict[str, int]:
    """The counts in the compatibility check's two common messages (see models/compat.py)."""
    if m := _CHANNELS.search(what):
        return {"teacher_channels": int(m.group(1)), "data_channels": int(m.group(2))}
    if (m := _GUARD.search(what)) and int(m.group(1)) != data_channels:
        return {"teacher_channels": int(m.group(1)), "data_channels": int(data_channels)}
    if m := _CLASSES.search(what):
        return {"teacher_classes": int(m.group(1)), "data_classes": int(m.group(2))}
    return {}


__all__ = ["check_setup"]
