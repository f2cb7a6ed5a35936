"""The terminal printer: teacher pre-training shows the teacher's own epoch count."""

from __future__ import annotations

import io

import numpy as np

from kdgui.cli.main import main
from kdgui.cli.printer import EventPrinter
from kdgui.core.events import EpochEvent, StepEvent


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so the printer draws its progress bar."""

    def isatty(self) -> bool:
        return True


def _epoch(epoch: int, stage: str) -> EpochEvent:
    return EpochEvent(epoch=epoch, step=10 * epoch, train_loss=0.5, train_accuracy=0.8,
                      val_accuracy=0.75, teacher_accuracy=None, agreement=0.0,
                      layer_names=[], sparsity=np.zeros(0, dtype=np.float32), duration_s=1.0,
                      stage=stage)


def _step(epoch: int, stage: str) -> StepEvent:
    return StepEvent(step=3, epoch=epoch, losses={"total": 0.7}, lr=1e-3, samples_per_s=100.0,
                     progress=0.25, eta_s=12.0, stage=stage)


def test_teacher_epochs_print_with_the_teachers_count() -> None:
    out = _Terminal()
    printer = EventPrinter(out, teacher_epochs=3)
    printer(_step(1, "teacher"))
    printer(_epoch(1, "teacher"))
    text = out.getvalue()
    assert "teacher epoch 1/3" in text  # the bar
    assert "[teacher] epoch 1/3" in text  # the epoch line
    assert "/0" not in text


def test_an_unknown_count_is_a_question_mark_not_zero() -> None:
    out = _Terminal()
    printer = EventPrinter(out)  # no teacher_epochs given (and no RunStarted yet)
    printer(_step(2, "teacher"))
    printer(_epoch(2, "finetune"))
    text = out.getvalue()
    assert "teacher epoch 2/?" in text and "[finetune] epoch 2/?" in text
    assert "/0" not in text


def test_cli_run_with_a_teacher_trained_first_counts_its_epochs(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\nteacher:\n  path: null\n  arch: 'preset:cnn-small'\n"
                   "  train_epochs: 2\nstudent:\n  preset: cnn-tiny\ntraining:\n  epochs: 1\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "[teacher] epoch 1/2" in text and "[teacher] epoch 2/2" in text
    assert "epoch 1/1" in text  # then the distillation's own count
    assert "/0" not in text
