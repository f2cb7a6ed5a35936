"""An image folder without class subfolders is an unlabelled transfer set (issue 17.2).

The images are written the way a user makes them: plain PIL calls, PNG files in a folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data import load_data
from kdgui.engine.metrics.accuracy import evaluate


def write_digits(root: Path, unlabelled: int, labelled: int = 0) -> None:
    """``unlabelled`` PNGs directly in ``root``; ``labelled`` more in ``root/<digit>/``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * 255 / 16).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(unlabelled):
        Image.fromarray(images[i]).save(root / f"scan_{i:04d}.png")
    for i in range(unlabelled, unlabelled + labelled):
        folder = root / str(digits.target[i])
        folder.mkdir(exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i}.png")


def test_a_folder_of_images_only_is_unlabelled(tmp_path: Path) -> None:
    write_digits(tmp_path / "scans", 50)
    bundle = load_data(DataConfig(spec=f"folder:{tmp_path / 'scans'}"))
    y_train, y_val = bundle.train.tensors[1], bundle.val.tensors[1]
    assert bundle.num_classes == 0 and bundle.input_shape == (1, 8, 8)
    assert len(y_train) + len(y_val) == 50 and bool((y_train == -1).all())
    assert bool((y_val == -1).all())
    assert "unlabelled: 50 images" in bundle.source
    assert bundle.describe()["n_unlabelled"] == len(y_train)


def test_loose_images_beside_class_folders_are_the_transfer_set(tmp_path: Path) -> None:
    write_digits(tmp_path / "mixed", 60, labelled=40)
    bundle = load_data(DataConfig(spec=f"folder:{tmp_path / 'mixed'}", val_fraction=0.25))
    y_train, y_val = bundle.train.tensors[1], bundle.val.tensors[1]
    assert bundle.num_classes == 10
    # Every unlabelled image trains; validation is drawn from the labelled ones only.
    assert int((y_train == -1).sum()) == 60 and len(y_val) == 10 and bool((y_val >= 0).all())
    assert int((y_train >= 0).sum()) == 30
    assert "unlabelled: 60 images, labelled: 40 in 10 classes" in bundle.source


def test_an_empty_folder_says_what_to_put_in_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images and no class subfolders"):
        load_data(DataConfig(spec=f"folder:{tmp_path / 'empty'}"))


def test_accuracy_counts_labelled_samples_only() -> None:
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    half = evaluate(model, torch.utils.data.TensorDataset(x, torch.tensor([0, -1, 1, -1])))
    assert half["accuracy"] == pytest.approx(0.5) and half["n"] == 4
    none = evaluate(model, torch.utils.data.TensorDataset(x, torch.full((4,), -1)))
    assert math.isnan(none["accuracy"])


def test_distilling_on_a_folder_of_unlabelled_images(tmp_path: Path, capsys) -> None:
    """The whole run: classes from the teacher, agreement measured, accuracy not (no labels)."""
    from kdgui.cli.main import main

    write_digits(tmp_path / "scans", 300)
    out = tmp_path / "run"
    assert main(["run", "--teacher", "demo", "--data", f"folder:{tmp_path / 'scans'}",
                 "--out", str(out), "--quiet", "--epochs", "2",
                 "--set", "training.num_threads=1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    student = summary["student"]
    assert student["agreement"] > 0.5  # it learnt the teacher's answers from the images alone
    assert math.isnan(student["accuracy"])
    assert "nan%" not in capsys.readouterr().out
