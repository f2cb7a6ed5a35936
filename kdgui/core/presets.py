"""Ready-made student (and demo teacher) architectures, built as :class:`StudentSpec` data.

A preset is a function of the data's input shape, its class count and a width multiplier, so the
same name gives a valid network for 8×8 digits and for 224×224 photos: pooling and strides are only
added while the feature map is at least 2×2, and large inputs get a strided stem. Presets are specs,
not modules, so the drawing editor can open one and let the user edit it, and shape inference
(:mod:`kdgui.core.student_shapes`) reports their size without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from kdgui.core.errors import ConfigError
from kdgui.core.student_spec import (
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool,
    InvertedResidual,
    LayerSpec,
    Linear,
    MaxPool,
    ReLU,
    Residual,
    StudentSpec,
)

InputShape = tuple[int, int, int]
Builder = Callable[[InputShape, int, float], list[LayerSpec]]

LARGE_INPUT = 64  # inputs at least this big get a stride-2 stem


def scale(channels: int, width: float) -> int:
    """``channels × width`` rounded, at least 1."""
    return max(1, math.floor(channels * width + 0.5))


@dataclass(frozen=True)
class Preset:
    """A named architecture family; :meth:`build` makes the spec for concrete data."""

    name: str
    description: str
    family: str
    builder: Builder

    def build(self, input_shape: InputShape, num_classes: int, width: float = 1.0) -> StudentSpec:
        """The spec for inputs of ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
        if width <= 0:
            raise ConfigError(f"width = {width} must be positive", "Use a width such as 0.5 or 1.0")
        layers = self.builder(tuple(int(s) for s in input_shape), int(num_classes), float(width))
        return StudentSpec(name=self.name, layers=layers)


class _Size:
    """Tracks the spatial size while a preset is assembled, to avoid shrinking below 1×1."""

    def __init__(self, input_shape: InputShape) -> None:
        _, self.h, self.w = input_shape

    def can_halve(self) -> bool:
        return min(self.h, self.w) >= 2

    def halve(self) -> None:
        # k=2 pooling and k=3/pad=1/stride=2 convolutions agree only for even sizes; the builder
        # uses whichever layer it added, and both give at least 1 for sizes ≥ 2.
        self.h, self.w = self.h // 2, self.w // 2

    def stride2(self) -> None:
        self.h, self.w = (self.h - 1) // 2 + 1, (self.w - 1) // 2 + 1


def _conv_bn_relu(out: int, stride: int = 1, kernel: int = 3) -> list[LayerSpec]:
    return [Conv2d(out_channels=out, kernel_size=kernel, stride=stride), BatchNorm(), ReLU()]


def _stem(size: _Size, out: int) -> list[LayerSpec]:
    """A 3×3 conv; strided for large inputs so later stages stay cheap."""
    if min(size.h, size.w) >= LARGE_INPUT:
        size.stride2()
        return _conv_bn_relu(out, stride=2)
    return _conv_bn_relu(out)


def _mlp(hidden: list[int], dropout: float) -> Builder:
    def build(shape: InputShape, n: int, width: float) -> list[LayerSpec]:
        layers: list[LayerSpec] = [Flatten()]
        for h in hidden:
            layers += [Linear(out_features=scale(h, width)), ReLU()]
            if dropout:
                layers.append(Dropout(p=dropout))
        return [*layers, Linear(out_features=n)]

    return build


def _cnn(stages: list[list[int]], dropout: float = 0.0, pool_last: bool = True) -> Builder:
    """Stages of 3×3 conv-BN-ReLU, each followed by 2×2 max pooling while the map allows it."""

    def build(shape: InputShape, n: int, width: float) -> list[LayerSpec]:
        size = _Size(shape)
        layers: list[LayerSpec] = []
        for s, stage in enumerate(stages):
            for j, ch in enumerate(stage):
                layers += _stem(size, scale(ch, width)) if (s, j) == (0, 0) else _conv_bn_relu(
                    scale(ch, width))
            last = s == len(stages) - 1
            if (pool_last or not last) and size.can_halve():
                layers.append(MaxPool(kernel_size=2))
                size.halve()
        layers.append(GlobalAvgPool())
        if dropout:
            layers.append(Dropout(p=dropout))
        return [*layers, Linear(out_features=n)]

    return build


def _resnet(widths: list[int], blocks_per_stage: int, stem: int | None = None) -> Builder:
    """A stem (``stem`` channels, default the first stage's) and stages of basic residual blocks
    (conv-BN-ReLU-conv-BN, the sum followed by ReLU); stages after the first halve the size.
    A block that changes the channels or the size has a 1×1 conv + BN shortcut: He et al.'s
    CIFAR ResNets as the CRD/RepDistiller code builds them (``resnet20`` is ``[16, 32, 64]``
    with 3 blocks per stage and a 16-channel stem)."""

    def build(shape: InputShape, n: int, width: float) -> list[LayerSpec]:
        size = _Size(shape)
        layers: list[LayerSpec] = _stem(size, scale(stem or widths[0], width))
        for s, ch in enumerate(widths):
            c = scale(ch, width)
            for b in range(blocks_per_stage):
                stride = 2 if s > 0 and b == 0 and size.can_halve() else 1
                if stride == 2:
                    size.stride2()
                body: list[LayerSpec] = [
                    Conv2d(out_channels=c, stride=stride), BatchNorm(), ReLU(),
                    Conv2d(out_channels=c), BatchNorm(),
                ]
                layers += [Residual(layers=body), ReLU()]
        return [*layers, GlobalAvgPool(), Linear(out_features=n)]

    return build


def _wrn(depth: int, widen: int) -> Builder:
    """Zagoruyko & Komodakis' pre-activation wide ResNet WRN-depth-widen, as the CRD/RepDistiller
    code builds it: a bare 3×3 conv of 16 channels, three stages of ``(depth - 4) / 6`` blocks of
    16k, 32k, 64k channels (BN-ReLU-conv-BN-ReLU-conv), then BN-ReLU, global pool, classifier.
    A block that changes the channels applies its BN-ReLU before the split, so its 1×1 shortcut
    reads the activated input as the paper's does; kdgui's shortcut projection carries a
    BatchNorm, 2 × (its channels) parameters more than the reference (448 for WRN-40-2)."""
    blocks = (depth - 4) // 6

    def build(shape: InputShape, n: int, width: float) -> list[LayerSpec]:
        size = _Size(shape)
        big = min(size.h, size.w) >= LARGE_INPUT
        if big:
            size.stride2()
        c_in = scale(16, width)
        layers: list[LayerSpec] = [Conv2d(out_channels=c_in, stride=2 if big else 1)]
        for s, ch in enumerate((16 * widen, 32 * widen, 64 * widen)):
            c = scale(ch, width)
            for b in range(blocks):
                stride = 2 if s > 0 and b == 0 and size.can_halve() else 1
                if stride == 2:
                    size.stride2()
                conv1 = Conv2d(out_channels=c, stride=stride)
                if c != c_in or stride != 1:  # pre-activation shared with the shortcut
                    layers += [BatchNorm(), ReLU(),
                               Residual(layers=[conv1, BatchNorm(), ReLU(), Conv2d(out_channels=c)])]
                else:
                    layers.append(Residual(layers=[BatchNorm(), ReLU(), conv1, BatchNorm(),
                                                   ReLU(), Conv2d(out_channels=c)]))
                c_in = c
        return [*layers, BatchNorm(), ReLU(), GlobalAvgPool(), Linear(out_features=n)]

    return build


def _mobilenet(setting: list[tuple[int, int, int, int]], stem: int, head: int) -> Builder:
    """MobileNetV2-style: ``(expand, channels, repeats, stride)`` stages of inverted residuals."""

    def build(shape: InputShape, n: int, width: float) -> list[LayerSpec]:
        size = _Size(shape)
        layers: list[LayerSpec] = _stem(size, scale(stem, width))
        for t, ch, reps, stride in setting:
            for r in range(reps):
                s = 2 if stride == 2 and r == 0 and size.can_halve() else 1
                if s == 2:
                    size.stride2()
                layers.append(InvertedResidual(out_channels=scale(ch, width), expand_ratio=t,
                                               stride=s))
        layers += _conv_bn_relu(scale(head, width), kernel=1)
        return [*layers, GlobalAvgPool(), Linear(out_features=n)]

    return build


_ALL = [
    Preset("mlp-tiny", "Flatten, one hidden layer of 32 units, classifier.", "mlp", _mlp([32], 0)),
    Preset("mlp-small", "Flatten, hidden layers of 128 and 64 units with dropout, classifier.",
           "mlp", _mlp([128, 64], 0.1)),
    Preset("cnn-tiny", "Two 3×3 conv stages (8, 16 channels) with pooling, global pool, "
           "classifier.", "cnn", _cnn([[8], [16]])),
    Preset("cnn-small", "Three 3×3 conv stages (16, 32, 64 channels) with pooling, global pool, "
           "classifier.", "cnn", _cnn([[16], [32], [64]])),
    Preset("resnet-tiny", "ResNet-style: stem and three stages of one basic residual block "
           "(16, 32, 64 channels).", "resnet", _resnet([16, 32, 64], 1)),
    Preset("mobilenet-tiny", "MobileNetV2-style: stem and inverted residual blocks "
           "(16→24→32 channels), 1×1 head of 128.", "mobilenet",
           _mobilenet([(1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2)], stem=16, head=128)),
    Preset("cnn-teacher", "The demo teacher: a wider, deeper CNN (32-32, 64-64, 128 channels, "
           "dropout); about 6× the parameters of cnn-small.", "cnn",
           _cnn([[32, 32], [64, 64], [128]], dropout=0.2, pool_last=False)),
    # The CIFAR students and teachers of the distillation literature (CRD, DKD, DIST tables),
    # built like the CRD/RepDistiller code; parameter counts below are for 100 classes.
    Preset("resnet8x4", "CIFAR ResNet-8×4 (student): 32-channel stem, 3 stages of 1 basic "
           "block (64, 128, 256 channels); 1.23 M parameters at 100 classes.", "resnet",
           _resnet([64, 128, 256], 1, stem=32)),
    Preset("resnet32x4", "CIFAR ResNet-32×4 (teacher): 32-channel stem, 3 stages of 5 basic "
           "blocks (64, 128, 256 channels); 7.43 M parameters at 100 classes.", "resnet",
           _resnet([64, 128, 256], 5, stem=32)),
    Preset("resnet20", "CIFAR ResNet-20 (student): 3 stages of 3 basic blocks (16, 32, 64 "
           "channels); 0.28 M parameters at 100 classes.", "resnet", _resnet([16, 32, 64], 3)),
    Preset("resnet56", "CIFAR ResNet-56 (teacher): 3 stages of 9 basic blocks (16, 32, 64 "
           "channels); 0.86 M parameters at 100 classes.", "resnet", _resnet([16, 32, 64], 9)),
    Preset("wrn-16-2", "Wide ResNet 16-2 (student): pre-activation, 3 stages of 2 blocks (32, "
           "64, 128 channels); 0.70 M parameters at 100 classes.", "wrn", _wrn(16, 2)),
    Preset("wrn-40-2", "Wide ResNet 40-2 (teacher): pre-activation, 3 stages of 6 blocks (32, "
           "64, 128 channels); 2.26 M parameters at 100 classes.", "wrn", _wrn(40, 2)),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _ALL}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; the error lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown student preset '{name}'", f"Use one of: {', '.join(PRESETS)}."
        ) from None
