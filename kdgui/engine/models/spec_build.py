"""Build an ``nn.Module`` from a :class:`StudentSpec`.

The structure follows the spec one to one: top-level layers are ``layers.0``, ``layers.1``...,
a residual block's body is ``layers.3.body.N`` and its shortcut ``layers.3.shortcut``. Those
names are what :func:`kdgui.core.student_shapes.infer` reports, so the editor, the feature-hook
picker and the built model agree on every name. Shapes come from that same inference (the builder
never guesses a channel count), which is why its parameter counts match the module's exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kdgui.core.student_shapes import LayerReport, SpecReport, infer
from kdgui.core.student_spec import StudentSpec


class GlobalAvgPool(nn.Module):
    """Average each channel to one number: ``N×C×H×W → N×C``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class SeparableConv(nn.Module):
    """Depthwise ``k×k`` then pointwise ``1×1``, both without bias."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, kernel, stride, padding, groups=in_ch,
                                   bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """``body(x) + shortcut(x)``; the shortcut projects only when the body changes the shape."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class InvertedResidualBlock(nn.Module):
    """MobileNetV2's block: expand (optional), depthwise, project; input added when ``skip``."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, kernel: int, stride: int,
                 padding: int, skip: bool) -> None:
        super().__init__()
        self.expand = (
            nn.Sequential(nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                          nn.ReLU6(inplace=True))
            if hidden != in_ch else nn.Identity()
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel, stride, padding, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
        )
        self.project = nn.Sequential(nn.Conv2d(hidden, out_ch, 1, bias=False),
                                     nn.BatchNorm2d(out_ch))
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y


class SpecNet(nn.Module):
    """A network built from a spec; keeps the spec, input shape and class count for later use.

    ``kdgui_spec`` lets :func:`derive_student` and exports recover the architecture as data, so a
    spec-built model can be saved as spec JSON + safetensors with no pickle at all.
    """

    def __init__(self, layers: nn.Sequential, spec: StudentSpec,
                 input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.layers = layers
        self.kdgui_spec = spec
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def _module(layer: Any, rep: LayerReport, report: SpecReport) -> nn.Module:
    t, d, in_shape = layer.type, rep.detail, rep.in_shape
    assert in_shape is not None
    if t == "conv2d":
        return nn.Conv2d(d["in_channels"], layer.out_channels, layer.kernel_size, layer.stride,
                         d["padding"], groups=layer.groups, bias=layer.bias)
    if t == "dwconv":
        c = d["in_channels"]
        return nn.Conv2d(c, c, layer.kernel_size, layer.stride, d["padding"], groups=c,
                         bias=False)
    if t == "sepconv":
        return SeparableConv(d["in_channels"], layer.out_channels, layer.kernel_size,
                             layer.stride, d["padding"])
    if t == "batchnorm":
        return nn.BatchNorm2d(d["features"]) if d["dims"] == 2 else nn.BatchNorm1d(d["features"])
    if t == "relu":
        return nn.ReLU(inplace=False)
    if t == "gelu":
        return nn.GELU()
    if t == "maxpool":
        return nn.MaxPool2d(layer.kernel_size, d["stride"])
    if t == "avgpool":
        return nn.AvgPool2d(layer.kernel_size, d["stride"])
    if t == "dropout":
        return nn.Dropout(layer.p)
    if t == "flatten":
        return nn.Flatten()
    if t == "gap":
        return GlobalAvgPool()
    if t == "linear":
        return nn.Linear(d["in_features"], layer.out_features, bias=layer.bias)
    if t == "residual":
        body = nn.Sequential(*(
            _module(child, report.layer_at((*rep.index, i)), report)
            for i, child in enumerate(layer.layers)
        ))
        proj = d["projection"]
        shortcut: nn.Module
        if proj is None:
            shortcut = nn.Identity()
        elif proj["kind"] == "linear":
            shortcut = nn.Linear(proj["in"], proj["out"], bias=False)
        else:
            shortcut = nn.Sequential(
                nn.Conv2d(proj["in"], proj["out"], 1, proj["stride"], bias=False),
                nn.BatchNorm2d(proj["out"]),
            )
        return ResidualBlock(body, shortcut)
    if t == "inverted_residual":
        return InvertedResidualBlock(d["in_channels"], d["hidden"], layer.out_channels,
                                     layer.kernel_size, layer.stride, d["padding"], d["skip"])
    raise AssertionError(f"no builder for layer type {t!r}")


def build_from_spec(spec: StudentSpec, input_shape: tuple[int, int, int],
                    num_classes: int) -> SpecNet:
    """The module for ``spec`` on inputs of ``input_shape``; a bad spec raises ConfigError.

    The error is the first problem :func:`infer` finds, naming the layer and the fix.
    """
    report = infer(spec, input_shape, num_classes)
    report.raise_if_invalid(source="student spec")
    layers = nn.Sequential(*(
        _module(layer, report.layer_at((i,)), report) for i, layer in enumerate(spec.layers)
    ))
    return SpecNet(layers, spec, tuple(int(s) for s in input_shape), num_classes)


def count_params(module: nn.Module) -> int:
    """All parameters (trainable or not), as shape inference counts them."""
    return sum(p.numel() for p in module.parameters())


def spec_of(module: nn.Module) -> StudentSpec | None:
    """The spec a module was built from, if it was built by kdgui."""
    spec = getattr(module, "kdgui_spec", None)
    return spec if isinstance(spec, StudentSpec) else None


@torch.no_grad()
def output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample output shape of a forward pass at batch 2 (eval mode, mode restored)."""
    was = module.training
    module.eval()
    try:
        out = module(torch.zeros(2, *input_shape))
    finally:
        module.train(was)
    return tuple(out.shape[1:])
