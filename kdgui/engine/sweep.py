"""One-knob sweeps: the same experiment run once per value of one config key, then compared.

A sweep is how a trade-off becomes visible: vary the temperature, the soft-loss weight, the
pruning sparsity, the bit width, the rank or the student's width over a few values, keep every
other setting (and the seed) fixed, and plot accuracy against size and latency. The runs go one
after another (two cores cannot run two trainings faster than one after the other), each into its
own ordinary run folder, so every tool that reads a run folder reads a sweep's runs too.

Keys
----
Any config key ``section.field[.field...]`` (as ``kdgui run --set`` takes), list items by index
(``compression.steps.0.params.sparsity``), plus these shorthands:

=========================  ====================================================================
``T``, ``temperature``     ``distill.temperature``
``alpha``                  ``distill.alpha`` (0 = the student learns from labels only: scratch)
``width``                  ``student.width``
``epochs``, ``lr``         ``training.epochs``, ``training.lr``
``prune.sparsity``         ``sparsity`` of the config's magnitude-prune step
``prune.ratio``            ``ratio`` of the config's structured-prune step
``quantize.bits``          ``bits`` of the config's fake-quant step
``lowrank.rank_fraction``  ``rank_fraction`` of the config's low-rank step (also ``lowrank.rank``,
                           ``lowrank.energy``)
=========================  ====================================================================

A compression shorthand sets the parameter on the first step of that kind whose method has it; if
the config has no such step, one is added (magnitude / fake / svd, no fine-tuning) in Deep
Compression's order prune → low-rank → quantize. To control its fine-tuning, put the step in the
config and vary only its parameter.

Folder layout (``OUT``)::

    OUT/sweep.json       the plan (key, values, base config) and every run's status
    OUT/sweep.csv        one row per completed run, with its Pareto flags
    OUT/base_config.yaml the config every run starts from
    OUT/NN_KEY=VALUE/    one ordinary run folder per value (see docs/run-folder.md)

Both files are rewritten after each run, so a sweep cancelled (``RunControl.stop``) or killed
part-way keeps its finished runs listed. A run stopped mid-training keeps its folder (resumable
with ``kdgui run --resume``) and is listed in ``sweep.json`` as ``stopped``, not in ``sweep.csv``.

This module imports no torch until a sweep actually runs (the window imports its events). It holds
the events and the running; the planning (keys, shorthands, one validated config per value) is
:mod:`kdgui.engine.sweep_plan`, the results (sweep.csv rows, Pareto fronts, reading sweep.json)
:mod:`kdgui.engine.sweep_results`; their names are re-exported here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import atomic_write_text, config_to_dict, dump_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished
from kdgui.core.run_folders import SWEEP_FILE
from kdgui.engine.sweep_plan import (
    ALIASES,
    COMPRESSION_KNOBS,
    SweepPlan,
    parse_vary,
    plan_sweep,
    resolve_key,
    run_folder_name,
    value_label,
    vary_config,
)
from kdgui.engine.sweep_results import (
    CSV_COLUMNS,
    SIZE_KEYS,
    add_pareto_flags,
    final_metrics,
    load_sweep,
    pareto_front,
    run_row,
    weight_bits,
    write_csv,
)

# ----------------------------------------------------------------------------------------- events


@dataclass
class SweepStarted(Event):
    kind: ClassVar[str] = "sweep_started"
    out_dir: str
    key: str
    values: list[Any]
    labels: list[str]
    total: int


@dataclass
class SweepRunEvent(Event):
    """An event of the run for value ``index`` (0-based) of ``total``."""

    kind: ClassVar[str] = "sweep_run"
    index: int
    total: int
    value: Any
    event: Event

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "index": self.index, "total": self.total,
                "value": self.value, "time": self.time, "inner": self.event.to_dict()}


@dataclass
class SweepRunDone(Event):
    """A run of the sweep ended: ``status`` is completed, stopped or failed."""

    kind: ClassVar[str] = "sweep_run_done"
    index: int
    total: int
    value: Any
    run_dir: str
    status: str
    row: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class SweepFinished(Event):
    """The sweep ended (all values run, or stopped); ``rows`` are the completed runs."""

    kind: ClassVar[str] = "sweep_finished"
    out_dir: str
    csv_path: str
    rows: list[dict[str, Any]]
    pareto_size: list[int] = field(default_factory=list)
    pareto_latency: list[int] = field(default_factory=list)
    stopped: bool = False
    failed: int = 0


# -------------------------------------------------------------------------------------- running

RunFn = Callable[..., Iterator[Event]]


def _default_run_fn() -> RunFn:
    from kdgui.engine.session import run

    return run


class _Manifest:
    """sweep.json and sweep.csv, rewritten after every run."""

    def __init__(self, out: Path, plan: SweepPlan, size_key: str, meta: dict[str, Any]) -> None:
        self.out = out
        self.plan = plan
        self.size_key = size_key
        self.meta = meta
        self.runs: list[dict[str, Any]] = []
        self.started = time.time()

    def completed_rows(self) -> list[dict[str, Any]]:
        return [r["row"] for r in self.runs if r["status"] == "completed" and r.get("row")]

    def write(self, state: str) -> tuple[list[int], list[int]]:
        rows = self.completed_rows()
        by_size, by_latency = add_pareto_flags(rows, self.size_key)
        write_csv(self.out / "sweep.csv", rows)
        data = {
            "schema_version": 1,
            "kind": "sweep",
            "state": state,
            "key": self.plan.key,
            "target": self.plan.target,
            "values": self.plan.values,
            "labels": self.plan.labels,
            "size_key": self.size_key,
            "started": self.started,
            "updated": time.time(),
            "base_config": config_to_dict(self.plan.base),
            "runs": self.runs,
            "pareto_size": [rows[i]["index"] for i in by_size],
            "pareto_latency": [rows[i]["index"] for i in by_latency],
            **({"meta": self.meta} if self.meta else {}),
        }
        atomic_write_text(self.out / SWEEP_FILE, json.dumps(data, indent=2, default=str))
        return by_size, by_latency


def run_sweep(
    config: ExperimentConfig,
    key: str,
    values: Sequence[Any],
    out_dir: str | Path,
    *,
    control: RunControl | None = None,
    run_fn: RunFn | None = None,
    size_key: str = "zip_size_bytes",
    meta: dict[str, Any] | None = None,
) -> Generator[Event, str | None, list[dict[str, Any]]]:
    """Run ``config`` once per value of ``key``; yield sweep events; return the completed rows.

    Every value is validated before the first run. Commands sent into the generator ('pause',
    'resume', 'stop') and ``control`` act on the run in progress; after a stop no further run
    starts, and sweep.csv lists the runs that completed. ``meta`` (a title, an explanation) is
    stored in sweep.json for reports. ``run_fn`` replaces the engine (tests).
    """
    if size_key not in SIZE_KEYS:
        raise ConfigError(f"size measure '{size_key}' is unknown", f"Use one of {SIZE_KEYS}.")
    plan = plan_sweep(config, key, values)
    control = control or RunControl()
    run_fn = run_fn or _default_run_fn()
    out = Path(out_dir)
    if (out / SWEEP_FILE).exists():
        raise ConfigError(f"'{out}' already holds a sweep",
                          "Choose another --out folder (or delete that one).")
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "base_config.yaml", dump_config(plan.base))
    except OSError as exc:
        raise ConfigError(f"cannot write to sweep folder '{out}': {exc.strerror or exc}",
                          "Choose a folder you can write to with --out.") from None
    manifest = _Manifest(out, plan, size_key, meta or {})
    manifest.write("running")
    total = len(plan.values)
    yield SweepStarted(out_dir=str(out), key=plan.key, values=list(plan.values),
                       labels=plan.labels, total=total)
    stopped = False
    for index, (value, label, cfg) in enumerate(
        zip(plan.values, plan.labels, plan.configs, strict=True)
    ):
        if control.stop_requested:
            stopped = True
            break
        folder = run_folder_name(index, plan.key, label)
        cfg = cfg.model_copy(update={"name": f"{plan.base.name}-{plan.key}={label}"})
        status, summary, error = "failed", None, None
        started = time.perf_counter()
        for event in run_fn(cfg, out / folder, control=control):
            if isinstance(event, RunFinished):
                summary = event.summary
                status = "stopped" if event.stopped else "completed"
            elif isinstance(event, RunFailed):
                error = event.error
            control.apply((yield SweepRunEvent(index=index, total=total, value=value,
                                               event=event)))
        row = None
        if status == "completed" and summary is not None:
            row = {"index": index, "key": plan.key, "value": value, "label": label,
                   "status": status, "run_dir": folder, **run_row(summary, cfg),
                   "duration_s": round(time.perf_counter() - started, 3)}
        manifest.runs.append({"index": index, "value": value, "label": label,
                              "run_dir": folder, "status": status, "row": row,
                              **({"error": error} if error else {})})
        manifest.write("running")
        yield SweepRunDone(index=index, total=total, value=value, run_dir=str(out / folder),
                           status=status, row=row, error=error)
        if status == "stopped" or control.stop_requested:
            stopped = True
            break
    by_size, by_latency = manifest.write("stopped" if stopped else "finished")
    rows = manifest.completed_rows()
    yield SweepFinished(
        out_dir=str(out), csv_path=str(out / "sweep.csv"), rows=rows,
        pareto_size=[rows[i]["index"] for i in by_size],
        pareto_latency=[rows[i]["index"] for i in by_latency],
        stopped=stopped, failed=sum(1 for r in manifest.runs if r["status"] == "failed"),
    )
    return rows


__all__ = [
    "ALIASES",
    "COMPRESSION_KNOBS",
    "CSV_COLUMNS",
    "SIZE_KEYS",
    "SweepFinished",
    "SweepPlan",
    "SweepRunDone",
    "SweepRunEvent",
    "SweepStarted",
    "add_pareto_flags",
    "final_metrics",
    "load_sweep",
    "pareto_front",
    "parse_vary",
    "plan_sweep",
    "resolve_key",
    "run_row",
    "run_sweep",
    "value_label",
    "vary_config",
    "weight_bits",
    "write_csv",
]
