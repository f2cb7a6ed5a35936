"""Issue 17.1: data.exclude_classes, the bias correction, and the missing-digit lesson."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.bias_correction import (
    apply_shifts,
    frequency_matching_shifts,
    per_class_accuracy,
    teacher_shares,
)
from kdgui.engine.data.load import load_data

MNIST_RAW = Path("/work/shared/data/MNIST/raw")


def _split(cfg: DataConfig) -> tuple[torch.Tensor, ...]:
    bundle = load_data(cfg)
    return (*bundle.train.tensors, *bundle.val.tensors)


def test_exclude_classes_removes_exactly_those_training_samples_and_keeps_validation() -> None:
    base = DataConfig(spec="digits", val_fraction=0.2)
    _, y_tr, x_va, y_va = _split(base)
    _, ex_y, ex_xva, ex_yva = _split(base.model_copy(update={"exclude_classes": [3, 7]}))
    keep = (y_tr != 3) & (y_tr != 7)
    assert len(ex_y) == int(keep.sum()) < len(y_tr)
    assert torch.equal(ex_y, y_tr[keep])
    # Same split and images; normalization statistics come from the transfer set only.
    assert torch.equal(ex_yva, y_va)
    assert int((ex_yva == 3).sum()) == int((y_va == 3).sum()) > 0
    assert ex_xva.shape == x_va.shape


def test_exclude_classes_out_of_range_is_a_data_error() -> None:
    with pytest.raises(DataError, match="classes 0 to 9"):
        load_data(DataConfig(spec="digits", exclude_classes=[10]))
    with pytest.raises(ValidationError, match="≥ 0"):
        DataConfig(exclude_classes=[-1])
    with pytest.raises(ValidationError, match="repeated"):
        DataConfig(exclude_classes=[3, 3])
    # As typed after --set or in a text field.
    assert DataConfig(exclude_classes="7, 3").exclude_classes == [3, 7]
    assert DataConfig(exclude_classes=3).exclude_classes == [3]  # --set data.exclude_classes=3
    with pytest.raises(ValidationError, match="not a list of class ids"):
        DataConfig(exclude_classes="three")


def test_bias_correction_restores_recall_of_a_class_with_a_too_low_bias() -> None:
    rng = np.random.default_rng(0)
    n, k = 3000, 4
    labels = rng.integers(0, k, n)
    teacher = rng.normal(0, 1, (n, k)) + 4.0 * np.eye(k)[labels]
    student = teacher + rng.normal(0, 0.5, (n, k))
    student[:, 2] -= 5.0  # never trained on class 2: its output is too low
    before = per_class_accuracy(student, labels, k)[2]
    shifts = frequency_matching_shifts(student, [2], teacher_shares(teacher, k))
    model = nn.Sequential(nn.Linear(k, k))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(k))
        model[0].bias.zero_()
    apply_shifts(model, shifts, k)
    corrected = model(torch.as_tensor(student, dtype=torch.float32)).detach().numpy()
    after = per_class_accuracy(corrected, labels, k)[2]
    assert before < 0.3 and after > 0.85
    assert 4.0 < shifts[2] < 6.0
    # The other classes keep most of their recall.
    assert min(per_class_accuracy(corrected, labels, k)[c] for c in (0, 1, 3)) > 0.8


def test_missing_digit_lesson_on_digits(tmp_path: Path) -> None:
    from kdgui.engine.lessons_kd import run_missing_digit

    gen = run_missing_digit(tmp_path, spec="digits")
    events = list(gen)
    result = json.loads((tmp_path / "lesson.json").read_text())
    assert events[-1].kind == "job_finished"
    models = result["models"]
    assert models["labels only"]["accuracy_on_3"] == 0.0
    distilled = models["distilled"]["accuracy_on_3"]
    assert distilled > 0.1 and distilled > models["labels only"]["accuracy_on_3"]
    assert models["distilled + bias"]["accuracy_on_3"] >= distilled
    assert result["bias_shift"] > 0
    held = result["held_out"]
    assert held == {"class": 3, "before": distilled,
                    "after": models["distilled + bias"]["accuracy_on_3"]}
    assert any("before the bias correction" in e.message for e in events if e.kind == "log")
    assert [row[0] for row in result["compare"]][:2] == ["errors, distilled without 3s",
                                                         "accuracy on 3s, distilled"]
    assert result["paper"]["test_errors"] == 206


def test_without_mnist_the_lesson_says_where_it_looked_and_what_to_pass(tmp_path, monkeypatch):
    from kdgui.engine import lessons_kd

    monkeypatch.delenv("KDGUI_MNIST_ROOT", raising=False)
    monkeypatch.setattr(lessons_kd, "MNIST_ROOTS", (str(tmp_path / "nowhere"),))
    assert lessons_kd.lesson_data_spec() == "digits"
    lines = lessons_kd._data_lines("digits", chosen=False)
    assert "MNIST was not found" in lines[0] and str(tmp_path / "nowhere") in lines[0]
    assert "--data mnist:ROOT" in lines[1] and "KDGUI_MNIST_ROOT" in lines[1]
    assert lessons_kd._data_lines("digits", chosen=True) == []  # asked for: no warning


def test_lesson_data_is_checked_before_anything_runs(tmp_path: Path) -> None:
    from kdgui.core.errors import ConfigError
    from kdgui.engine.classroom import run_lesson

    for name, data, message in (("pruning", "digits", "takes no data"),
                                ("unlabelled", "cifar10:/x", "needs MNIST or the digits"),
                                ("missing-digit", "nonsense", "Unknown dataset kind")):
        with pytest.raises(ConfigError, match=message):
            next(run_lesson(name, tmp_path / name, data=data))
    assert not any(tmp_path.iterdir())


def test_a_stopped_lesson_ends_without_a_result(tmp_path: Path) -> None:
    from kdgui.core.events import RunControl
    from kdgui.engine.lessons_kd import run_missing_digit

    control = RunControl()
    control.stop()
    events = list(run_missing_digit(tmp_path, spec="digits", control=control))
    assert events[-1].kind == "job_finished" and events[-1].stopped
    assert events[-1].result == {"lesson": "missing-digit", "stopped": True}
    assert not (tmp_path / "lesson.json").exists()


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="MNIST files not present")
def test_missing_digit_lesson_on_mnist(tmp_path: Path) -> None:
    from kdgui.engine.lessons_kd import run_missing_digit

    list(run_missing_digit(tmp_path, spec=f"mnist:{MNIST_RAW.parent.parent}"))
    models = json.loads((tmp_path / "lesson.json").read_text())["models"]
    assert models["distilled"]["accuracy_on_3"] > 0.5
    assert models["distilled + bias"]["accuracy_on_3"] >= 0.85


def test_bias_correct_a_run_without_threes(tmp_path: Path, capsys) -> None:
    from kdgui.cli.main import main

    run = tmp_path / "run"
    assert main(["run", "--teacher", "demo", "--data", "digits", "--out", str(run), "--quiet",
                 "--set", "training.epochs=6", "--set", "training.num_threads=1",
                 "--set", "data.exclude_classes=[3]", "--set", "distill.alpha=0.9"]) == 0
    # The run applied and reported the correction itself (no separate command needed) ...
    summary = json.loads((run / "summary.json").read_text())
    auto = summary["bias_correction"]
    assert auto["classes"] == [3] and auto["shifts"]["3"] > 0
    assert auto["per_class"][1][3] > auto["per_class"][0][3] + 0.3
    from kdgui.engine.jobs import bias_correction

    # ... and the command computes the same correction from the saved run.
    result = bias_correction(run)
    assert result["shifts"]["3"] == pytest.approx(auto["shifts"]["3"], rel=1e-3)
    before, after = (per_class[3] for per_class in result["per_class"])
    assert result["shifts"]["3"] > 0 and after > before + 0.3 and after > 0.5
    from kdgui.engine.jobs import write_report

    page = write_report(run, tmp_path / "r.html").html_path.read_text()
    assert "Bias correction of the held-out classes" in page and "class 3" in page
    capsys.readouterr()
    assert main(["bias-correct", str(run)]) == 0
    assert "class 3: +" in capsys.readouterr().out
