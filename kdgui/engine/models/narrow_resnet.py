"""torchvision's ResNet with every stage narrowed by a width factor (used to derive students).

torchvision hard-codes the 64-128-256-512 planes; overriding ``_make_layer`` scales them while
reusing torchvision's blocks, so the derived student has the teacher's exact block design. It is a
module-level class so derived students can be pickled and exported like any torchvision model.
"""

from __future__ import annotations

import math

from torch import nn
from torchvision.models.resnet import ResNet


def scaled_planes(planes: int, width: float) -> int:
    """``planes × width`` rounded half up, at least 4."""
    return max(4, math.floor(planes * width + 0.5))


class NarrowResNet(ResNet):
    """A torchvision ResNet whose planes (stem included) are multiplied by ``width``."""

    def __init__(self, block: type[nn.Module], layers: list[int], num_classes: int,
                 width: float, **kwargs) -> None:
        self._kd_width = width
        self._kd_stem_done = False
        super().__init__(block, layers, num_classes=num_classes, **kwargs)  # type: ignore[arg-type]

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # type: ignore[override]
        if not self._kd_stem_done:  # first stage: the stem's width is scaled too
            self.inplanes = scaled_planes(64, self._kd_width)
            self._kd_stem_done = True
        return super()._make_layer(block, scaled_planes(planes, self._kd_width), blocks, stride,
                                   dilate)
