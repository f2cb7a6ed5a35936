"""A stand-in for ``kdgui.engine.session.run`` that yields realistic events quickly, no torch.

It honours :class:`RunControl` the way the engine does (pause blocks between "batches", stop ends
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
    RunControl,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StateEvent,
    StepEvent,
)

LAYERS = ["features.0", "features.3", "features.6", "classifier"]


def _metrics(params: int, acc: float) -> dict[str, Any]:
    return {"params": params, "nonzero_params": params, "size_bytes": 4 * params,
            "zip_size_bytes": 3 * params, "macs": 20 * params, "latency_ms": params / 1e5,
            "latency_ms_b32": params / 1e4, "accuracy": acc}


def fake_run(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    step_s: float = 0.004,
    steps_per_epoch: int = 20,
) -> Iterator[Event]:
    control = control or RunControl()
    run_dir = Path(out_dir or "runs/fake")
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
    yield emit(RunStarted(
        run_dir=str(run_dir), config=config.model_dump(mode="json"), data={"name": "fake"},
        teacher={"params": 100_000, "val_accuracy": 0.97}, student={"params": 20_000},
        pairs={}, epochs=epochs, steps_per_epoch=steps_per_epoch, device="cpu",
        teacher_cached=True,
    ))
    step = 0
    stopped = False
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
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
            if step % config.training.log_every == 0 or step == 1:
                decay = np.exp(-step / (total / 3))
                yield emit(StepEvent(
                    step=step, epoch=epoch,
                    losses={"total": 2.0 * decay + 0.1, "hard": 1.5 * decay + 0.05,
                            "soft": 2.4 * decay + 0.12},
                    lr=config.training.lr, samples_per_s=5000.0, progress=step / total,
                    eta_s=(total - step) * step_s,
                ))
        if stopped:
            break
        yield emit(EpochEvent(
            epoch=epoch, step=step, train_loss=1.0 / epoch, train_accuracy=0.8 + 0.02 * epoch,
            val_accuracy=0.78 + 0.02 * epoch, teacher_accuracy=0.97, agreement=0.9,
            layer_names=LAYERS, sparsity=np.linspace(0, 0.1 * epoch, len(LAYERS), dtype=np.float32),
            duration_s=steps_per_epoch * step_s,
        ))
    if stopped:
        yield emit(StateEvent(state="stopped"))
    teacher = _metrics(100_000, 0.97)
    student = _metrics(20_000, 0.95)
    yield emit(StageEvent(name="teacher", metrics=teacher,
                          layers=[{"name": "features.0", "hist": {"counts": [1, 4, 9, 4, 1],
                                   "edges": [-1, -0.6, -0.2, 0.2, 0.6, 1]}}]))
    yield emit(StageEvent(name="student", metrics=student))
    summary = {"name": config.name, "completed": not stopped, "stopped": stopped,
               "teacher": teacher, "student": student, "compression_ratio": 5.0,
               "accuracy_gap": 0.02, "stages": [], "exports": []}
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
