"""The Python API: the same engine and events as the window and the CLI, for notebooks.

Two ways in:

* From a config (file, dict or :class:`~kdgui.core.config.ExperimentConfig`)::

      import kdgui.api as kd
      summary = kd.run_experiment("config.yaml", out_dir="runs/exp1")

* With your own ``nn.Module``\\s and data (Datasets or DataLoaders)::

      for event in kd.distill(teacher, student, train_loader, val_loader,
                              distill={"alpha": 0.7, "temperature": 4},
                              training={"epochs": 5, "lr": 1e-3}, out_dir="runs/mine"):
          if event.kind == "epoch":
              print(event.epoch, event.val_accuracy)

Both yield or consume the same plain events (:mod:`kdgui.core.events`) and write the same run
folder. Pass a :class:`~kdgui.core.events.RunControl` to pause or stop from another thread, or
``send("stop")`` into the generator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kdgui.core.config import (
    DistillConfig,
    ExperimentConfig,
    TrainingConfig,
    demo_config,
)
from kdgui.core.config_io import config_from_dict, load_config, save_config
from kdgui.core.errors import ConfigError, UserError
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished

__all__ = [
    "DistillConfig",
    "Event",
    "ExperimentConfig",
    "RunControl",
    "TrainingConfig",
    "UserError",
    "as_config",
    "demo_config",
    "distill",
    "load_config",
    "load_data",
    "load_model",
    "run",
    "run_experiment",
    "save_config",
]


def as_config(config: ExperimentConfig | dict[str, Any] | str | os.PathLike[str]
              ) -> ExperimentConfig:
    """Accept a config object, a plain dict, or a path to a YAML/JSON file."""
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    return load_config(config)


def run(
    config: ExperimentConfig | dict[str, Any] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
) -> Iterator[Event]:
    """The run's event generator, exactly as the window and the CLI consume it."""
    from kdgui.engine.session import run as engine_run

    return engine_run(as_config(config), out_dir, control=control, resume=resume)


def run_experiment(
    config: ExperimentConfig | dict[str, Any] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Run to the end and return ``summary.json``'s content; errors are raised as UserError."""
    return _drain(run(config, out_dir), on_event)


def distill(
    teacher: Any,
    student: Any,
    train_data: Any,
    val_data: Any,
    *,
    distill: DistillConfig | dict[str, Any] | None = None,
    training: TrainingConfig | dict[str, Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    control: RunControl | None = None,
    name: str = "notebook",
) -> Iterator[Event]:
    """Distill your own ``teacher`` into your own ``student`` on your own data.

    ``train_data``/``val_data`` may be Datasets of ``(x, y)`` or DataLoaders. With Datasets the
    teacher's outputs are cached (each sample's logits computed once); a DataLoader is iterated
    as given (its own shuffling and augmentation), with the teacher run every step.
    """
    import torch

    from kdgui.engine.models import check_compatibility
    from kdgui.engine.session import Prepared, run_prepared

    dcfg = distill if isinstance(distill, DistillConfig) else DistillConfig(**(distill or {}))
    tcfg = training if isinstance(training, TrainingConfig) else TrainingConfig(
        **(training or {})
    )
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
                   "num_classes": num_classes, "class_names": [str(i) for i in range(num_classes)]},
        teacher_info={"source": type(teacher).__name__, "format": "module"},
        student_info={"name": type(student).__name__},
    )
    return run_prepared(prepared, config, out_dir, control=control,
                        runs_root=Path("runs"))


def load_model(path: str, **ref: Any) -> Any:
    """Load a model file the way the window does (``arch=``, ``trust=``...); returns the module."""
    from kdgui.core.config import ModelRef
    from kdgui.engine.models import load_model as engine_load

    return engine_load(ModelRef(path=path, **ref)).module


def load_data(spec: str = "digits", **options: Any) -> Any:
    """Load a dataset by spec string; returns a DataBundle (train, val, shape, classes...)."""
    from kdgui.core.config import DataConfig
    from kdgui.engine.data import load_data as engine_load

    return engine_load(DataConfig(spec=spec, **options))


def _first_input(data: Any) -> Any:
    if hasattr(data, "tensors"):
        return data.tensors[0][0]
    if hasattr(data, "dataset") and hasattr(data, "batch_size"):
        return next(iter(data))[0][0]
    return data[0][0]


def _drain(events: Iterator[Event], on_event: Callable[[Event], None] | None) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, RunFailed):
            raise event.to_exception()
        if isinstance(event, RunFinished):
            summary = event.summary
    return summary
