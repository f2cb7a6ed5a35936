"""The GPU path: what is decided on the CPU (loader settings) is tested everywhere; what runs on
CUDA (AMP with a GradScaler, pinned non-blocking copies, CUDA-event latency) skips without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from kdgui.core.config import demo_config
from kdgui.core.events import RunFinished
from kdgui.engine.training import BatchSource, loader_settings

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class PerSample(Dataset):
    """A dataset read sample by sample (like an image folder)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):
        return torch.full((1, 4, 4), float(i)), i % 3


def test_loader_settings_pin_and_use_workers_only_on_a_gpu() -> None:
    tensors = TensorDataset(torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loader_settings(PerSample(), cpu) == {"pin_memory": False, "workers": 0}
    assert loader_settings(tensors, cuda)["workers"] == 0  # sliced in place, no loader
    assert loader_settings(tensors, cuda)["pin_memory"] is True
    assert loader_settings(DataLoader(PerSample()), cuda)["workers"] == 0  # the user's own
    per_sample = loader_settings(PerSample(), cuda)
    assert per_sample["pin_memory"] is True and per_sample["workers"] >= 0


def test_a_per_sample_dataset_gives_the_same_batches_with_workers() -> None:
    plain = [(x, y, i) for x, y, i in BatchSource(PerSample(), 4, shuffle=True, seed=1).epoch()]
    loaded = list(BatchSource(PerSample(), 4, shuffle=True, seed=1, workers=2).epoch())
    for (x, y, i), (x2, y2, i2) in zip(plain, loaded, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(i, i2)


@CUDA
@pytest.mark.parametrize("amp", [False, True])
def test_the_demo_trains_on_cuda_with_and_without_amp(tmp_path: Path, amp: bool) -> None:
    from kdgui.engine.session import run

    cfg = demo_config()
    cfg.data.limit = 400
    cfg.training.epochs, cfg.training.device, cfg.training.amp = 2, "cuda", amp
    events = list(run(cfg, runs_root=tmp_path))
    assert isinstance(events[-1], RunFinished), events[-1]
    summary = json.loads((Path(events[-1].run_dir) / "summary.json").read_text())
    assert summary["student"]["accuracy"] > 0.5
    assert 0 < summary["student"]["latency_ms"] < 1e4


@CUDA
def test_cuda_latency_is_timed_with_events() -> None:
    from kdgui.engine.metrics.latency import measure_latency

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten())
    ms = measure_latency(model, (1, 28, 28), 8, "cuda", warmup=2, repeats=5)
    assert 0 < ms < 1e3


@CUDA
def test_pinned_batches_on_cuda() -> None:
    data = TensorDataset(torch.zeros(8, 1, 4, 4), torch.zeros(8, dtype=torch.long))
    source = BatchSource(data, 4, shuffle=False, **loader_settings(data, torch.device("cuda")))
    x, _, _ = next(iter(source.epoch()))
    assert x.is_pinned()
