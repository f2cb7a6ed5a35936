"""training.tensorboard: the run's scalars land where TensorBoard reads them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from kdgui.core.events import EpochEvent, LogEvent, RunFinished, RunStarted, StageEvent, StepEvent
from kdgui.engine.tensorboard import LOG_DIR, with_tensorboard


def _run(run_dir, received):
    """A run's event stream as the session yields it; records the commands sent in."""
    received.append((yield RunStarted(run_dir=str(run_dir), config={}, data={}, teacher={},
                                      student={}, pairs={}, epochs=1, steps_per_epoch=2,
                                      device="cpu", teacher_cached=True)))
    for step, total in ((1, 2.0), (2, 1.5)):
        received.append((yield StepEvent(step=step, epoch=1, losses={"total": total, "soft": 1.0},
                                         lr=0.01, samples_per_s=100.0, progress=step / 2,
                                         eta_s=0.0)))
    yield EpochEvent(epoch=1, step=2, train_loss=1.5, train_accuracy=0.6, val_accuracy=0.55,
                     teacher_accuracy=0.9, agreement=0.7, layer_names=[],
                     sparsity=np.zeros(0), duration_s=1.0)
    yield StageEvent(name="teacher", metrics={"accuracy": 0.9, "params": 1000})
    yield StageEvent(name="student", metrics={"accuracy": 0.6, "params": 100})
    yield RunFinished(run_dir=str(run_dir), summary={"done": True})
    return {"done": True}


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_scalars_are_written_and_the_run_is_unchanged(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    received: list = []
    gen = with_tensorboard(_run(tmp_path, received))
    events = [next(gen), gen.send("pause")]
    with pytest.raises(StopIteration) as end:
        while True:
            events.append(next(gen))
    assert end.value.value == {"done": True}
    assert [e.kind for e in events] == ["started", "step", "step", "epoch", "stage", "stage",
                                        "finished"]
    assert received[0] == "pause"  # commands still reach the run
    scalars = _scalars(tmp_path / LOG_DIR)
    assert scalars["loss/total"] == [(1, 2.0), (2, 1.5)]
    assert scalars["accuracy/validation"] == [(2, pytest.approx(0.55))]
    assert scalars["stages/params"] == [(0, 1000.0), (1, 100.0)]


def test_without_tensorboard_the_run_goes_on_and_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    events = list(with_tensorboard(_run(tmp_path, [])))
    warnings = [e for e in events if isinstance(e, LogEvent) and e.level == "warning"]
    assert len(warnings) == 1 and "pip install tensorboard" in warnings[0].message
    assert events[-1].kind == "finished" and not (tmp_path / LOG_DIR).exists()
