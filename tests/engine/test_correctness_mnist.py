"""The engine distills as well as a plain hand-written KD loop (real MNIST, 3 seeds).

Data: the MNIST test set in ../shared/data, first 8,000 images for training and the last
2,000 held out (ordered split). Same teacher, same student initialisation per seed, same
hyperparameters; the engine is driven through the public Python API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kdgui.api as kd
from kdgui.core.events import RunFinished

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MNIST / "MNIST" / "raw").is_dir(), reason="shared MNIST not present"),
]

EPOCHS, BATCH, LR, ALPHA, T = 2, 128, 0.02, 0.7, 4.0


def teacher_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def student_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def plain_kd(teacher: nn.Module, student: nn.Module, x: torch.Tensor, y: torch.Tensor,
             seed: int) -> None:
    """The loop a researcher would write by hand."""
    opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    teacher.eval()
    for _ in range(EPOCHS):
        student.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = x[idx], y[idx]
            with torch.no_grad():
                zt = teacher(xb)
            zs = student(xb)
            soft = F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1),
                            reduction="batchmean") * T * T
            loss = (1 - ALPHA) * F.cross_entropy(zs, yb) + ALPHA * soft
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.fixture(scope="module")
def mnist_and_teacher():
    bundle = kd.load_data(f"mnist:{MNIST}", split="ordered", val_fraction=0.2)
    xtr, ytr = bundle.train.tensors
    xva = bundle.val.tensors[0]
    assert len(xtr) == 8000 and len(xva) == 2000
    torch.manual_seed(123)
    teacher = teacher_net()
    opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
    for _ in range(2):
        teacher.train()
        for i in range(0, 8000, 128):
            loss = F.cross_entropy(teacher(xtr[i:i + 128]), ytr[i:i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    teacher.eval()
    return bundle, teacher


def test_engine_matches_a_plain_kd_loop_over_three_seeds(mnist_and_teacher, tmp_path) -> None:
    bundle, teacher = mnist_and_teacher
    xtr, ytr = bundle.train.tensors
    xva, yva = bundle.val.tensors
    teacher_acc = accuracy(teacher, xva, yva)
    assert teacher_acc > 0.93
    engine, plain, chosen = [], [], set()
    for seed in range(3):
        torch.manual_seed(seed)
        s_plain = student_net()
        torch.manual_seed(seed)
        s_engine = student_net()
        assert all(torch.equal(a, b) for a, b in zip(s_plain.parameters(), s_engine.parameters(), strict=True))
        plain_kd(teacher, s_plain, xtr, ytr, seed)
        plain.append(accuracy(s_plain, xva, yva))
        events = list(kd.distill(
            teacher, s_engine, bundle.train, bundle.val,
            distill={"alpha": ALPHA, "temperature": T},
            training={"epochs": EPOCHS, "batch_size": BATCH, "lr": LR, "optimizer": "sgd",
                      "momentum": 0.9, "schedule": "none", "seed": seed},
            out_dir=tmp_path / f"seed{seed}",
        ))
        assert isinstance(events[-1], RunFinished), events[-1]
        engine.append(events[-1].summary["student"]["accuracy"])
        fast = events[-1].summary["fast_path"]  # the fast path is on (auto): say what ran
        chosen.add(f"teacher {fast['teacher']['label']}, student {fast['student']['label']}")
        assert engine[-1] == pytest.approx(accuracy(s_engine, xva, yva), abs=1e-6)
    e, p = np.array(engine), np.array(plain)
    # Seed noise: the spread of accuracies across seeds, but never below one point.
    noise = max(0.01, float(np.std(p)), float(np.std(e)))
    print(f"\nteacher {teacher_acc:.4f}; engine {e.round(4)} mean {e.mean():.4f}; "
          f"plain {p.round(4)} mean {p.mean():.4f}; fast path: {'; '.join(sorted(chosen))}")
    assert abs(e.mean() - p.mean()) <= noise, (engine, plain)
    assert e.min() > 0.9, engine
