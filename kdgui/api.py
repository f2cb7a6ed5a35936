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
from typing import Any

from kdgui.core.config import (
    DistillConfig,
    ExperimentConfig,
    TrainingConfig,
    demo_config,
)
from kdgui.core.config_io import config_from_dict, load_config, save_config
from kdgui.core.errors import UserError
from kdgui.core.events import Event, JobFinished, RunControl, RunFailed, RunFinished

__all__ = [
    "DistillConfig",
    "Event",
    "ExperimentConfig",
    "RunControl",
    "TrainingConfig",
    "UserError",
    "as_config",
    "compress",
    "demo_config",
    "distill",
    "export_run",
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
    from kdgui.engine.jobs import run as run_job

    return run_job(as_config(config), out_dir, control=control, resume=resume)


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
    from kdgui.engine.jobs import distill_modules

    return distill_modules(teacher, student, train_data, val_data, distill=distill,
                           training=training, out_dir=out_dir, input_shape=input_shape,
                           num_classes=num_classes, control=control, name=name)


def compress(
    model: Any,
    data: str,
    out_dir: str | os.PathLike[str],
    *,
    on_event: Callable[[Event], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compress a model file (or ``'demo'``, or an architecture such as
    ``torchvision:resnet18``) as ``kdgui compress`` does; returns its ``summary.json``.

    ``options`` are :class:`kdgui.engine.jobs.CompressRequest` fields: ``prune="structured:0.5"``,
    ``lowrank=0.5, lowrank_method="conv", lowrank_layers="layer4.*"``, ``quantize="dynamic-int8"``,
    ``formats=["onnx"]``, ``finetune_epochs=1``, ``steps=[...]``, ...
    """
    from kdgui.engine.jobs import CompressRequest
    from kdgui.engine.jobs import compress as compress_job

    request = CompressRequest(model=model, data=data, out_dir=out_dir, **options)
    return _result(compress_job(request), on_event)


def export_run(
    run_dir: str | os.PathLike[str],
    formats: list[str] | str,
    *,
    stage: str = "final",
    out_dir: str | os.PathLike[str] | None = None,
    verify: bool = True,
) -> dict[str, Any]:
    """Export a run's final model (or ``stage="student"`` / a stage folder name); returns which
    stage was written and one record per format (``verified`` only when really checked)."""
    from kdgui.engine.jobs import export_run as export_job

    return _result(export_job(run_dir, formats, stage=stage, out_dir=out_dir, verify=verify),
                   None)


def load_model(path: str, **ref: Any) -> Any:
    """Load a model file the way the window does (``arch=``, ``trust=``...); returns the module."""
    from kdgui.engine.jobs import load_model as load

    return load(path, **ref).module


def load_data(spec: str = "digits", **options: Any) -> Any:
    """Load a dataset by spec string; returns a DataBundle (train, val, shape, classes...)."""
    from kdgui.engine.jobs import load_data as load

    return load(spec, **options)


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


def _result(events: Iterator[Event], on_event: Callable[[Event], None] | None) -> dict[str, Any]:
    """The result of a job that ends with ``JobFinished``; a failure is raised."""
    result: dict[str, Any] = {}
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, RunFailed):
            raise event.to_exception()
        if isinstance(event, JobFinished):
            result = event.result
    return result
