"""A stand-in for the engine's ``run`` job that yields its events quickly, without torch.

The events have the engine's schema (tests/gui/test_fake_engine_contract.py runs the real engine
and compares field by field), so what the window tests show holds for the real engine. It honours :class:`RunControl` the way the engine does (pause blocks between "batches", stop ends
with ``RunFinished(stopped=True)``) and writes ``metrics.jsonl`` and ``summary.json`` like a real
run folder, so the window's live and reopen paths can be tested in milliseconds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import dump_config
from kdgui.core.errors import DataError
from kdgui.core.events import (
    ArtifactEvent,
    EpochEvent,
    Event,
    LogEvent,
    RunControl,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StateEvent,
    StepEvent,
    event_from_dict,
)
from kdgui.core.presets import get_preset

LAYERS = ["features.0", "features.3", "features.6", "classifier"]
INPUT_SHAPE = [1, 8, 8]
CLASSES = 10


def _data_info() -> dict[str, Any]:
    """What the engine reports about the data (the embedded digits' numbers)."""
    return {"name": "digits", "source": "fake digits (1,797 images, 8×8)",
            "input_shape": INPUT_SHAPE, "num_classes": CLASSES,
            "class_names": [str(i) for i in range(CLASSES)], "n_train": 1438, "n_val": 359,
            "n_unlabelled": 0, "mean": [0.3049], "std": [0.3758]}


def _student_info(config: ExperimentConfig, params: int) -> dict[str, Any]:
    """A preset student's info, its spec built by core (torch-free) as the engine builds it."""
    cfg = config.student
    if not cfg.preset:
        return {"source": "spec", "name": "student", "params": params}
    spec = get_preset(cfg.preset).build(tuple(INPUT_SHAPE), CLASSES, cfg.width)
    return {"source": "preset", "name": cfg.preset, "width": cfg.width,
            "spec": spec.model_dump(), "params": params}


def _metrics(name: str, params: int, acc: float, *, stopped: bool) -> dict[str, Any]:
    """A stage's measurements; a stopped run, like the engine's, times batch 1 only."""
    out = {"name": name, "accuracy": acc, "input_shape": INPUT_SHAPE, "params": params,
           "nonzero_params": params, "size_bytes": 4 * params, "zip_size_bytes": 3 * params,
           "macs": 20 * params, "macs_note": "", "latency_ms": params / 1e5,
           "latency_ms_b32": None if stopped else params / 1e4, "latency_variant": "fp32",
           "top5": 1.0}
    if name == "student":
        out["agreement"] = 0.9
    return out


def _layers(params: int) -> list[dict[str, Any]]:
    """Per-layer rows as the engine measures them (a weight histogram on weighted layers)."""
    rows = []
    for i, name in enumerate(LAYERS):
        rows.append({
            "name": name, "type": "Linear" if name == "classifier" else "Conv2d",
            "out_shape": [1, 16 * (i + 1), 8, 8] if name != "classifier" else [1, CLASSES],
            "params": params // len(LAYERS), "nonzero": params // len(LAYERS), "sparsity": 0.0,
            "macs": 20 * params // len(LAYERS), "removed_channels": None, "rank": None,
            "bits": None,
            "hist": {"counts": [1.0, 4.0, 9.0, 4.0, 1.0],
                     "edges": [-1.0, -0.6, -0.2, 0.2, 0.6, 1.0]},
        })
    return rows


def _sparsity(progress: float) -> np.ndarray:
    """Per-layer sparsity, growing with the run's progress (as under gradual pruning)."""
    return np.linspace(0, 0.3 * progress, len(LAYERS), dtype=np.float32)


def _fast(label: str, candidates: dict[str, Any]) -> dict[str, Any]:
    return {"precision": "fp32", "channels_last": False, "compiled": False, "label": label,
            "reason": "fastest of 2 measured (auto)", "kl_bound": 1e-4, "kl_temperature": 4.0,
            "threads": 2, "candidates": candidates}


#: How the engine says teacher and student run (kdgui.engine.fast_path), as for the demo.
FAST_PATH = {"teacher": _fast("fp32", {}), "student": _fast("fp32", {
    label: {"ms": 1.5, "kl": -1.0, "refused": ""} for label in ("fp32", "fp32+channels_last")})}


def fake_run(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path = "runs",
    step_s: float = 0.004,
    steps_per_epoch: int = 20,
) -> Iterator[Event]:
    """The engine's ``run``: same arguments, same events (tests/gui/test_fake_engine_contract.py
    holds it to that), no torch. Step events come every ``log_every`` "batches" of ``step_s`` and at
    each epoch's first batch, as the engine's do."""
    control = control or RunControl()
    run_dir = Path(out_dir) if out_dir else Path(runs_root) / f"fake-{config.name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")  # as RunDir does
    log = (run_dir / "metrics.jsonl").open("a", encoding="utf-8")
    pause = threading.Event()

    def emit(ev: Event) -> Event:
        log.write(json.dumps(ev.to_dict()) + "\n")
        log.flush()
        return ev

    epochs = config.training.epochs
    total = epochs * steps_per_epoch
    data = _data_info()
    pairs: dict[str, list[list[str]]] = {"feature": [], "attention": []}
    yield emit(RunStarted(
        run_dir=str(run_dir), config=config.model_dump(mode="json"), data=data,
        teacher={"format": "kdgui-spec", "source": "demo", "version": 1, "num_classes": CLASSES,
                 "dataset": "fake digits", "val_accuracy": 0.97, "params": 100_000},
        student=_student_info(config, 20_000), pairs=pairs, epochs=epochs,
        steps_per_epoch=steps_per_epoch, device="cpu", teacher_cached=True, fast_path=FAST_PATH,
    ))
    yield emit(LogEvent(level="info", message="teacher runs in fp32: it runs only 4 batches"))
    step = 0
    stopped = False
    for epoch in range(1, epochs + 1):
        for batch in range(steps_per_epoch):
            if control.paused and not control.stop_requested:
                yield emit(StateEvent(state="paused"))
                control.wait_while_paused()
                if not control.stop_requested:
                    yield emit(StateEvent(state="resumed"))
            if control.stop_requested:
                stopped = True
                break
            pause.wait(step_s)  # the "batch"
            step += 1
            if step % config.training.log_every == 0 or batch == 0:  # and each epoch's first
                decay = float(np.exp(-step / (total / 3)))
                yield emit(StepEvent(
                    step=step, epoch=epoch,
                    losses={"total": 2.0 * decay + 0.1, "hard": 1.5 * decay + 0.05,
                            "soft": 2.4 * decay + 0.12, "feature": 0.0, "attention": 0.0},
                    lr=config.training.lr, samples_per_s=5000.0, progress=step / total,
                    eta_s=(total - step) * step_s, layer_names=list(LAYERS),
                    sparsity=_sparsity(step / total),
                ))
        if stopped:
            break
        yield emit(EpochEvent(
            epoch=epoch, step=step, train_loss=1.0 / epoch, train_accuracy=0.8 + 0.02 * epoch,
            val_accuracy=0.78 + 0.02 * epoch, teacher_accuracy=0.97, agreement=0.9,
            layer_names=list(LAYERS), sparsity=_sparsity(step / total),
            duration_s=steps_per_epoch * step_s,
        ))
    if stopped:
        yield emit(StateEvent(state="stopped"))
    teacher = _metrics("teacher", 100_000, 0.97, stopped=stopped)
    student = _metrics("student", 20_000, 0.95, stopped=stopped)
    yield emit(StageEvent(name="teacher", metrics=teacher, layers=_layers(100_000)))
    yield emit(StageEvent(name="student", metrics=student, layers=_layers(20_000)))
    summary = {"schema_version": 1, "name": config.name, "completed": not stopped,
               "stopped": stopped, "steps": step, "device": "cpu", "data": data, "pairs": pairs,
               "teacher": teacher, "student": student, "compression_ratio": 5.0,
               "accuracy_gap": 0.02, "stages": [], "exports": [], "fast_path": FAST_PATH}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    yield emit(ArtifactEvent(what="summary", path=str(run_dir / "summary.json")))
    yield emit(RunFinished(run_dir=str(run_dir), summary=summary, stopped=stopped))
    log.close()


def failing_run(config: ExperimentConfig, out_dir: Any = None, **_kw: Any) -> Iterator[Event]:
    """Fails the way the engine reports bad input: a RunFailed event, before any folder."""
    yield RunFailed(run_dir="", error=DataError(
        "dataset 'mnist:/nowhere' not found", "Check the path or use --download.").to_dict())


def raising_run(config: ExperimentConfig, out_dir: Any = None, **_kw: Any) -> Iterator[Event]:
    """An engine bug: an exception escapes the generator."""
    yield RunStarted(run_dir="", config={}, data={}, teacher={}, student={}, pairs={}, epochs=1,
                     steps_per_epoch=1, device="cpu", teacher_cached=False)
    raise RuntimeError("boom inside the engine")


def logged_events(run_dir: str | Path) -> list[Event]:
    """A run folder's ``metrics.jsonl`` read back as events, in the order the engine made them."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [event_from_dict(json.loads(line)) for line in lines]


def assert_control_honoured(events: list[Event], paused_at: float, stopped_at: float) -> None:
    """Pause and stop took effect at the next batch boundary, judged from a run's event log.

    The run must log a step event per batch (``log_every = 1``) and be paused once, resumed, then
    stopped; ``paused_at``/``stopped_at`` are the ``time.time()`` just before each request. Each
    event carries the time the engine made it, so counting the batches the engine finished after
    a request does not depend on how fast the machine is: at most the batch in flight.
    """
    story = [e.state if isinstance(e, StateEvent) else e.kind for e in events]
    assert story.count("paused") == story.count("resumed") == story.count("stopped") == 1, story
    paused, resumed, stopped = (story.index(s) for s in ("paused", "resumed", "stopped"))
    assert paused < resumed < stopped
    # pause: the batch in flight may finish; then "paused", and nothing runs until "resumed"
    assert sum(e.kind == "step" and e.time > paused_at for e in events[:paused]) <= 1
    assert resumed == paused + 1
    assert "step" in story[resumed:stopped]  # it did go on after resuming
    # stop: the batch in flight may finish (and end its epoch), then the run is wrapped up
    late = [e.kind for e in events[resumed:stopped] if e.time > stopped_at]
    assert late in ([], ["step"], ["epoch"], ["step", "epoch"]), late
    assert not {"step", "epoch"} & set(story[stopped:]), story[stopped:]
    assert story[-1] == "finished" and events[-1].stopped is True
    steps = [e.step for e in events if isinstance(e, StepEvent)]
    assert steps == list(range(1, len(steps) + 1))  # one event per batch, none lost
    assert events[-1].summary["steps"] == steps[-1]
