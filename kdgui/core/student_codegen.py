"""Turn a :class:`StudentSpec` into standalone PyTorch source ("Copy as PyTorch code").

The generated module mirrors :func:`kdgui.engine.models.build_from_spec` one to one: the same
module tree (``layers.3.body.1``, ``layers.5.expand.0`` ...), the same layer arguments and the
same helper blocks. So the pasted code has exactly the parameter count the editor showed, and a
state_dict saved from a kdgui run loads into it unchanged. Channel counts and paddings come from
:func:`kdgui.core.student_shapes.infer` (the same walk the builder uses), never from guessing.

Pure Python and free of torch, so the window (and the CLI) can produce the text instantly.
"""

from __future__ import annotations

from typing import Any

from kdgui.core.student_shapes import LayerReport, SpecReport, fmt_shape, infer
from kdgui.core.student_spec import StudentSpec

_INDENT = "    "

# Helper blocks, emitted only when a spec uses them. Their attribute names match the engine's.
_HELPERS: dict[str, str] = {
    "gap": '''
class GlobalAvgPool(nn.Module):
    """Average each channel to one number: N×C×H×W → N×C."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
''',
    "sepconv": '''
class SeparableConv(nn.Module):
    """Depthwise k×k then pointwise 1×1, both without bias."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, kernel, stride, padding, groups=in_ch,
                                   bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))
''',
    "residual": '''
class ResidualBlock(nn.Module):
    """body(x) + shortcut(x); the shortcut projects only where the body changes the shape."""

    def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)
''',
    "inverted_residual": '''
class InvertedResidualBlock(nn.Module):
    """MobileNetV2 block: 1×1 expand (optional), depthwise k×k, 1×1 project; skip if allowed."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y
''',
}


def _used_types(layers: list[Any], found: set[str]) -> set[str]:
    for layer in layers:
        found.add(layer.type)
        if layer.type == "residual":
            _used_types(layer.layers, found)
    return found


def _expr(layer: Any, rep: LayerReport, report: SpecReport, indent: int) -> str:
    """The constructor expression of one layer (multi-line for residual blocks)."""
    t, d = layer.type, rep.detail
    if t == "conv2d":
        return (f"nn.Conv2d({d['in_channels']}, {layer.out_channels}, {layer.kernel_size}, "
                f"stride={layer.stride}, padding={d['padding']}, "
                + (f"groups={layer.groups}, " if layer.groups != 1 else "")
                + f"bias={layer.bias})")
    if t == "dwconv":
        c = d["in_channels"]
        return (f"nn.Conv2d({c}, {c}, {layer.kernel_size}, stride={layer.stride}, "
                f"padding={d['padding']}, groups={c}, bias=False)")
    if t == "sepconv":
        return (f"SeparableConv({d['in_channels']}, {layer.out_channels}, {layer.kernel_size}, "
                f"{layer.stride}, {d['padding']})")
    if t == "batchnorm":
        return f"nn.BatchNorm{'2' if d['dims'] == 2 else '1'}d({d['features']})"
    if t == "relu":
        return "nn.ReLU()"
    if t == "gelu":
        return "nn.GELU()"
    if t in ("maxpool", "avgpool"):
        cls = "MaxPool2d" if t == "maxpool" else "AvgPool2d"
        return f"nn.{cls}({layer.kernel_size}, stride={d['stride']})"
    if t == "dropout":
        return f"nn.Dropout(p={layer.p!r})"
    if t == "flatten":
        return "nn.Flatten()"
    if t == "gap":
        return "GlobalAvgPool()"
    if t == "linear":
        return f"nn.Linear({d['in_features']}, {layer.out_features}, bias={layer.bias})"
    if t == "inverted_residual":
        return (f"InvertedResidualBlock({d['in_channels']}, {d['hidden']}, {layer.out_channels}, "
                f"{layer.kernel_size}, {layer.stride}, {d['padding']}, skip={d['skip']})")
    if t == "residual":
        pad = _INDENT * indent
        body = _sequential(
            layer.layers, [report.layer_at((*rep.index, i)) for i in range(len(layer.layers))],
            report, indent + 1)
        proj = d["projection"]
        if proj is None:
            shortcut = "nn.Identity()"
        elif proj["kind"] == "linear":
            shortcut = f"nn.Linear({proj['in']}, {proj['out']}, bias=False)"
        else:
            shortcut = (f"nn.Sequential(nn.Conv2d({proj['in']}, {proj['out']}, 1, "
                        f"stride={proj['stride']}, bias=False), nn.BatchNorm2d({proj['out']}))")
        return (f"ResidualBlock(\n{pad}{_INDENT}body={body},\n"
                f"{pad}{_INDENT}shortcut={shortcut},\n{pad})")
    raise AssertionError(f"no code generator for layer type {t!r}")


def _sequential(layers: list[Any], reports: list[LayerReport], report: SpecReport,
                indent: int) -> str:
    """``nn.Sequential(...)`` with one commented line per layer (name and output shape)."""
    pad = _INDENT * indent
    if not layers:
        return "nn.Sequential()"
    lines = []
    for layer, rep in zip(layers, reports, strict=True):
        expr = _expr(layer, rep, report, indent + 1)
        lines.append(f"{pad}{_INDENT}{expr},  # {rep.name}: → {fmt_shape(rep.out_shape)}")
    return "nn.Sequential(\n" + "\n".join(lines) + f"\n{pad})"


def _class_name(name: str) -> str:
    parts = "".join(ch if ch.isalnum() else " " for ch in name).split()
    ident = "".join(p[:1].upper() + p[1:] for p in parts) or "Student"
    return ident if ident[0].isalpha() else f"Student{ident}"


def to_pytorch_source(spec: StudentSpec, input_shape: tuple[int, int, int], num_classes: int,
                      class_name: str | None = None) -> str:
    """Standalone Python source of an ``nn.Module`` for ``spec``; raises ConfigError if invalid.

    The source imports only ``torch``; running it as a script builds the model and prints its
    output shape and parameter count, so a user can check what they pasted.
    """
    report = infer(spec, input_shape, num_classes)
    report.raise_if_invalid(source="student spec")
    cls = class_name or _class_name(spec.name)
    used = _used_types(list(spec.layers), set())
    helpers = "".join(_HELPERS[t] + "\n" for t in ("gap", "sepconv", "residual",
                                                   "inverted_residual") if t in used)
    body = _sequential(list(spec.layers), [report.layer_at((i,)) for i in range(len(spec.layers))],
                       report, 2)
    c, h, w = report.input_shape
    return f'''"""{spec.name}: generated by KD Studio from a student spec.

Input {fmt_shape(report.input_shape)}, {num_classes} classes, {report.total_params:,} parameters, \
{report.total_macs:,} MACs per sample.
The module tree matches kdgui's, so a kdgui student state_dict loads with load_state_dict().
"""

import torch
from torch import nn

{helpers}
class {cls}(nn.Module):
    """The student network: an nn.Sequential named ``layers``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = {body}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


INPUT_SHAPE = ({c}, {h}, {w})
NUM_CLASSES = {num_classes}

if __name__ == "__main__":
    model = {cls}().eval()
    out = model(torch.zeros(2, *INPUT_SHAPE))
    print(tuple(out.shape), sum(p.numel() for p in model.parameters()), "parameters")
'''
