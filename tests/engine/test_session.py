"""A run end to end: events, run folder, control (pause/stop), resume, divergence."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from kdgui.core.config import demo_config
from kdgui.core.events import (
    EpochEvent,
    RunControl,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StateEvent,
    StepEvent,
    event_from_dict,
)
from kdgui.engine.session import run


def _quick(epochs: int = 2, **training):
    cfg = demo_config()
    cfg.training.epochs = epochs
    cfg.training.log_every = 5
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg


def test_demo_run_streams_plain_events_and_writes_the_folder(tmp_path) -> None:
    events = list(run(_quick(2), tmp_path / "r"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert isinstance(events[0], RunStarted) and events[0].teacher_cached
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps and {"hard", "soft", "total"} <= set(steps[0].losses)
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    # the heatmap's rows: the same layers at every step and epoch; no pruning here, so dense
    assert steps[0].layer_names == epochs[-1].layer_names and len(steps[0].layer_names) >= 3
    assert steps[0].sparsity.shape == (len(steps[0].layer_names),)
    assert steps[0].sparsity.dtype == np.float32 and not steps[0].sparsity.any()
    assert [e.epoch for e in epochs] == [1, 2]
    assert isinstance(epochs[0].sparsity, np.ndarray)
    assert len(epochs[0].layer_names) == len(epochs[0].sparsity)
    for e in events:  # nothing live crosses the boundary: everything is JSON-able
        json.dumps(e.to_dict())
    assert {s.name for s in events if isinstance(s, StageEvent)} >= {"teacher", "student"}

    folder = tmp_path / "r"
    summary = json.loads((folder / "summary.json").read_text())
    for who in ("teacher", "student"):
        for key in ("accuracy", "params", "size_bytes", "macs", "latency_ms"):
            assert key in summary[who], (who, key)
        assert 0 <= summary[who]["accuracy"] <= 1
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(events)
    assert isinstance(event_from_dict(json.loads(lines[-1])), RunFinished)
    assert (folder / "config.yaml").is_file() and (folder / "checkpoints" / "last.pt").is_file()


def test_stop_ends_cleanly_with_a_partial_summary(tmp_path) -> None:
    gen = run(_quick(5), tmp_path / "r")
    events = []
    for event in gen:
        events.append(event)
        if isinstance(event, StepEvent):
            events.append(gen.send("stop"))  # send returns the next event
            break
    events.extend(gen)
    assert any(isinstance(e, StateEvent) and e.state == "stopped" for e in events)
    assert isinstance(events[-1], RunFinished) and events[-1].stopped
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stopped"] and not summary["completed"]


def test_pause_from_another_thread_blocks_the_engine_until_resume(tmp_path) -> None:
    control = RunControl()
    gen = run(_quick(3), tmp_path / "r", control=control)
    seen = []
    resumed_by = threading.Timer(0.3, control.resume)
    for event in gen:
        seen.append(event)
        if isinstance(event, StepEvent) and not control.paused and not resumed_by.is_alive() \
                and not any(isinstance(e, StateEvent) for e in seen):
            control.pause()
            resumed_by.start()
    states = [e.state for e in seen if isinstance(e, StateEvent)]
    assert states[:2] == ["paused", "resumed"]
    assert isinstance(seen[-1], RunFinished) and not seen[-1].stopped


def test_resume_continues_after_the_last_checkpoint(tmp_path) -> None:
    folder = tmp_path / "r"
    gen = run(_quick(3), folder)
    for event in gen:
        if isinstance(event, EpochEvent) and event.epoch == 1:
            break
    gen.close()  # as if the process were killed after epoch 1
    assert not (folder / "summary.json").exists()
    events = list(run(_quick(3), folder, resume=True))
    started = events[0]
    assert isinstance(started, RunStarted) and started.resumed_from_epoch == 1
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == [2, 3]
    assert isinstance(events[-1], RunFinished)


def test_a_diverging_loss_stops_with_a_clear_event(tmp_path) -> None:
    cfg = _quick(2, lr=1e4, optimizer="sgd", schedule="none")
    cfg.student.preset = "mlp-small"  # no BatchNorm to tame the blow-up
    events = list(run(cfg, tmp_path / "r"))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and not failed.internal
    assert failed.error["type"] == "TrainingDiverged"
    assert "step" in failed.error["what"] and "learning rate" in failed.error["fix"]


def test_bad_input_fails_before_any_folder_is_written(tmp_path) -> None:
    cfg = demo_config()
    cfg.data.spec = f"mnist:{tmp_path / 'nowhere'}"
    events = list(run(cfg, tmp_path / "r"))
    assert len(events) == 1 and isinstance(events[0], RunFailed)
    assert not (tmp_path / "r").exists()


def test_feature_and_attention_losses_run_with_auto_pairs(tmp_path) -> None:
    cfg = _quick(1)
    cfg.distill.alpha, cfg.distill.beta, cfg.distill.gamma = 0.5, 0.2, 0.2
    events = list(run(cfg, tmp_path / "r"))
    started = events[0]
    assert isinstance(started, RunStarted) and not started.teacher_cached
    assert started.pairs["feature"] and started.pairs["attention"]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[0].losses["feature"] > 0 and steps[0].losses["attention"] > 0
    assert isinstance(events[-1], RunFinished)


def test_a_pipeline_run_reports_stages_sparsity_and_verified_exports(tmp_path) -> None:
    from kdgui.core.config import CompressionStep

    cfg = _quick(1)
    cfg.compression.steps = [
        CompressionStep(kind="prune", method="magnitude",
                        params={"sparsity": 0.6, "schedule": "gradual", "frequency": 2},
                        finetune_epochs=1),
        CompressionStep(kind="quantize", method="fake", params={"bits": 6}),
    ]
    cfg.export.formats = ["onnx", "pt2"]
    events = list(run(cfg, tmp_path / "r"))
    assert isinstance(events[-1], RunFinished), events[-1]
    finetune = [e for e in events if isinstance(e, StepEvent) and e.stage == "finetune"]
    assert finetune and finetune[-1].sparsity.max() > finetune[0].sparsity.max()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    stages = summary["stages"]
    assert len(stages) >= 2
    for stage in stages:
        for key in ("name", "accuracy", "params", "nonzero_params", "size_bytes",
                    "zip_size_bytes", "macs", "latency_ms"):
            assert key in stage, (stage.get("name"), key)
    pruned = next(s for s in stages if "magnitude" in s["name"])
    assert pruned["nonzero_params"] < 0.6 * pruned["params"]
    exports = {e["format"]: e for e in summary["exports"]}
    assert exports["onnx"]["ok"] and exports["onnx"]["verified"]
    assert exports["pt2"]["ok"] and exports["pt2"]["verified"]


def test_a_run_with_its_own_thread_count_puts_the_old_one_back(tmp_path) -> None:
    import torch

    before = torch.get_num_threads()
    cfg = _quick(1, num_threads=1)
    assert isinstance(list(run(cfg, tmp_path / "r"))[-1], RunFinished)
    assert torch.get_num_threads() == before


def test_one_shot_pruning_stays_sparse_at_every_fine_tuning_step(tmp_path) -> None:
    from kdgui.core.config import CompressionStep

    cfg = _quick(1)
    cfg.compression.steps = [CompressionStep(kind="prune", method="magnitude",
                                             params={"sparsity": 0.6}, finetune_epochs=1)]
    events = list(run(cfg, tmp_path / "r"))
    finetune = [e for e in events if isinstance(e, StepEvent) and e.stage == "finetune"]
    assert finetune and all(e.sparsity.min() > 0.55 for e in finetune)


def test_an_architecture_only_teacher_is_trained_first(tmp_path) -> None:
    cfg = _quick(1)
    cfg.teacher.path = None
    cfg.teacher.arch = "preset:cnn-small"
    cfg.teacher.train_epochs = 2
    cfg.student.preset = "cnn-tiny"
    events = list(run(cfg, tmp_path / "r"))
    assert isinstance(events[-1], RunFinished), events[-1]
    teacher_epochs = [e for e in events if isinstance(e, EpochEvent) and e.stage == "teacher"]
    assert [e.epoch for e in teacher_epochs] == [1, 2]
    assert teacher_epochs[-1].val_accuracy > 0.5
    summary = events[-1].summary
    assert summary["teacher"]["accuracy"] == pytest.approx(teacher_epochs[-1].val_accuracy)


def test_eta_counts_down_with_the_steps_left(tmp_path) -> None:
    events = [e for e in run(_quick(3), tmp_path / "r") if isinstance(e, StepEvent)]
    first, last = events[0], events[-1]
    per_step_first = first.eta_s / (3 * 23 - first.step)
    per_step_last = last.eta_s / max(3 * 23 - last.step, 1)
    # The same per-step estimate all along (within noise), not one inflated after each event.
    assert last.eta_s < first.eta_s
    assert per_step_last < 2 * per_step_first + 1e-3


def test_a_stop_from_another_thread_leaves_a_complete_run_folder(tmp_path) -> None:
    """What the window's Stop button does: the run ends stopped, measured, saved, summarised."""
    from kdgui.core.run_folders import student_path

    cfg = _quick(3, log_every=1)
    cfg.export.formats = ["onnx"]  # skipped when stopped: the folder is complete without it
    control = RunControl()
    events = []
    for event in run(cfg, tmp_path / "r", control=control):
        events.append(event)
        if isinstance(event, StepEvent) and event.step == 3:
            stopper = threading.Thread(target=control.stop)
            stopper.start()
            stopper.join()
    steps = [e.step for e in events if isinstance(e, StepEvent)]
    assert max(steps) == 3  # the stop took effect before the next batch
    assert isinstance(events[-1], RunFinished) and events[-1].stopped
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stopped"] and not summary["completed"] and summary["steps"] == max(steps)
    assert student_path(tmp_path / "r").is_file()
    for who in ("teacher", "student"):  # measured even though stopped
        assert 0 <= summary[who]["accuracy"] <= 1 and summary[who]["latency_ms"] > 0
    assert summary["exports"] == [] and not (tmp_path / "r" / "export").exists()


def test_a_stop_during_compression_fine_tuning_keeps_what_was_measured(tmp_path) -> None:
    from kdgui.core.config import CompressionStep

    cfg = _quick(1)
    cfg.compression.steps = [CompressionStep(kind="prune", method="magnitude",
                                             params={"sparsity": 0.5}, finetune_epochs=2)]
    gen = run(cfg, tmp_path / "r")
    events = []
    for event in gen:
        events.append(event)
        if isinstance(event, StepEvent) and event.stage == "finetune":
            events.append(gen.send("stop"))
            break
    events.extend(gen)
    assert isinstance(events[-1], RunFinished) and events[-1].stopped, events[-1]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stopped"] and [s["name"] for s in summary["stages"]] == ["before"]
    assert (tmp_path / "r" / "student").is_dir()


def test_teacher_pre_training_takes_its_optimizer_from_the_config(tmp_path) -> None:
    cfg = _quick(1)
    cfg.teacher.path = None
    cfg.teacher.arch = "preset:cnn-tiny"
    cfg.teacher.train_epochs = 1
    cfg.teacher.train_optimizer, cfg.teacher.train_lr = "sgd", 0.05
    cfg.student.preset = "cnn-tiny"
    events = list(run(cfg, tmp_path / "r"))
    assert isinstance(events[-1], RunFinished), events[-1]
    teacher = [e for e in events if isinstance(e, StepEvent) and e.stage == "teacher"]
    distill = [e for e in events if isinstance(e, StepEvent) and e.stage == "distill"]
    assert teacher and {e.lr for e in teacher} == {0.05}  # no schedule for the teacher by default
    assert teacher[-1].layer_names == []  # a teacher's layers are not the student's heatmap
    assert distill[0].step > teacher[-1].step  # one step count across the run's phases


def test_an_export_whose_check_did_not_run_is_not_ok(tmp_path, monkeypatch) -> None:
    """"ok" in summary.json states what ran: a file written without its reload and comparison
    (an exporter that skipped it) is reported as not ok, with the reason."""
    import kdgui.engine.export as export_pkg

    real = export_pkg.export_model

    def unchecked(*args, **kwargs):
        result = real(*args, **kwargs)
        result.verified = False
        return result

    monkeypatch.setattr(export_pkg, "export_model", unchecked)
    cfg = _quick(1)
    cfg.export.formats = ["state_dict", "onnx"]
    events = list(run(cfg, tmp_path / "r"))
    assert isinstance(events[-1], RunFinished), events[-1]
    exports = json.loads((tmp_path / "r" / "summary.json").read_text())["exports"]
    assert [(e["format"], e["ok"], e["verified"]) for e in exports] == [
        ("state_dict", False, False), ("onnx", False, False)]
    assert all("did not run" in e["error"] for e in exports)


def test_a_run_without_a_folder_goes_to_the_same_default_root_as_the_window(
    tmp_path, monkeypatch
) -> None:
    """``$KDGUI_RUNS`` is where the window and history look; a headless run with no --out must
    land there too, not in ./runs."""
    monkeypatch.setenv("KDGUI_RUNS", str(tmp_path / "shared-root"))
    events = list(run(_quick(1)))
    assert isinstance(events[-1], RunFinished), events[-1]
    assert Path(events[-1].run_dir).parent == tmp_path / "shared-root"
