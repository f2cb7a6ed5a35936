"""Issue 17.2: unlabelled transfer sets (label -1), the masked hard loss, and the lesson."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdgui.core.config import DataConfig
from kdgui.engine.data.load import load_data
from kdgui.engine.distill.losses import HardLoss


def test_hard_loss_ignores_unlabelled_samples_exactly() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 5)
    labels = torch.tensor([0, -1, 3, -1, -1, 4, 1, -1])
    keep = labels >= 0
    expected = F.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(HardLoss()(logits, labels), expected)


def test_hard_loss_of_a_batch_without_labels_is_zero_and_differentiable() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    loss = HardLoss()(logits, torch.full((4,), -1))
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None and float(logits.grad.abs().sum()) == 0


def test_labelled_count_keeps_that_many_true_labels_and_validation_intact() -> None:
    base = DataConfig(spec="digits")
    plain = load_data(base)
    masked = load_data(base.model_copy(update={"labelled_count": 50}))
    y, ym = plain.train.tensors[1], masked.train.tensors[1]
    kept = ym >= 0
    assert int(kept.sum()) == 50 and int((ym == -1).sum()) == len(y) - 50
    assert torch.equal(ym[kept], y[kept])
    assert torch.equal(masked.val.tensors[1], plain.val.tensors[1])
    none = load_data(base.model_copy(update={"ignore_labels": True}))
    assert bool((none.train.tensors[1] == -1).all())


def test_unlabelled_lesson_on_digits(tmp_path: Path) -> None:
    from kdgui.engine.lessons_kd import run_unlabelled

    list(run_unlabelled(tmp_path, spec="digits"))
    result = json.loads((tmp_path / "lesson.json").read_text())
    models = result["models"]
    assert result["n_labelled"] == 50
    assert models["distilled, unlabelled"]["accuracy"] >= models["50 labels"]["accuracy"] + 0.05


@pytest.mark.skipif(not Path("/work/shared/data/MNIST/raw").is_dir(), reason="no MNIST files")
def test_unlabelled_lesson_on_mnist(tmp_path: Path) -> None:
    from kdgui.engine.lessons_kd import run_unlabelled

    result = list(run_unlabelled(tmp_path, spec="mnist:/work/shared/data"))[-1].result
    assert result["n_labelled"] == 100 and result["gain_points"] >= 5


def test_classroom_run_unlabelled_from_the_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    """The CLI reaches a lesson with its own experiment through the lesson registry."""
    from kdgui.cli.main import main
    from kdgui.engine import lessons_kd

    monkeypatch.delenv("KDGUI_MNIST_ROOT", raising=False)
    monkeypatch.setattr(lessons_kd, "MNIST_ROOTS", ())  # the digits, as on a machine without MNIST
    out = tmp_path / "lesson"
    assert main(["classroom", "run", "unlabelled", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Distilling from unlabelled data" in printed and "adds" in printed
    result = json.loads((out / "lesson.json").read_text())
    assert result["data"] == "digits" and result["title"] == "Distilling from unlabelled data"
    assert "MNIST was not found" in printed and "--data mnist:ROOT" in printed  # said, not hidden
    assert "published" in printed and "measured here" in printed  # the comparison table
    page = (out / "report.html").read_text()
    assert "Published and measured" in page and "57.0% (soft targets on the same 3%)" in page
    assert (out / "report.csv").read_text().startswith("model,accuracy,0,")
