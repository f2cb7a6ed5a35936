"""A tiny run folder with compression stages (float, pruned, int8) for the Netron tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.config import CompressionStep
from kdgui.engine.compress import CompressionContext
from kdgui.engine.compress.pipeline import run_pipeline

INPUT_SHAPE = (1, 8, 8)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x)).mean((2, 3))
        return self.fc2(torch.relu(self.fc1(x)))


def tiny_data(n: int = 16) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, *INPUT_SHAPE, generator=gen),
                         torch.randint(0, 4, (n,), generator=gen))


def make_run(root: Path) -> Path:
    """``root/run`` with stages 0_before (pt2), 1_prune (pt2), 2_int8 (TorchScript)."""
    torch.manual_seed(0)
    run = root / "run"
    data = tiny_data()
    ctx = CompressionContext(input_shape=INPUT_SHAPE, example_input=data.tensors[0][:2],
                             calibration=data, validation=data)
    steps = [CompressionStep(kind="prune", method="magnitude", params={"sparsity": 0.5},
                             name="prune"),
             CompressionStep(kind="quantize", method="dynamic-int8", name="int8")]
    gen = run_pipeline(TinyNet().eval(), steps, ctx, run / "stages")
    try:
        while True:
            next(gen)
    except StopIteration:
        pass
    (run / "student").mkdir(exist_ok=True)
    return run


_SHARED: dict[str, Path] = {}


def shared_run(factory: object) -> Path:
    """One such run per test session, for tests that only read it (``factory`` is pytest's
    ``tmp_path_factory``): building it takes seconds."""
    if "run" not in _SHARED:
        _SHARED["run"] = make_run(factory.mktemp("shared-netron-run"))  # type: ignore[attr-defined]
    return _SHARED["run"]
