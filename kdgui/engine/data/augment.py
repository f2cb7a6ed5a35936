"""Batch-level augmentation: random crops with padding and, for natural images, h-flips.

Augmenting a whole batch with tensor ops keeps the trainer's fast path (slice a batch out of a
``TensorDataset``, augment it, feed it) instead of a per-sample PIL pipeline, and it runs on the
batch's device. Randomness comes from torch's global generator (seeded by the trainer) unless a
``generator`` is passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class BatchAugment:
    """Random crop after zero-padding (in *raw* pixel space) and optional horizontal flip.

    The padding value is raw black, i.e. ``-mean/std`` once normalized, so the result equals
    ``RandomCrop(padding=p)`` applied before normalization, as in the usual CIFAR recipe.
    """

    def __init__(
        self,
        padding: int,
        hflip: bool,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.padding = int(padding)
        self.hflip = bool(hflip)
        channels = len(mean) if mean is not None else 0
        if mean is not None and std is not None:
            self.fill = [-m / s for m, s in zip(mean, std, strict=True)]
        else:
            self.fill = [0.0] * channels

    def __repr__(self) -> str:
        return f"BatchAugment(padding={self.padding}, hflip={self.hflip})"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return an augmented copy of the batch ``x`` (``N×C×H×W``)."""
        if x.dim() != 4:
            raise ValueError(f"BatchAugment expects N×C×H×W, got shape {tuple(x.shape)}")
        n = x.shape[0]
        if self.padding > 0:
            x = self._random_crop(x, generator)
        if self.hflip:
            flip = torch.rand(n, generator=generator).to(x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def _random_crop(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        n, c, h, w = x.shape
        p = self.padding
        padded = F.pad(x, (p, p, p, p), value=0.0)
        if self.fill and any(f != 0.0 for f in self.fill):
            # Set the border to raw black per channel (constant pad only takes one value).
            fill = torch.tensor(self.fill[:c], dtype=x.dtype, device=x.device)
            border = torch.ones(1, 1, h + 2 * p, w + 2 * p, dtype=torch.bool, device=x.device)
            border[..., p : p + h, p : p + w] = False
            padded = torch.where(border, fill.view(1, c, 1, 1), padded)
        oy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        rows = oy[:, None] + torch.arange(h, device=x.device)  # N×H
        cols = ox[:, None] + torch.arange(w, device=x.device)  # N×W
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def default_padding(height: int) -> int:
    """Crop padding scaled to the image: 4 px at 32×32 (the CIFAR recipe), 1 px at 8×8."""
    return max(1, round(height / 8))
