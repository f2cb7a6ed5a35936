"""Building students from specs/presets, deriving from teachers, compatibility, demo teacher."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdgui.core.config import ModelRef, StudentConfig
from kdgui.core.errors import CompatibilityError, ConfigError
from kdgui.core.presets import PRESETS
from kdgui.core.student_shapes import infer
from kdgui.core.student_spec import (
    AvgPool,
    BatchNorm,
    Conv2d,
    DepthwiseConv2d,
    Dropout,
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
from kdgui.engine.models import (
    build_from_spec,
    check_compatibility,
    count_params,
    derive_student,
    load_model,
    make_student,
)

HANDMADE = {
    "residual-projection": StudentSpec(layers=[
        Conv2d(out_channels=6), BatchNorm(), ReLU(),
        Residual(layers=[Conv2d(out_channels=10, stride=2), BatchNorm(), ReLU(),
                         Conv2d(out_channels=10), BatchNorm()]),
        ReLU(), Residual(layers=[Conv2d(out_channels=10), BatchNorm()]),
        GlobalAvgPool(), Linear(out_features=5)]),
    "inverted-residual": StudentSpec(layers=[
        Conv2d(out_channels=8), InvertedResidual(out_channels=8, expand_ratio=3),
        InvertedResidual(out_channels=12, expand_ratio=1, stride=2, kernel_size=5),
        GlobalAvgPool(), Linear(out_features=5)]),
    "sep-dw": StudentSpec(layers=[
        SeparableConv2d(out_channels=9, kernel_size=5, stride=2), DepthwiseConv2d(kernel_size=3),
        BatchNorm(), ReLU(), AvgPool(kernel_size=3, stride=1), Conv2d(out_channels=6, groups=3,
                                                                      bias=True, padding=0,
                                                                      kernel_size=1),
        Flatten(), Dropout(p=0.1), Linear(out_features=16), BatchNorm(), ReLU(),
        Linear(out_features=5, bias=False)]),
    "flat-residual": StudentSpec(layers=[
        MaxPool(kernel_size=3), Flatten(), Linear(out_features=20), Residual(layers=[Linear(out_features=12), ReLU()]),
        Residual(layers=[]), Linear(out_features=5)]),
}


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 13, 11)])
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_params_match_shape_inference(name: str, shape: tuple[int, int, int]) -> None:
    spec = PRESETS[name].build(shape, 10, 0.75)
    report = infer(spec, shape, 10)
    model = build_from_spec(spec, shape, 10)
    assert count_params(model) == report.total_params
    model.eval()
    assert model(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("name", list(HANDMADE))
def test_handmade_spec_params_and_shapes_match_torch(name: str) -> None:
    spec, shape = HANDMADE[name], (3, 12, 12)
    report = infer(spec, shape, 5)
    assert report.ok, report.errors
    model = build_from_spec(spec, shape, 5).eval()
    assert count_params(model) == report.total_params
    # every reported layer name exists in the module and produces the reported shape
    seen: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    hooks = []
    for rep in report.layers:
        assert rep.name in modules, rep.name
        assert sum(p.numel() for p in modules[rep.name].parameters()) == rep.params, rep.name
        hooks.append(modules[rep.name].register_forward_hook(
            lambda m, i, o, n=rep.name: seen.__setitem__(n, tuple(o.shape[1:]))))
    model(torch.randn(2, *shape))
    for h in hooks:
        h.remove()
    for rep in report.layers:
        assert seen[rep.name] == rep.out_shape, rep.name


def test_build_from_invalid_spec_raises_config_error() -> None:
    spec = StudentSpec(layers=[Conv2d(out_channels=4), Linear(out_features=10)])
    with pytest.raises(ConfigError) as info:
        build_from_spec(spec, (1, 8, 8), 10)
    assert "Flatten" in info.value.fix


def test_spec_model_keeps_its_spec_and_scripts() -> None:
    spec = HANDMADE["residual-projection"]
    model = build_from_spec(spec, (3, 12, 12), 5)
    assert model.kdgui_spec == spec
    scripted = torch.jit.script(model.eval())
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(scripted(x), model(x))


# -- make_student ------------------------------------------------------------------------------

def test_make_student_priority() -> None:
    shape = (1, 8, 8)
    drawn = StudentSpec(name="drawn", layers=[Flatten(), Linear(out_features=10)])
    m, info = make_student(StudentConfig(preset="cnn-tiny"), None, shape, 10)
    assert info["source"] == "preset" and info["spec"]["name"] == "cnn-tiny"
    assert m.training
    m, info = make_student(StudentConfig(preset="cnn-tiny", spec=drawn), None, shape, 10)
    assert info["source"] == "spec" and info["params"] == 64 * 10 + 10
    m, info = make_student(
        StudentConfig(spec=drawn, model=ModelRef(arch="preset:mlp-tiny")), None, shape, 10)
    assert info["source"] == "model" and info["spec"]["name"] == "mlp-tiny"
    teacher = load_model(ModelRef(path="demo")).module
    m, info = make_student(StudentConfig(derive_from_teacher=True, width=0.5), teacher, shape, 10)
    assert info["source"] == "derived"
    with pytest.raises(ConfigError):
        make_student(StudentConfig(derive_from_teacher=True), None, shape, 10)
    with pytest.raises(ConfigError):
        make_student(StudentConfig(preset=None), None, shape, 10)


# -- derive ------------------------------------------------------------------------------------

def test_derive_from_demo_teacher_is_narrower_and_shallower() -> None:
    teacher = load_model(ModelRef(path="demo")).module
    full = derive_student(teacher, (1, 8, 8), 10, width=1.0, depth=1.0)
    assert count_params(full) == count_params(teacher)
    small = derive_student(teacher, (1, 8, 8), 10, width=0.5, depth=0.5)
    n_conv = lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules())  # noqa: E731
    assert n_conv(small) == n_conv(teacher) - 1
    assert count_params(small) < count_params(teacher) / 3
    check_compatibility(teacher, small, (1, 8, 8), 10, 1)


def test_derive_from_torchvision_resnet18() -> None:
    from torchvision.models import resnet18

    teacher = resnet18(num_classes=10)
    teacher.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    teacher.maxpool = nn.Identity()
    student = derive_student(teacher, (1, 16, 16), 10, width=0.25, depth=0.5)
    assert [len(getattr(student, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    assert student.conv1.in_channels == 1 and student.conv1.out_channels == 16
    assert student.fc.in_features == 128
    assert count_params(student) < count_params(teacher) / 20
    assert check_compatibility(teacher, student, (1, 16, 16), 10, 1) == {
        "teacher": (10,), "student": (10,)}


def test_derive_from_torchvision_mobilenet_v2() -> None:
    from torchvision.models import mobilenet_v2

    teacher = mobilenet_v2(num_classes=10)
    student = derive_student(teacher, (3, 32, 32), 10, width=0.5, depth=0.5)
    n_blocks = lambda m: sum(type(x).__name__ == "InvertedResidual" for x in m.modules())  # noqa: E731
    assert n_blocks(student) < n_blocks(teacher)
    assert count_params(student) < count_params(teacher) / 3
    check_compatibility(None, student, (3, 32, 32), 10, 3)


def test_derive_unsupported_family_says_pick_a_preset() -> None:
    with pytest.raises(CompatibilityError) as info:
        derive_student(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (1, 8, 8), 10, 0.5, 1.0)
    assert "preset" in info.value.fix


# -- compatibility -----------------------------------------------------------------------------

def test_thousand_class_teacher_on_ten_class_data() -> None:
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 1000))
    with pytest.raises(CompatibilityError) as info:
        check_compatibility(teacher, None, (1, 8, 8), 10, 1)
    assert "teacher outputs 1000 classes but the dataset has 10" in info.value.what
    assert "num_classes" in info.value.fix


def test_three_channel_teacher_on_one_channel_data() -> None:
    teacher = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 10))
    with pytest.raises(CompatibilityError) as info:
        check_compatibility(teacher, None, (1, 8, 8), 10, 1)
    assert info.value.what == "the teacher expects 3 input channels but the data has 1"


def test_mlp_for_other_input_size_and_bad_student_output() -> None:
    student = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(CompatibilityError) as info:
        check_compatibility(None, student, (1, 8, 8), 10, 1)
    assert "student expects 784 input features but the data gives 64" in info.value.what
    with pytest.raises(CompatibilityError, match="not a tensor"):
        check_compatibility(None, _TupleOut(), (1, 8, 8), 10, 1)


class _TupleOut(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


def test_compatibility_leaves_batchnorm_statistics_alone() -> None:
    model = build_from_spec(PRESETS["cnn-tiny"].build((1, 8, 8), 10), (1, 8, 8), 10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_compatibility(None, model, (1, 8, 8), 10, 1)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# -- demo teacher ------------------------------------------------------------------------------

def test_demo_teacher_loads_and_is_accurate_on_the_validation_split() -> None:
    from kdgui.core.config import DataConfig
    from kdgui.engine.data import load_data

    loaded = load_model(ModelRef(path="demo"))
    assert loaded.input_shape == (1, 8, 8) and loaded.num_classes == 10
    assert loaded.metadata["class_names"] == [str(i) for i in range(10)]
    assert not loaded.module.training
    data = load_data(DataConfig())
    assert list(data.mean) == pytest.approx(loaded.metadata["normalization"]["mean"])
    x, y = data.val.tensors
    with torch.no_grad():
        acc = (loaded.module(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.97
    assert count_params(loaded.module) >= 5 * count_params(
        build_from_spec(PRESETS["cnn-small"].build((1, 8, 8), 10), (1, 8, 8), 10))
