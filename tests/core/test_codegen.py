"""'Copy as PyTorch code': the source runs, and its model is the engine's model, weight for weight.

Also the spec files (YAML/JSON) the editor saves and opens.
"""

from __future__ import annotations

import pytest
import torch

from kdgui.core.errors import ConfigError
from kdgui.core.presets import PRESETS
from kdgui.core.student_codegen import to_pytorch_source
from kdgui.core.student_spec import (
    GELU,
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
from kdgui.core.student_spec_io import dump_spec, load_spec, save_spec, spec_from_data
from kdgui.engine.models import build_from_spec, count_params

CIFAR_PRESETS = {"resnet8x4", "resnet32x4", "resnet20", "resnet56", "wrn-16-2", "wrn-40-2"}

DRAWN = {
    "separable-gelu-avgpool": StudentSpec(name="drawn 1", layers=[
        Conv2d(out_channels=6, kernel_size=5, padding=1, bias=True), GELU(),
        SeparableConv2d(out_channels=12, stride=2), DepthwiseConv2d(kernel_size=2, padding=0),
        AvgPool(kernel_size=2, stride=1), Dropout(p=0.3), GlobalAvgPool(),
        Linear(out_features=10, bias=False)]),
    "residual-projection-nested": StudentSpec(name="2-resnets", layers=[
        Conv2d(out_channels=8), BatchNorm(), ReLU(),
        Residual(layers=[Conv2d(out_channels=16, stride=2), BatchNorm(), ReLU(),
                         Residual(layers=[Conv2d(out_channels=16, groups=4), BatchNorm()])]),
        ReLU(), Residual(layers=[]), InvertedResidual(out_channels=16, expand_ratio=1),
        InvertedResidual(out_channels=24, stride=2), MaxPool(kernel_size=2, stride=1),
        GlobalAvgPool(), Linear(out_features=10)]),
    "mlp-with-flat-residual": StudentSpec(layers=[
        Flatten(), Linear(out_features=20), BatchNorm(), ReLU(),
        Residual(layers=[Linear(out_features=12), ReLU()]), Linear(out_features=10)]),
}
SHAPES = [(1, 8, 8), (3, 16, 16)]


def _compile(source: str) -> type[torch.nn.Module]:
    namespace: dict = {"__name__": "generated"}
    exec(compile(source, "<generated student>", "exec"), namespace)
    return namespace["Student"]


def _check(spec: StudentSpec, shape: tuple[int, int, int], classes: int = 10) -> None:
    engine = build_from_spec(spec, shape, classes).eval()
    generated = _compile(to_pytorch_source(spec, shape, classes, class_name="Student"))().eval()
    assert count_params(generated) == count_params(engine)
    generated.load_state_dict(engine.state_dict())  # same module tree, same names
    x = torch.randn(3, *shape)
    with torch.no_grad():
        out_e, out_g = engine(x), generated(x)
    assert out_g.shape == out_e.shape == (3, classes)
    assert torch.allclose(out_g, out_e, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_generates_the_engines_model(name: str, shape) -> None:
    # The deep CIFAR presets (up to 7.4 M parameters) are checked at a quarter of their width:
    # the same layers and names, a fraction of the time.
    _check(PRESETS[name].build(shape, 10, 0.25 if name in CIFAR_PRESETS else 1.0), shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(DRAWN))
def test_drawn_students_generate_the_engines_model(name: str, shape) -> None:
    _check(DRAWN[name], shape)


def test_the_source_runs_as_a_script_and_names_the_class_after_the_spec(capsys) -> None:
    source = to_pytorch_source(DRAWN["separable-gelu-avgpool"], (1, 8, 8), 10)
    assert "class Drawn1(nn.Module)" in source and "import kdgui" not in source
    exec(compile(source, "<script>", "exec"), {"__name__": "__main__"})
    assert "(2, 10)" in capsys.readouterr().out


def test_an_invalid_spec_raises_with_the_layer_and_fix() -> None:
    spec = StudentSpec(layers=[Conv2d(out_channels=4), Linear(out_features=10)])
    with pytest.raises(ConfigError) as info:
        to_pytorch_source(spec, (1, 8, 8), 10)
    assert "layer 1" in info.value.what and "Flatten" in info.value.fix


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_spec_files_round_trip(tmp_path, suffix: str) -> None:
    spec = DRAWN["residual-projection-nested"]
    path = tmp_path / f"student{suffix}"
    save_spec(spec, path)
    assert load_spec(path) == spec


def test_spec_files_in_other_layouts_and_bad_files(tmp_path) -> None:
    spec = DRAWN["mlp-with-flat-residual"]
    bare = spec.model_dump(mode="json")
    assert spec_from_data(bare) == spec
    assert spec_from_data({"name": "x", "student": {"spec": bare}}) == spec
    assert "kdgui-spec" in dump_spec(spec)
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [{type: conv2d, out_channels: 0}]\n")
    with pytest.raises(ConfigError) as info:
        load_spec(bad)
    assert "out_channels" in info.value.what
    with pytest.raises(ConfigError):
        spec_from_data({"student": {"preset": "cnn-small"}})
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError):
        load_spec(tmp_path / "broken.json")
