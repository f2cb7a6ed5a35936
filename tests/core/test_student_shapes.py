"""Shape inference on specs (pure Python) and the presets' validity on all kinds of inputs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kdgui.core.errors import ConfigError
from kdgui.core.presets import PRESETS, get_preset
from kdgui.core.student_shapes import infer
from kdgui.core.student_spec import (
    BatchNorm,
    Conv2d,
    DepthwiseConv2d,
    Flatten,
    GlobalAvgPool,
    InvertedResidual,
    Linear,
    MaxPool,
    ReLU,
    Residual,
    SeparableConv2d,
    StudentSpec,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 5, 7), (1, 1, 1), (3, 96, 96)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_on_every_input_size(name: str, shape: tuple[int, int, int]) -> None:
    report = infer(PRESETS[name].build(shape, 10, 1.0), shape, 10)
    assert report.ok, [e.one_line() for e in report.errors]
    assert report.output_shape == (10,)
    # the total is the sum of the top-level layers (a block's count includes its children)
    assert report.total_params == sum(r.params for r in report.layers if len(r.index) == 1)
    assert report.layers[-1].params >= 10 * (1 + 1)  # at least the classifier's weights and bias
    for rep in report.layers:
        if rep.out_shape is not None and len(rep.out_shape) == 3:
            assert min(rep.out_shape[1:]) >= 1


def test_presets_scale_with_width_and_teacher_is_much_bigger() -> None:
    shape = (1, 8, 8)
    small = infer(get_preset("cnn-small").build(shape, 10, 1.0), shape, 10).total_params
    half = infer(get_preset("cnn-small").build(shape, 10, 0.5), shape, 10).total_params
    teacher = infer(get_preset("cnn-teacher").build(shape, 10, 1.0), shape, 10).total_params
    assert half < small / 2.5
    assert teacher >= 5 * small


def test_conv_counts_shapes_and_macs() -> None:
    spec = StudentSpec(layers=[Conv2d(out_channels=4, kernel_size=3, stride=2, padding=1,
                                      bias=True), GlobalAvgPool(), Linear(out_features=10)])
    r = infer(spec, (2, 9, 9), 10)
    conv = r.layer_at((0,))
    assert conv.out_shape == (4, 5, 5)
    assert conv.params == 4 * 2 * 9 + 4
    assert conv.macs == 4 * 2 * 9 * 25
    assert r.total_params == conv.params + 4 * 10 + 10
    assert conv.name == "layers.0"


def test_residual_projection_is_reported_with_stride() -> None:
    spec = StudentSpec(layers=[
        Residual(layers=[Conv2d(out_channels=8, stride=2), BatchNorm(), ReLU()]),
        GlobalAvgPool(), Linear(out_features=3)])
    r = infer(spec, (4, 7, 7), 3)
    block = r.layer_at((0,))
    assert block.out_shape == (8, 4, 4)
    assert block.detail["projection"] == {"kind": "conv", "in": 4, "out": 8, "stride": 2}
    assert r.layer_at((0, 0)).name == "layers.0.body.0"
    assert block.params == 8 * 4 * 9 + 16 + (4 * 8 + 16)


def test_inverted_residual_skip_only_when_shapes_allow() -> None:
    spec = StudentSpec(layers=[
        InvertedResidual(out_channels=4, expand_ratio=2, stride=1),
        InvertedResidual(out_channels=6, expand_ratio=1, stride=2),
        GlobalAvgPool(), Linear(out_features=2)])
    r = infer(spec, (4, 8, 8), 2)
    assert r.layer_at((0,)).detail["skip"] is True
    assert r.layer_at((1,)).detail["skip"] is False
    assert r.layer_at((1,)).out_shape == (6, 4, 4)


def _first_error(spec: StudentSpec, shape=(1, 8, 8), n=10):
    r = infer(spec, shape, n)
    assert not r.ok
    return r.errors[0]


def test_groups_that_do_not_divide_are_an_error_on_that_layer() -> None:
    spec = StudentSpec(layers=[Conv2d(out_channels=6), Conv2d(out_channels=8, groups=4),
                               GlobalAvgPool(), Linear(out_features=10)])
    err = _first_error(spec)
    assert err.index == (1,)
    assert "groups=4" in err.what and "6" in err.what
    assert "divisor" in err.fix


def test_spatial_size_below_one_is_an_error() -> None:
    spec = StudentSpec(layers=[MaxPool(kernel_size=2), MaxPool(kernel_size=2),
                               MaxPool(kernel_size=2), MaxPool(kernel_size=2), Flatten(),
                               Linear(out_features=10)])
    err = _first_error(spec)
    assert err.index == (3,)
    assert "below 1×1" in err.what


def test_linear_on_feature_map_asks_for_flatten() -> None:
    err = _first_error(StudentSpec(layers=[Conv2d(out_channels=4), Linear(out_features=10)]))
    assert err.index == (1,)
    assert "flat input" in err.what
    assert "Flatten or global average pool" in err.fix


def test_wrong_class_count_names_the_last_linear() -> None:
    r = infer(StudentSpec(layers=[Flatten(), Linear(out_features=32), ReLU(),
                                  Linear(out_features=7)]), (1, 8, 8), 10)
    assert not r.ok
    assert r.errors[0].index == (3,)
    assert r.layer_at((3,)).fix == "Set the last Linear's out_features to 10"


def test_ending_on_a_feature_map_and_empty_spec_are_errors() -> None:
    assert "feature map" in _first_error(StudentSpec(layers=[Conv2d(out_channels=10)])).what
    assert "no layers" in _first_error(StudentSpec(layers=[])).what


def test_conv_after_flatten_is_an_error() -> None:
    err = _first_error(StudentSpec(layers=[Flatten(), DepthwiseConv2d(),
                                           Linear(out_features=10)]))
    assert err.index == (1,) and "C×H×W" in err.what


def test_residual_that_flattens_is_an_error() -> None:
    err = _first_error(StudentSpec(layers=[Residual(layers=[Flatten()]),
                                           Linear(out_features=10)]))
    assert err.index == (0,) and "rank" in err.what


def test_raise_if_invalid_gives_config_error() -> None:
    r = infer(StudentSpec(layers=[SeparableConv2d(out_channels=4), Linear(out_features=10)]),
              (1, 8, 8), 10)
    with pytest.raises(ConfigError) as info:
        r.raise_if_invalid()
    assert "layer 1" in info.value.what


def test_unknown_preset_lists_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("nope")
    assert "cnn-small" in info.value.fix


def test_shapes_and_presets_import_no_torch() -> None:
    code = ("import sys, kdgui.core.student_shapes, kdgui.core.presets; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
