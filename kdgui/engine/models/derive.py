"""Derive a smaller student from the teacher's own family: narrower and with fewer blocks.

A student that shares the teacher's design distils well and needs no architecture choice from the
user. Three families are understood: kdgui spec-built models (the spec is edited as data),
torchvision ResNets and torchvision MobileNetV2 (their constructors take block counts and widths).
Anything else raises :class:`CompatibilityError` pointing at the presets.
"""

from __future__ import annotations

import copy
import math

from torch import nn

from kdgui.core.errors import CompatibilityError, ConfigError
from kdgui.core.student_shapes import SpecReport, infer
from kdgui.core.student_spec import StudentSpec
from kdgui.engine.models.spec_build import build_from_spec, spec_of

_TRAILING = ("batchnorm", "relu", "gelu", "dropout")


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def derive_student(teacher: nn.Module, input_shape: tuple[int, int, int], num_classes: int,
                   width: float = 0.5, depth: float = 1.0) -> nn.Module:
    """A student of the teacher's family with channels × ``width`` and about ``depth`` × blocks.

    ``depth`` is the fraction of *repeatable* blocks kept (those that keep the tensor's shape);
    blocks that change the shape are always kept, so the network stays valid.
    """
    if not (width > 0 and 0 < depth <= 1):
        raise ConfigError(f"width = {width} and depth = {depth} are out of range",
                          "Use width > 0 and 0 < depth ≤ 1")
    spec = spec_of(teacher)
    if spec is not None:
        derived = derive_spec(spec, input_shape, num_classes, width, depth)
        return build_from_spec(derived, input_shape, num_classes)
    from torchvision.models import MobileNetV2, ResNet

    if isinstance(teacher, ResNet):
        return _derive_resnet(teacher, num_classes, width, depth)
    if isinstance(teacher, MobileNetV2):
        return _derive_mobilenet_v2(teacher, num_classes, width, depth)
    raise CompatibilityError(
        f"deriving a student is not supported for {type(teacher).__name__} models "
        "(only kdgui spec models, torchvision ResNets and MobileNetV2)",
        "Turn derive_from_teacher off and pick a student preset (e.g. cnn-small)",
        source="student")


# -- kdgui specs -------------------------------------------------------------------------------

def derive_spec(spec: StudentSpec, input_shape: tuple[int, int, int], num_classes: int,
                width: float, depth: float) -> StudentSpec:
    """The spec with repeatable blocks dropped (by ``depth``) and widths scaled (by ``width``)."""
    report = infer(spec, input_shape, num_classes)
    if not report.ok:
        raise CompatibilityError(f"the teacher's spec is invalid: {report.errors[0].what}",
                                 report.errors[0].fix, source="teacher")
    layers = list(spec.layers)
    units = _repeatable_units(spec, report)
    keep = round_half_up(len(units) * depth)
    dropped: set[int] = set()
    by_stage: dict[tuple, list[tuple[int, int]]] = {}
    for start, end, shape in units:
        by_stage.setdefault(shape, []).append((start, end))
    stages = list(by_stage.values())
    kept = [len(s) for s in stages]
    while sum(kept) > keep:
        # drop from the stage keeping the most blocks; ties go to the deepest stage
        i = max(range(len(stages)), key=lambda j: (kept[j], j))
        start, end = stages[i][kept[i] - 1]
        dropped.update(range(start, end))
        kept[i] -= 1
    new_layers = [layer for i, layer in enumerate(layers) if i not in dropped]
    last_linear = max((i for i, la in enumerate(new_layers) if la.type == "linear"), default=-1)
    scaled = [
        _scale_layer(layer, width) if i != last_linear else layer.model_copy()
        for i, layer in enumerate(new_layers)
    ]
    derived = StudentSpec(name=f"{spec.name}-derived", layers=scaled)
    check = infer(derived, input_shape, num_classes)
    if not check.ok:
        raise CompatibilityError(
            f"scaling the teacher's spec by width {width} gives an invalid network: "
            f"{check.errors[0].what}",
            "Try another width (e.g. 0.5) or pick a student preset", source="student")
    return derived


def _repeatable_units(spec: StudentSpec, report: SpecReport) -> list[tuple[int, int, tuple]]:
    """Top-level ``(start, end, shape)`` runs that keep the shape and can be removed whole."""
    units = []
    layers = spec.layers
    i = 0
    while i < len(layers):
        rep = report.layer_at((i,))
        t = layers[i].type
        same = rep.in_shape == rep.out_shape and rep.in_shape is not None and len(rep.in_shape) == 3
        if same and t in ("residual", "inverted_residual", "conv2d", "sepconv"):
            end = i + 1
            trailing = ("relu", "gelu") if t in ("residual", "inverted_residual") else _TRAILING
            while end < len(layers) and layers[end].type in trailing:
                end += 1
            units.append((i, end, rep.in_shape))
            i = end
        else:
            i += 1
    return units


def _scale_layer(layer, width: float):
    data = layer.model_dump()
    t = data["type"]
    if t in ("conv2d", "sepconv", "inverted_residual"):
        c = max(1, round_half_up(data["out_channels"] * width))
        g = data.get("groups", 1)
        if g > 1:
            c = max(g, round_half_up(c / g) * g)
        data["out_channels"] = c
    elif t == "linear":
        data["out_features"] = max(1, round_half_up(data["out_features"] * width))
    elif t == "residual":
        return type(layer)(layers=[_scale_layer(child, width) for child in layer.layers])
    return type(layer).model_validate(data)


# -- torchvision ResNet ------------------------------------------------------------------------

def _derive_resnet(teacher: nn.Module, num_classes: int, width: float, depth: float) -> nn.Module:
    block = type(teacher.layer1[0])
    counts = [len(getattr(teacher, f"layer{i}")) for i in range(1, 5)]
    layers = [max(1, round_half_up(n * depth)) for n in counts]
    from kdgui.engine.models.narrow_resnet import NarrowResNet, scaled_planes

    student = NarrowResNet(block, layers, num_classes=num_classes, width=width,
                  groups=getattr(teacher, "groups", 1),
                  width_per_group=getattr(teacher, "base_width", 64))
    # Keep the teacher's stem geometry (people adapt it for small or 1-channel images).
    t_conv: nn.Conv2d = teacher.conv1
    stem = scaled_planes(64, width)
    student.conv1 = nn.Conv2d(t_conv.in_channels, stem, t_conv.kernel_size, t_conv.stride,
                              t_conv.padding, bias=t_conv.bias is not None)
    nn.init.kaiming_normal_(student.conv1.weight, mode="fan_out", nonlinearity="relu")
    student.bn1 = type(teacher.bn1)(stem)
    student.maxpool = copy.deepcopy(teacher.maxpool)
    student.fc = nn.Linear(scaled_planes(512, width) * block.expansion, num_classes)
    student.kdgui_derived = {"family": "torchvision ResNet", "block": block.__name__,
                             "layers": layers, "teacher_layers": counts, "width": width}
    return student


# -- torchvision MobileNetV2 -------------------------------------------------------------------

def _derive_mobilenet_v2(teacher: nn.Module, num_classes: int, width: float,
                         depth: float) -> nn.Module:
    from torchvision.models import MobileNetV2
    from torchvision.models.mobilenetv2 import InvertedResidual

    setting: list[list[int]] = []
    for b in teacher.features:
        if not isinstance(b, InvertedResidual):
            continue
        conv = b.conv
        t = conv[0][0].out_channels // conv[0][0].in_channels if len(conv) == 4 else 1
        c, s = b.out_channels, b.stride
        if setting and setting[-1][1] == c and setting[-1][0] == t and s == 1:
            setting[-1][2] += 1
        else:
            setting.append([t, c, 1, s])
    teacher_counts = [n for _, _, n, _ in setting]
    for row in setting:
        row[2] = max(1, round_half_up(row[2] * depth))
    student = MobileNetV2(num_classes=num_classes, width_mult=width,
                          inverted_residual_setting=setting)
    t_stem: nn.Conv2d = teacher.features[0][0]
    s_stem: nn.Conv2d = student.features[0][0]
    if t_stem.in_channels != s_stem.in_channels:
        student.features[0][0] = nn.Conv2d(t_stem.in_channels, s_stem.out_channels,
                                           s_stem.kernel_size, s_stem.stride, s_stem.padding,
                                           bias=False)
        nn.init.kaiming_normal_(student.features[0][0].weight, mode="fan_out")
    student.kdgui_derived = {"family": "torchvision MobileNetV2", "setting": setting,
                             "teacher_blocks": teacher_counts, "width": width}
    return student
