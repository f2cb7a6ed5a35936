"""The editor's vocabulary of layers: the palette, labels, one-line summaries and layer paths.

Shared by the model (:mod:`kdgui.gui.student_editor.model`) and every view of it (canvas, list,
form, palette); Qt-free like the model.

Layers are addressed by *paths*: ``(3,)`` is the fourth top-level layer, ``(3, 1)`` the second
layer inside that residual block (the same paths as :attr:`LayerReport.index`).
"""

from __future__ import annotations

from typing import Any

from kdgui.core.errors import ConfigError
from kdgui.core.student_spec import LAYER_TYPES

LayerPath = tuple[int, ...]

#: Palette entries in display order: (type key, label, what it does).
PALETTE: list[tuple[str, str, str]] = [
    ("conv2d", "Conv2d", "k×k convolution; sets the channel count"),
    ("dwconv", "Depthwise conv", "one k×k filter per channel (groups = channels)"),
    ("sepconv", "Separable conv", "depthwise k×k + pointwise 1×1: cheap convolution"),
    ("batchnorm", "BatchNorm", "normalises each channel; put it after a conv"),
    ("relu", "ReLU", "activation max(0, x)"),
    ("gelu", "GELU", "smooth activation"),
    ("maxpool", "MaxPool", "halves the size (kernel 2)"),
    ("avgpool", "AvgPool", "halves the size by averaging"),
    ("dropout", "Dropout", "zeroes a fraction of values while training"),
    ("flatten", "Flatten", "C×H×W → one vector"),
    ("gap", "Global avg pool", "averages each channel: C×H×W → C"),
    ("linear", "Linear", "fully connected; the last one outputs the class scores"),
    ("residual", "Residual block", "skip connection around its layers (+ 1×1 projection "
     "when needed)"),
    ("inverted_residual", "Inverted residual", "MobileNetV2 block: expand, depthwise, project"),
]
LABELS = {key: label for key, label, _ in PALETTE}


def new_layer(layer_type: str, **params: Any) -> Any:
    """A layer of ``layer_type`` with its defaults; unknown types are a ConfigError."""
    try:
        cls = LAYER_TYPES[layer_type]
    except KeyError:
        raise ConfigError(f"unknown layer type '{layer_type}'",
                          f"Use one of: {', '.join(LAYER_TYPES)}") from None
    return cls(**params)


def summary(layer: Any) -> str:
    """The layer's parameters in a few characters, for canvas blocks and list rows."""
    t = layer.type
    if t == "conv2d":
        extra = "" if layer.groups == 1 else f", g{layer.groups}"
        return f"{layer.out_channels} ch, {layer.kernel_size}×{layer.kernel_size}, " \
               f"s{layer.stride}{extra}"
    if t == "dwconv":
        return f"{layer.kernel_size}×{layer.kernel_size}, s{layer.stride}"
    if t == "sepconv":
        return f"{layer.out_channels} ch, {layer.kernel_size}×{layer.kernel_size}, s{layer.stride}"
    if t in ("maxpool", "avgpool"):
        return f"{layer.kernel_size}×{layer.kernel_size}, s{layer.stride or layer.kernel_size}"
    if t == "dropout":
        return f"p={layer.p:g}"
    if t == "linear":
        return f"{layer.out_features} out"
    if t == "inverted_residual":
        return f"{layer.out_channels} ch, ×{layer.expand_ratio}, s{layer.stride}"
    if t == "residual":
        return f"{len(layer.layers)} layers"
    return ""


def all_paths(layers: list[Any], prefix: LayerPath = ()) -> list[LayerPath]:
    """Every layer's path in pre-order (a block before its children), as the views list them."""
    out: list[LayerPath] = []
    for i, layer in enumerate(layers):
        out.append((*prefix, i))
        if layer.type == "residual":
            out.extend(all_paths(layer.layers, (*prefix, i)))
    return out
