"""Small uint8 image grids for the window's data preview."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from kdgui.engine.data.bundle import DataBundle


def sample_grid(
    bundle: DataBundle, n: int = 16, split: Literal["train", "val"] = "val"
) -> tuple[np.ndarray, list[int]]:
    """``n`` images of a split as uint8 ``N×H×W×C`` (normalization undone) and their labels.

    The samples are evenly spaced over the split rather than the first ``n``, so an ordered
    split of a class-sorted folder still shows several classes. Fewer than ``n`` come back when
    the split is smaller.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    ds = bundle.train if split == "train" else bundle.val
    total = len(ds)  # type: ignore[arg-type]
    count = min(n, total)
    if count <= 0:
        c, h, w = bundle.input_shape
        return np.zeros((0, h, w, c), dtype=np.uint8), []
    picks = np.linspace(0, total - 1, count).round().astype(int).tolist()
    tensors = getattr(ds, "tensors", None)
    if tensors is not None:
        x = tensors[0][picks].float()
        labels = [int(v) for v in tensors[1][picks]]
    else:
        items = [ds[i] for i in picks]
        x = torch.stack([item[0] for item in items]).float()
        labels = [int(item[1]) for item in items]
    if bundle.normalized:
        mean = torch.tensor(bundle.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(bundle.std, dtype=x.dtype).view(1, -1, 1, 1)
        x = x * std + mean
    images = (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
    return images.contiguous().numpy(), labels
