"""The ``run`` job: a distillation run from a config, or from modules a script already holds.

:func:`run` is :func:`kdgui.engine.session.run` behind the facade (same signature, same events,
same run folder); :func:`distill_modules` runs the same session on a person's own ``nn.Module``
teacher and student and their own datasets (the Python API's ``distill``).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from kdgui.core.config import DistillConfig, ExperimentConfig, TrainingConfig
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event, RunControl

RunGenerator = Generator[Event, "str | None", "dict[str, Any] | None"]


def run(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path | None = None,
) -> RunGenerator:
    """Run the experiment ``config`` describes; yields events, returns the summary dict.

    Bad input (a missing dataset, a corrupt model file, mismatched shapes) is reported as one
    ``RunFailed`` event before any run folder is created. With ``training.processes`` > 1 (and
    not already under torchrun) the run goes to that many processes under torchrun, and these
    are rank 0's events (:mod:`kdgui.engine.distributed.launch`).
    """
    from kdgui.engine.distributed.launch import run_launched, wants_launch

    if wants_launch(config):
        return run_launched(config, out_dir, control=control, resume=resume, runs_root=runs_root)
    from kdgui.engine.session import run as session_run

    events = session_run(config, out_dir, control=control, resume=resume, runs_root=runs_root)
    if not config.training.tensorboard:
        return events
    from kdgui.engine.tensorboard import with_tensorboard

    return with_tensorboard(events)


def _first_input(data: Any) -> Any:
    if hasattr(data, "tensors"):
        return data.tensors[0][0]
    if hasattr(data, "dataset") and hasattr(data, "batch_size"):
        return next(iter(data))[0][0]
    return data[0][0]


def distill_modules(
    teacher: Any,
    student: Any,
    train_data: Any,
    val_data: Any,
    *,
    distill: DistillConfig | dict[str, Any] | None = None,
    training: TrainingConfig | dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    control: RunControl | None = None,
    name: str = "notebook",
    runs_root: str | Path | None = None,
) -> RunGenerator:
    """Distill ``teacher`` into ``student`` on ``train_data``/``val_data`` (Datasets of
    ``(x, y)`` or DataLoaders); checks shapes and classes before any folder is written."""
    import torch

    from kdgui.engine.models import check_compatibility
    from kdgui.engine.session import Prepared, run_prepared

    dcfg = distill if isinstance(distill, DistillConfig) else DistillConfig(**(distill or {}))
    tcfg = training if isinstance(training, TrainingConfig) else TrainingConfig(
        **(training or {}))
    if tcfg.processes > 1 and not process_launched():
        raise ConfigError("training.processes > 1 cannot start processes for modules held in "
                          "this script", "Start the script itself under torchrun "
                          "(torchrun --nproc_per_node N script.py), or use a config file.")
    sample = _first_input(train_data)
    shape = tuple(input_shape or tuple(sample.shape))
    if len(shape) != 3:
        raise ConfigError(f"input samples have shape {shape}, expected (C, H, W)",
                          "Pass input_shape=(C, H, W) explicitly.")
    if num_classes is None:
        with torch.no_grad():
            teacher.eval()
            num_classes = int(teacher(sample.unsqueeze(0)).shape[-1])
    check_compatibility(teacher, student, shape, num_classes, shape[0])
    config = ExperimentConfig(name=name, distill=dcfg, training=tcfg)
    prepared = Prepared(
        teacher=teacher, student=student, train=train_data, val=val_data,
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=num_classes,
        data_info={"name": "user data", "source": "Python API", "input_shape": list(shape),
                   "num_classes": num_classes,
                   "class_names": [str(i) for i in range(num_classes)]},
        teacher_info={"source": type(teacher).__name__, "format": "module"},
        student_info={"name": type(student).__name__},
    )
    return run_prepared(prepared, config, out_dir, control=control, runs_root=runs_root)


def process_rank() -> int:
    """This process's rank in a distributed run (0 outside one): a front end running as rank
    N > 0 receives no events (rank 0 reports) and treats that as success."""
    from kdgui.engine.distributed.launch import env_rank

    return env_rank()


def process_launched() -> bool:
    from kdgui.engine.distributed.launch import launched

    return launched()


__all__ = ["distill_modules", "process_rank", "run"]
