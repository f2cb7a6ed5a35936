"""A sweep's results: one sweep.csv row per run, its Pareto flags, and reading sweep.json back.

Split from :mod:`kdgui.engine.sweep`; torch-free, so the report and the window read a sweep folder
without the engine.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdgui.core.components.compression import STEP_KINDS, method_component, method_traits
from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import ConfigError
from kdgui.core.run_folders import SWEEP_FILE

#: Columns of sweep.csv, in order.
CSV_COLUMNS = [
    "index", "key", "value", "label", "status", "run_dir", "accuracy", "student_accuracy",
    "teacher_accuracy", "agreement", "params", "nonzero_params", "size_bytes", "zip_size_bytes",
    "effective_bytes", "weight_bits", "macs", "latency_ms", "latency_ms_b32", "compression_ratio",
    "duration_s", "pareto_size", "pareto_latency",
]
#: Size measures a Pareto front can use (see :func:`run_row`).
SIZE_KEYS = ("zip_size_bytes", "size_bytes", "effective_bytes", "nonzero_params", "params")


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
