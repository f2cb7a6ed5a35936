"""The one training loop: the same updates as a hand-written loop, its events, control and checks."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.config import DistillConfig, TrainingConfig
from kdgui.core.errors import RunStopped, TrainingDiverged
from kdgui.core.events import EpochEvent, LogEvent, RunControl, StateEvent, StepEvent
from kdgui.engine.compress.finetune import make_finetune
from kdgui.engine.distill import Distiller
from kdgui.engine.train_loop import Phase, TrainLoop, hard_label_trainer
from kdgui.engine.training import BatchSource, make_optimizer, make_scheduler

N, BATCH, FEATURES, CLASSES = 96, 16, 12, 4  # 6 steps per epoch


def data(seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, FEATURES, generator=gen)
    y = (x[:, :CLASSES].argmax(1)).long()  # learnable: the largest of the first 4 features
    return TensorDataset(x, y)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))


def sgd_phase(model: nn.Module, ds: TensorDataset, epochs: int, **kw) -> Phase:
    trainer = hard_label_trainer(model, "cpu")
    settings = TrainingConfig(optimizer="sgd", lr=0.1, momentum=0.9, schedule="none")
    opt = make_optimizer(trainer.trainable_parameters(), settings)
    source = BatchSource(ds, BATCH, shuffle=True, seed=3)
    return Phase(stage=kw.pop("stage", "finetune"), distiller=trainer, source=source,
                 optimizer=opt, scheduler=make_scheduler(opt, settings, epochs * len(source)),
                 epochs=epochs, lr_setting="training.lr = 0.1", **kw)


def test_hard_label_phase_makes_the_same_updates_as_a_hand_written_loop() -> None:
    ds = data()
    by_hand, by_loop = mlp(), mlp()
    opt = torch.optim.SGD(by_hand.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(3)
    x_all, y_all = ds.tensors
    for _ in range(2):
        order = torch.randperm(N, generator=gen)
        for i in range(0, N, BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(by_hand(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    list(TrainLoop("cpu").run(sgd_phase(by_loop, ds, 2)))
    for a, b in zip(by_hand.parameters(), by_loop.parameters(), strict=True):
        assert torch.equal(a, b)


def test_steps_count_on_across_phases_and_on_step_counts_the_phase() -> None:
    ds = data()
    loop = TrainLoop("cpu", log_every=4)
    first = list(loop.run(sgd_phase(mlp(), ds, 1, stage="teacher")))
    assert loop.step == 6
    calls: list[int] = []
    events = list(loop.run(sgd_phase(mlp(1), ds, 2, on_step=calls.append)))
    assert calls == list(range(1, 13))  # the phase's own count, for pruning schedules
    steps = [e for e in events if isinstance(e, StepEvent)]
    # global steps: 6 before; every 4th, and each epoch's first (7 and 13) for a point at once
    assert [e.step for e in steps] == [7, 8, 12, 13, 16]
    assert [e.stage for e in steps] == ["finetune"] * 5
    # progress over this phase only: its steps 1, 2, 6, 7 and 10 of 12
    assert [round(e.progress, 4) for e in steps] == [round(t / 12, 4) for t in (1, 2, 6, 7, 10)]
    assert [e.step for e in first if isinstance(e, StepEvent)] == [1, 4]
    assert set(steps[0].losses) >= {"hard", "total"} and steps[0].losses["soft"] == 0.0


def test_the_first_step_of_each_epoch_sends_an_event_of_that_step_alone() -> None:
    """A live plot's first point comes at step 1, not log_every steps after Run; each event's
    losses are the mean over the steps since the previous one."""
    ds = data()
    by_hand, by_loop = mlp(), mlp()
    opt = torch.optim.SGD(by_hand.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(3)
    x_all, y_all = ds.tensors
    losses: list[float] = []
    order = torch.randperm(N, generator=gen)
    for i in range(0, N, BATCH):
        idx = order[i:i + BATCH]
        loss = F.cross_entropy(by_hand(x_all[idx]), y_all[idx])
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    events = list(TrainLoop("cpu", log_every=4).run(sgd_phase(by_loop, ds, 1)))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == [1, 4]
    assert steps[0].losses["total"] == pytest.approx(losses[0], rel=1e-5)
    assert steps[1].losses["total"] == pytest.approx(sum(losses[1:4]) / 3, rel=1e-5)


def test_epoch_events_carry_validation_and_teacher_agreement() -> None:
    ds, model = data(), mlp()
    teacher_eval = {"accuracy": 0.5, "predictions": torch.zeros(N, dtype=torch.long).numpy()}
    events = list(TrainLoop("cpu").run(
        sgd_phase(model, ds, 2, validation=ds, teacher_eval=teacher_eval)))
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert [e.epoch for e in epochs] == [1, 2] and [e.step for e in epochs] == [6, 12]
    with torch.no_grad():
        preds = model(ds.tensors[0]).argmax(1)
    assert epochs[-1].val_accuracy == pytest.approx(float((preds == ds.tensors[1]).float().mean()))
    assert epochs[-1].agreement == pytest.approx(float((preds == 0).float().mean()))
    assert epochs[-1].teacher_accuracy == 0.5
    assert len(epochs[-1].layer_names) == len(epochs[-1].sparsity) == 2  # two Linear layers


def test_a_phase_without_validation_ends_each_epoch_with_a_log_line() -> None:
    events = list(TrainLoop("cpu").run(sgd_phase(mlp(), data(), 2, report_sparsity=False)))
    logs = [e.message for e in events if isinstance(e, LogEvent)]
    assert [m.split(":")[0] for m in logs] == ["fine-tune epoch 1/2", "fine-tune epoch 2/2"]
    assert not any(isinstance(e, EpochEvent) for e in events)
    assert all(e.layer_names == [] for e in events if isinstance(e, StepEvent))


def test_a_non_finite_loss_stops_with_the_step_and_the_setting_to_change() -> None:
    ds = data()
    ds.tensors[0][40] = float("nan")  # one bad sample: the batch holding it diverges
    with pytest.raises(TrainingDiverged) as info:
        list(TrainLoop("cpu").run(sgd_phase(mlp(), ds, 1)))
    assert "at step" in info.value.what and "nan" in info.value.what
    assert "training.lr = 0.1" in info.value.fix and "learning rate" in info.value.fix


def test_stop_raises_at_the_next_batch_and_pause_blocks_until_resume() -> None:
    control = RunControl()
    loop = TrainLoop("cpu", control, log_every=1)
    calls: list[int] = []
    gen = loop.run(sgd_phase(mlp(), data(), 3, on_step=calls.append))
    assert isinstance(next(gen), StepEvent)
    control.pause()
    timer = threading.Timer(0.2, control.resume)
    timer.start()
    paused, resumed = next(gen), next(gen)  # the second only once the timer resumed it
    assert isinstance(paused, StateEvent) and paused.state == "paused"
    assert isinstance(resumed, StateEvent) and resumed.state == "resumed"
    assert isinstance(next(gen), StepEvent)
    control.stop()
    with pytest.raises(RunStopped):
        next(gen)
    assert calls == [1, 2]  # no optimizer step after the stop request


def test_distillation_with_cached_teacher_logits_equals_running_the_teacher() -> None:
    ds = data()
    teacher = mlp(5).eval()
    cfg = DistillConfig(alpha=0.7, temperature=4.0)
    results = []
    for cached in (False, True):
        student = mlp(1)
        distiller = Distiller(teacher, student, cfg, (1, 1, 1))
        source = BatchSource(ds, BATCH, shuffle=True, seed=3)
        with torch.no_grad():
            cache = teacher(ds.tensors[0]) if cached else None
        opt = make_optimizer(distiller.trainable_parameters(),
                             TrainingConfig(optimizer="sgd", lr=0.05, schedule="none"))
        list(TrainLoop("cpu").run(Phase(
            stage="distill", distiller=distiller, source=source, optimizer=opt, scheduler=None,
            epochs=2, lr_setting="training.lr = 0.05", cache=cache)))
        results.append([p.detach().clone() for p in student.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_make_finetune_learns_the_labels_and_keeps_its_contract() -> None:
    ds, model = data(), mlp()
    steps: list[int] = []
    events = list(make_finetune(ds, batch_size=BATCH, lr=1e-2, validation=ds)(
        model, 5, on_step=steps.append))
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert steps == list(range(1, 31)) and len(epochs) == 5
    assert epochs[-1].val_accuracy > epochs[0].val_accuracy
    assert not model.training  # left in eval mode, as before


def test_train_accuracy_counts_labelled_samples_only() -> None:
    """Half the samples unlabelled (-1, an unlabelled transfer set): accuracy is over the
    labelled half, so a model that learns them passes 50% (counting -1 as wrong capped it)."""
    ds = data()
    x, y = ds.tensors
    y = y.clone()
    y[::2] = -1
    epochs = [e for e in TrainLoop("cpu").run(
        sgd_phase(mlp(), TensorDataset(x, y), 8, validation=ds))
              if isinstance(e, EpochEvent)]
    assert len(epochs) == 8
    assert epochs[-1].train_accuracy > 0.6
