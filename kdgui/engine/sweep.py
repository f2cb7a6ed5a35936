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

This module imports no torch until a sweep actually runs (the window imports its events).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from kdgui.core.components.compression import STEP_KINDS, method_component, method_traits
from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import atomic_write_text, config_from_dict, config_to_dict, dump_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished
from kdgui.core.run_folders import SWEEP_FILE, safe_name

#: Plain aliases for config keys.
ALIASES: dict[str, str] = {
    "T": "distill.temperature",
    "temperature": "distill.temperature",
    "alpha": "distill.alpha",
    "width": "student.width",
    "epochs": "training.epochs",
    "lr": "training.lr",
}


@dataclass(frozen=True)
class CompressionKnob:
    """A shorthand for one parameter of a compression step."""

    kind: str
    methods: tuple[str, ...]  # methods that have the parameter; the first is added if missing
    param: str


COMPRESSION_KNOBS: dict[str, CompressionKnob] = {
    "prune.sparsity": CompressionKnob("prune", ("magnitude",), "sparsity"),
    "prune.ratio": CompressionKnob("prune", ("structured",), "ratio"),
    "quantize.bits": CompressionKnob("quantize", ("fake",), "bits"),
    "lowrank.rank_fraction": CompressionKnob("lowrank", ("svd", "conv"), "rank_fraction"),
    "lowrank.rank": CompressionKnob("lowrank", ("svd", "conv"), "rank"),
    "lowrank.energy": CompressionKnob("lowrank", ("svd", "conv"), "energy"),
}

#: Deep Compression's order, used to place a step a shorthand adds.
_STEP_ORDER = {"prune": 0, "lowrank": 1, "finetune": 1, "quantize": 2}

#: Columns of sweep.csv, in order.
CSV_COLUMNS = [
    "index", "key", "value", "label", "status", "run_dir", "accuracy", "student_accuracy",
    "teacher_accuracy", "agreement", "params", "nonzero_params", "size_bytes", "zip_size_bytes",
    "effective_bytes", "weight_bits", "macs", "latency_ms", "latency_ms_b32", "compression_ratio",
    "duration_s", "pareto_size", "pareto_latency",
]
#: Size measures a Pareto front can use (see :func:`run_row`).
SIZE_KEYS = ("zip_size_bytes", "size_bytes", "effective_bytes", "nonzero_params", "params")


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


# ------------------------------------------------------------------------------------- planning


@dataclass
class SweepPlan:
    """A validated sweep: the key (as given and resolved), the values and one config each."""

    key: str
    target: str
    values: list[Any]
    labels: list[str]
    configs: list[ExperimentConfig]
    base: ExperimentConfig


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """``"KEY=V1,V2,..."`` → ``(KEY, [V1, V2, ...])`` with YAML scalars (1 → int, 0.5 → float)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ConfigError(f"--vary '{text}' is not KEY=V1,V2,...",
                          "Write e.g. --vary distill.temperature=1,4,8.")
    values = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise ConfigError(f"--vary '{text}' has an empty value",
                              "Separate the values with single commas: 1,4,8.")
        try:
            values.append(yaml.safe_load(part))
        except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: 5000-digit numbers
            values.append(part)
    return key, values


def resolve_key(key: str) -> str:
    """The full key a shorthand stands for (compression shorthands are returned unchanged)."""
    return ALIASES.get(key, key)


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists; missing dict levels are created."""
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"'{key}': '{where}' is not an item of a list of {len(node)}",
                                  f"Use an index from 0 to {len(node) - 1}.")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"'{key}' does not name a config field ('{where}' is a value)",
                              "Check the key against 'kdgui config --example'.")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def _apply_knob(data: dict[str, Any], key: str, knob: CompressionKnob, value: Any) -> None:
    steps: list[dict[str, Any]] = data.setdefault("compression", {}).setdefault("steps", [])
    for step in steps:
        if step.get("kind") == knob.kind and step.get("method") in knob.methods:
            step.setdefault("params", {})[knob.param] = value
            return
    same_kind = [s.get("method") for s in steps if s.get("kind") == knob.kind]
    if same_kind:
        raise ConfigError(
            f"'{key}' needs a {knob.kind} step with method {' or '.join(knob.methods)}, but the "
            f"config's {knob.kind} step uses '{same_kind[0]}'",
            f"Change that step's method to {knob.methods[0]}, or vary "
            f"compression.steps.N.params.PARAM instead.",
        )
    new = {"kind": knob.kind, "method": knob.methods[0], "params": {knob.param: value},
           "name": knob.kind}
    rank = _STEP_ORDER[knob.kind]
    pos = next((i for i, s in enumerate(steps) if _STEP_ORDER.get(s.get("kind"), 1) > rank),
               len(steps))
    steps.insert(pos, new)


def vary_config(config: ExperimentConfig, key: str, value: Any) -> ExperimentConfig:
    """``config`` with ``key`` (a config key or a shorthand) set to ``value``, validated.

    Compression parameters are validated against their method's declaration here, so a bad
    value (sparsity 1.5, 1 bit) fails before the first run rather than in the fourth.
    """
    data = config_to_dict(config)
    knob = COMPRESSION_KNOBS.get(key)
    if knob is not None:
        _apply_knob(data, key, knob, value)
    else:
        _set_path(data, resolve_key(key), value)
    where = f"--vary {key}={value}"
    new = config_from_dict(data, source=where)
    for i, step in enumerate(new.compression.steps):
        if step.kind not in STEP_KINDS:
            continue
        component = method_component(step.kind, step.method)
        component.validate(step.params, where=f"{where}: compression.steps.{i} ({step.kind})")
    return new


def value_label(value: Any) -> str:
    """A short text for a value (``0.5``, ``8``, ``true``) as folder names and legends use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plan_sweep(config: ExperimentConfig, key: str, values: Sequence[Any]) -> SweepPlan:
    """Validate every value of the sweep now; raise a :class:`ConfigError` naming the bad one."""
    values = list(values)
    if not values:
        raise ConfigError(f"the sweep over '{key}' has no values", "Give at least one value.")
    labels = [value_label(v) for v in values]
    if len(set(labels)) != len(labels):
        dup = next(lbl for lbl in labels if labels.count(lbl) > 1)
        raise ConfigError(f"the sweep over '{key}' lists the value {dup} twice",
                          "Give each value once.")
    configs = [vary_config(config, key, v) for v in values]
    target = key if key in COMPRESSION_KNOBS else resolve_key(key)
    return SweepPlan(key=key, target=target, values=values, labels=labels, configs=configs,
                     base=config)


def run_folder_name(index: int, key: str, label: str) -> str:
    """``03_distill.temperature=8``: sortable, readable, safe on every file system."""
    text = f"{key}={label}"
    return f"{index:02d}_" + safe_name(text)


# ------------------------------------------------------------------------------------- results


def weight_bits(config: ExperimentConfig) -> int:
    """Bits per stored weight after the config's pipeline, as each method declares it
    (fake-quant: its bits, int8: 8); 32 when no step changes them."""
    bits = 32
    for step in config.compression.steps:
        if step.kind not in STEP_KINDS:
            continue
        params = method_component(step.kind, step.method).validate(step.params)
        stored = method_traits(step.kind, step.method).stored_bits(params)
        bits = stored if stored is not None else bits
    return bits


def final_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The metrics of the model a run ends with: the last compression stage, else the student."""
    stages = summary.get("stages") or []
    return dict(stages[-1]) if stages else dict(summary.get("student") or {})


def run_row(summary: dict[str, Any], config: ExperimentConfig) -> dict[str, Any]:
    """The numbers of one finished run, as a sweep.csv row (without index/key/value).

    ``effective_bytes`` = non-zero weights × bits ÷ 8: what the weights would take stored sparse
    at their bit width, ignoring index overhead. It is the size axis that shows what simulated
    (fake) quantization and unstructured pruning would save once deployed; ``zip_size_bytes``
    is the measured one.
    """
    final = final_metrics(summary)
    teacher = summary.get("teacher") or {}
    student = summary.get("student") or {}
    bits = weight_bits(config)
    nonzero = final.get("nonzero_params")
    size = final.get("size_bytes")
    return {
        "accuracy": final.get("accuracy"),
        "student_accuracy": student.get("accuracy"),
        "teacher_accuracy": teacher.get("accuracy"),
        "agreement": student.get("agreement"),
        "params": final.get("params"),
        "nonzero_params": nonzero,
        "size_bytes": size,
        "zip_size_bytes": final.get("zip_size_bytes"),
        "effective_bytes": (int(nonzero) * bits / 8) if nonzero is not None else None,
        "weight_bits": bits,
        "macs": final.get("macs"),
        "latency_ms": final.get("latency_ms"),
        "latency_ms_b32": final.get("latency_ms_b32"),
        "compression_ratio": (teacher.get("size_bytes") / size) if size and teacher.get(
            "size_bytes") else None,
    }


def pareto_front(costs: Sequence[float | None], accuracies: Sequence[float | None]) -> list[int]:
    """Indices of the points no other point beats (≥ accuracy at ≤ cost, one strictly),
    sorted by cost — the runs worth choosing; every other run is worse on both axes than one."""
    points = [
        (i, float(c), float(a)) for i, (c, a) in enumerate(zip(costs, accuracies, strict=True))
        if c is not None and a is not None and math.isfinite(float(c)) and math.isfinite(float(a))
    ]
    front = []
    for i, c, a in points:
        dominated = any(
            (c2 <= c and a2 >= a) and (c2 < c or a2 > a) for j, c2, a2 in points if j != i
        )
        if not dominated:
            front.append((c, -a, i))
    return [i for _, _, i in sorted(front)]


def add_pareto_flags(rows: list[dict[str, Any]], size_key: str = "zip_size_bytes"
                     ) -> tuple[list[int], list[int]]:
    """Mark each row's ``pareto_size``/``pareto_latency``; return both fronts (row positions)."""
    acc = [r.get("accuracy") for r in rows]
    by_size = pareto_front([r.get(size_key) for r in rows], acc)
    by_latency = pareto_front([r.get("latency_ms") for r in rows], acc)
    for pos, row in enumerate(rows):
        row["pareto_size"] = pos in by_size
        row["pareto_latency"] = pos in by_latency
    return by_size, by_latency


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write sweep rows (atomically) with the columns of :data:`CSV_COLUMNS`."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    atomic_write_text(path, buf.getvalue())
    return path


def load_sweep(folder: str | Path) -> dict[str, Any]:
    """Read ``sweep.json`` of a sweep folder (plus its completed rows under ``rows``)."""
    folder = Path(folder)
    manifest = folder / SWEEP_FILE
    if not manifest.is_file():
        raise ConfigError(f"'{folder}' is not a sweep folder (no sweep.json)",
                          "Pass the --out folder of 'kdgui sweep'.")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read '{manifest}': {exc}", "The file is damaged; re-run "
                          "the sweep.") from None
    data["rows"] = [r["row"] for r in data.get("runs", []) if r.get("row")]
    return data


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
    "run_row",
    "run_sweep",
    "vary_config",
    "weight_bits",
    "write_csv",
]
