"""Datasets that decode or resize per sample, for data too large to hold as float32.

They are the slow path: the trainer falls back to a ``DataLoader`` over them. Everything that
fits in memory is a :class:`~torch.utils.data.TensorDataset` instead (see :mod:`.build`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from kdgui.core.errors import DataError


def _normalizer(mean: Sequence[float] | None, std: Sequence[float] | None):
    if mean is None or std is None:
        return None
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return m, s


class LazyArrayDataset(Dataset):
    """Raw arrays (uint8 or float) kept at native size; scaled, resized, normalized per item."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        scale: float,
        size: tuple[int, int] | None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.images = images
        self.labels = labels
        self.indices = indices
        self.scale = float(scale)
        self.size = size
        self._norm = _normalizer(mean, std)

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Set the statistics once they are known (computed on a sample of this very split)."""
        self._norm = _normalizer(mean, std)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        j = int(self.indices[i])
        x = self.images[j].float() / self.scale
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(
                x[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
            )[0].clamp_(0.0, 1.0)
        if self._norm is not None:
            x = (x - self._norm[0]) / self._norm[1]
        return x, int(self.labels[j])


class LazyImageFolderDataset(Dataset):
    """Image files decoded with PIL on access, converted to one mode and resized to one size."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int],
        mode: str,
        size_wh: tuple[int, int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.mode = mode
        self.size_wh = size_wh
        self._norm = _normalizer(mean, std)

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Set the statistics once they are known (computed on a sample of this very split)."""
        self._norm = _normalizer(mean, std)

    def __len__(self) -> int:
        return len(self.paths)

    def raw(self, i: int) -> np.ndarray:
        """The image as uint8 ``H×W×C`` after mode conversion and resizing."""
        return read_image(self.paths[i], self.mode, self.size_wh)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        arr = self.raw(i)
        x = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
        if self._norm is not None:
            x = (x - self._norm[0]) / self._norm[1]
        return x, self.labels[i]


def read_image(path: Path, mode: str, size_wh: tuple[int, int]) -> np.ndarray:
    """Decode one image file to uint8 ``H×W×C`` in ``mode`` ("L" or "RGB") at ``size_wh``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if img.size != size_wh:
                img = img.resize(size_wh, Image.Resampling.BILINEAR)
            arr = np.array(img, dtype=np.uint8)  # a writable copy
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(
            f"Cannot read image {path}: {exc}",
            "Remove or replace the file (it is damaged or not an image).",
            source="data",
        ) from exc
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr
