"""From raw arrays to a :class:`DataBundle`: limit, split, resize, normalize, materialize.

Every array-backed dataset (digits, the MNIST family, CIFAR, SVHN, small image folders) goes
through :func:`build_bundle`, so limits, splits and normalization behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data.augment import BatchAugment, default_padding
from kdgui.engine.data.bundle import DataBundle
from kdgui.engine.data.lazy import LazyArrayDataset
from kdgui.engine.data.transfer import (
    UNLABELLED,
    split_labelled,
    transfer_indices,
    transfer_labels,
)

#: Above this many bytes of float32 samples, splits stay lazy instead of becoming tensors.
MAX_IN_MEMORY_BYTES = 2 * 1024**3
#: How many training samples estimate mean/std when the data are too large to hold.
STATS_SAMPLE = 10_000
# Bytes of float32 converted per chunk: bounds the temporary memory of resizing.
_CHUNK_BYTES = 64 * 1024**2


@dataclass
class RawData:
    """A whole dataset as one array, before limit/split/normalization.

    ``images`` is ``N×C×H×W`` (uint8, or float for digits); dividing by ``scale`` gives 0..1.
    ``natural`` marks photos, where horizontal flips are a safe augmentation (not for digits
    or letters, where a flip changes the meaning).
    """

    images: Tensor
    labels: Tensor
    scale: float
    class_names: list[str]
    name: str
    source: str
    natural: bool = False


def to_unit_float(
    images: Tensor, indices: Tensor, scale: float, size: tuple[int, int] | None
) -> Tensor:
    """``images[indices]`` as float32 in 0..1, resized to ``size``, converted chunk by chunk."""
    n, c, h, w = len(indices), *images.shape[1:]
    out_h, out_w = size if size is not None else (h, w)
    out = torch.empty((n, c, out_h, out_w), dtype=torch.float32)
    for start, part in _float_chunks(images, indices, scale, (out_h, out_w)):
        out[start : start + len(part)] = part
    return out


def _float_chunks(
    images: Tensor, indices: Tensor, scale: float, size: tuple[int, int]
) -> Iterator[tuple[int, Tensor]]:
    """``(start, chunk)`` pairs of ``images[indices]`` as resized 0..1 floats, ~64 MB each."""
    c, h, w = images.shape[1:]
    per_sample = 4 * c * max(h * w, size[0] * size[1])
    step = max(1, _CHUNK_BYTES // per_sample)
    for start in range(0, len(indices), step):
        part = images[indices[start : start + step]].float().div_(scale)
        if tuple(size) != (h, w):
            part = F.interpolate(
                part, size=size, mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
        yield start, part


def streamed_channel_stats(
    images: Tensor, indices: Tensor, scale: float, size: tuple[int, int]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """:func:`channel_stats` of ``images[indices]`` without holding them all as floats."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    for _, part in _float_chunks(images, indices, scale, size):
        part64 = part.double()
        total += part64.sum(dim=(0, 2, 3))
        squares += part64.square().sum(dim=(0, 2, 3))
        count += part.numel() // part.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0.0).sqrt()
    stds = tuple(float(s) if float(s) > 1e-6 else 1.0 for s in std)
    return tuple(float(m) for m in mean), stds


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of ``N×C×H×W``; a constant channel gets std 1."""
    std, mean = torch.std_mean(x, dim=(0, 2, 3), correction=0)
    stds = tuple(float(s) if float(s) > 1e-6 else 1.0 for s in std)
    return tuple(float(m) for m in mean), stds


def normalize_(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Normalize ``N×C×H×W`` in place (no second copy of a large split)."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def make_augment(
    cfg: DataConfig, height: int, natural: bool, mean: Sequence[float], std: Sequence[float]
) -> BatchAugment | None:
    """The batch augmentation the config asks for, or ``None``."""
    if not cfg.augment:
        return None
    return BatchAugment(
        default_padding(height),
        hflip=natural,
        mean=mean if cfg.normalize else None,
        std=std if cfg.normalize else None,
    )


def check_labels(labels: Tensor, num_classes: int, name: str) -> None:
    """Labels must index ``class_names``; anything else is a damaged or mislabeled file."""
    known = labels[labels != UNLABELLED]  # images without a label at the source are allowed
    if len(known) and (int(known.min()) < 0 or int(known.max()) >= num_classes):
        raise DataError(
            f"{name}: labels range from {int(known.min())} to {int(known.max())}, "
            f"but there are {num_classes} classes",
            "The label file is damaged or belongs to another dataset; replace it.",
            source="data",
        )


def build_bundle(raw: RawData, cfg: DataConfig) -> DataBundle:
    """Apply ``cfg`` (limit, split, image_size, normalize, augment) to ``raw``."""
    images, labels = raw.images, raw.labels.long()
    if cfg.limit is not None:
        images, labels = images[: cfg.limit], labels[: cfg.limit]
    check_labels(labels, len(raw.class_names), raw.name)
    train_idx, val_idx = split_labelled(labels, cfg)
    # The transfer set (data.exclude_classes, unlabelled samples); validation is untouched.
    train_idx = transfer_indices(train_idx, labels, cfg, len(raw.class_names), raw.name)
    train_labels = labels.clone()
    train_labels[train_idx] = transfer_labels(labels[train_idx], cfg)

    c, h, w = images.shape[1:]
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else (h, w)
    need = len(labels) * c * size[0] * size[1] * 4

    train: Dataset
    val: Dataset
    if need <= MAX_IN_MEMORY_BYTES:
        x_train = to_unit_float(images, train_idx, raw.scale, size)
        x_val = to_unit_float(images, val_idx, raw.scale, size)
        mean, std = channel_stats(x_train)
        if cfg.normalize:
            normalize_(x_train, mean, std)
            normalize_(x_val, mean, std)
        train = TensorDataset(x_train, train_labels[train_idx])
        val = TensorDataset(x_val, labels[val_idx].clone())
    else:
        # Too big as float32 (usually an upscaling image_size): keep the raw array, convert
        # per item, and estimate the statistics on an evenly spaced sample of the train split.
        pick = torch.linspace(0, len(train_idx) - 1, min(STATS_SAMPLE, len(train_idx))).long()
        mean, std = streamed_channel_stats(images, train_idx[pick], raw.scale, size)
        norm = (mean, std) if cfg.normalize else (None, None)
        train = LazyArrayDataset(images, train_labels, train_idx, raw.scale, size, *norm)
        val = LazyArrayDataset(images, labels, val_idx, raw.scale, size, *norm)

    return DataBundle(
        train=train,
        val=val,
        input_shape=(int(c), int(size[0]), int(size[1])),
        num_classes=len(raw.class_names),
        class_names=list(raw.class_names),
        mean=mean,
        std=std,
        name=raw.name,
        source=raw.source,
        augment=make_augment(cfg, size[0], raw.natural, mean, std),
        normalized=cfg.normalize,
    )
