"""The ``sensitivity`` job: how much accuracy each layer loses when it alone is pruned.

Pruning one layer at a time at several ratios shows which layers tolerate sparsity (prune them
harder) and which collapse early (exclude them) before a whole-model run. One implementation for
the CLI (``kdgui sensitivity MODEL``) and the window (the student of a run, or its teacher):
both describe *which* model and data, and this job loads them, measures layer by layer (a
progress event per layer) and ends with ``JobFinished`` whose result is the table.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

from kdgui.core import run_folders as rf
from kdgui.core.config import DataConfig, ExperimentConfig, ModelRef
from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import CompressionError, ConfigError
from kdgui.core.events import Event, JobFinished, JobProgress, RunFailed
from kdgui.engine.jobs._common import guarded
from kdgui.engine.jobs.models import model_reference


def parse_ratios(text: str | list[float]) -> list[float]:
    """``"0.3,0.5,0.9"`` (or a list) as sparsities; their range is checked by the engine."""
    if not isinstance(text, str):
        values = [float(v) for v in text]
    else:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise CompressionError(f"--ratios {text!r} is not a list of numbers",
                                   "Write e.g. --ratios 0.3,0.5,0.9.") from None
    if not values:
        raise CompressionError("--ratios is empty", "Write e.g. --ratios 0.3,0.5,0.9.")
    return values


def sensitivity(
    model: ModelRef | str,
    data: DataConfig | str,
    ratios: str | list[float] = "0.3,0.5,0.7,0.9",
    layers: list[str] | str | None = None,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    trust: bool = False,
    out_json: str | Path | None = None,
) -> Generator[Event, Any, dict[str, Any] | None]:
    """Per-layer sensitivity of ``model`` (a ``ModelRef``, or a MODEL string as ``kdgui
    compress`` takes, with ``arch``/``num_classes``/``trust``) on ``data``'s validation split.

    ``layers`` (a list or ``"a,b"``) defaults to every Linear/conv layer. The result
    (``layers, ratios, baseline, accuracy, accuracy_drop, source``) is also written to
    ``out_json`` when given, only after the whole table was measured.
    """
    ref = model_reference(model, arch=arch, num_classes=num_classes, trust=trust)
    where = str(out_json or "")
    return (yield from guarded(_sensitivity(ref, data, ratios, layers, out_json), where))


class _KnownBaseline:
    """The evaluation passed to the engine for one layer: the engine measures the unpruned
    model first on every call, and that baseline is already known, so it is not measured
    again for each layer (one evaluation saved per layer)."""

    def __init__(self, baseline: float, evaluate: Any) -> None:
        self.baseline, self.evaluate, self.first = baseline, evaluate, True

    def __call__(self, model: Any) -> float:
        if self.first:
            self.first = False
            return self.baseline
        return float(self.evaluate(model))


def _sensitivity(ref: ModelRef, data: DataConfig | str, ratios: str | list[float],
                 layers: list[str] | str | None, out_json: str | Path | None
                 ) -> Generator[Event, Any, dict[str, Any]]:
    from kdgui.engine.compress.context import check_layers_exist
    from kdgui.engine.compress.prune.sensitivity import sensitivity as measure
    from kdgui.engine.compress.prune.unstructured import check_sparsity, prunable_layers
    from kdgui.engine.data import load_data
    from kdgui.engine.metrics import evaluate
    from kdgui.engine.models import load_model

    values = parse_ratios(ratios)
    for ratio in values:
        check_sparsity(ratio, "sensitivity ratio")
    dcfg = DataConfig(spec=data) if isinstance(data, str) else data
    if isinstance(layers, str):
        layers = [n.strip() for n in layers.split(",") if n.strip()]
    bundle = load_data(dcfg)
    net = load_model(ref, input_shape=bundle.input_shape,
                     num_classes=bundle.num_classes).module.eval()
    names = list(layers) if layers else list(prunable_layers(net))
    check_layers_exist(net, names, "sensitivity analysis")

    def accuracy(m: Any) -> float:
        return float(evaluate(m, bundle.val)["accuracy"])

    baseline = accuracy(net)
    rows: list[list[float]] = []
    for done, name in enumerate(names):
        yield JobProgress(job="sensitivity", done=done, total=len(names), message=name)
        rows.append(measure(net, [name], values, _KnownBaseline(baseline, accuracy))
                    ["accuracy"][0])
    yield JobProgress(job="sensitivity", done=len(names), total=len(names))
    table = {"layers": names, "ratios": values, "baseline": baseline, "accuracy": rows,
             "accuracy_drop": [[baseline - a for a in row] for row in rows],
             "source": str(ref.path or ref.arch)}
    if out_json:
        atomic_write_text(out_json, json.dumps(table, indent=2))
    yield JobFinished(job="sensitivity", out_dir=str(out_json or ""), result=table)
    return table


def run_model(config: ExperimentConfig, which: str, run_dir: str | Path | None) -> ModelRef:
    """The model a person means in the window: the distilled student of ``run_dir``
    (``which="student"``) or the config's teacher."""
    if which != "student":
        return config.teacher
    if run_dir is None:
        raise ConfigError("there is no run with a distilled student yet",
                          "Run a distillation first, or analyze the teacher.")
    path = rf.student_path(run_dir)
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' has no saved student",
                          "Pick a run that finished, or analyze the teacher.")
    return ModelRef(path=str(path))


def sensitivity_of_run(config: ExperimentConfig, which: str, ratios: str | list[float],
                       run_dir: str | Path | None = None
                       ) -> Generator[Event, Any, dict[str, Any] | None]:
    """:func:`sensitivity` of a run's student (or the config's teacher) on the config's data;
    the result also says which model it measured (``model``: student or teacher)."""
    try:
        ref = run_model(config, which, run_dir)
    except ConfigError as exc:
        yield RunFailed(run_dir=str(run_dir or ""), error=exc.to_dict())
        return None
    table = None
    for event in sensitivity(ref, config.data, ratios):
        if isinstance(event, JobFinished):
            table = dict(event.result, model=which)
            event = JobFinished(job=event.job, out_dir=event.out_dir, result=table)
        yield event
    return table


def analyze(config: ExperimentConfig, which: str, ratios: list[float],
            run_dir: str | Path | None = None) -> dict[str, Any]:
    """The table of :func:`sensitivity_of_run` as a function call (errors raised), for callers
    that run it on a worker thread and only want the result."""
    table: dict[str, Any] = {}
    for event in sensitivity_of_run(config, which, ratios, run_dir):
        if isinstance(event, RunFailed):
            raise event.to_exception()
        if isinstance(event, JobFinished):
            table = event.result
    return table


__all__ = ["analyze", "parse_ratios", "run_model", "sensitivity", "sensitivity_of_run"]
