"""A new compression method or exporter is its module, its declaration and its test: nothing else.

Each test declares a method or an exporter here, the way a new built-in would be declared in
``kdgui/core/components/``, and shows that the config, the pipeline's checks, the sweep's bit
count, the CLI's choices and the export format table pick it up with no other change.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core import method_traits as traits_table
from kdgui.core import run_folders
from kdgui.core.components import export as export_decl
from kdgui.core.components.compression import (
    MethodTraits,
    declare_method,
    int8_methods,
    method_traits,
    methods_of,
)
from kdgui.core.components.export import declare_format, export_format, format_names
from kdgui.core.config import CompressionStep, ExportConfig, demo_config
from kdgui.core.errors import CompressionError
from kdgui.core.params import Params, param
from kdgui.core.registry import REGISTRIES
from kdgui.engine.compress import CompressionContext, run_pipeline
from kdgui.engine.compress.pipeline import check_steps
from kdgui.engine.export import compatible_formats, detect_format, export_model, load_exported
from kdgui.engine.export.base import Exporter, LoadedModel
from kdgui.engine.jobs.compress_job import quantize_choices
from kdgui.engine.sweep import weight_bits


@pytest.fixture(autouse=True)
def scratch_declarations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declarations made by a test vanish after it (copies of the tables are patched in)."""
    for registry in REGISTRIES.values():
        registry.names()  # the built-ins are declared before the copy is taken
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    monkeypatch.setattr(traits_table, "TRAITS", dict(traits_table.TRAITS))
    monkeypatch.setattr(export_decl, "FORMATS", dict(export_decl.FORMATS))


# ------------------------------------------------------------------- the new units themselves


class ToyInt8Params(Params):
    """No options."""


class ToyCalibratedParams(Params):
    train: bool = param(False, "Train during the step.")


def toy_int8(model: nn.Module, params: Any, ctx: CompressionContext) -> nn.Module:
    """int8 Linear layers with torch's own dynamic quantization."""
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def toy_calibrated(model: nn.Module, params: Any, ctx: CompressionContext) -> nn.Module:
    """Zero the first layer's weights that calibration inputs never reach (a made-up rule)."""
    seen = sum(x.abs().sum(0).flatten() for x, _ in ctx.calibration_batches(16, 8))
    with torch.no_grad():
        model[0].weight[:, seen == 0] = 0.0
    return model


class ToyExporter(Exporter):
    """Weights with ``torch.save``; loads into a copy of the given model."""

    name = "toy"

    def write(self, model: nn.Module, path: Path, example: torch.Tensor,
              metadata: dict[str, Any]) -> list[str]:
        torch.save(model.state_dict(), path)
        return []

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        assert model is not None
        net = copy.deepcopy(model).eval()
        net.load_state_dict(torch.load(path, weights_only=True))
        return LoadedModel(cls.name, path, net, net, {})

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        return {}


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def data(n: int = 32) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 6, generator=gen)
    x[:, 5] = 0.0  # one input never carries signal
    return TensorDataset(x, x[:, :3].argmax(1))


def drive(gen: Any) -> tuple[list, Any]:
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return events, stop.value


# -------------------------------------------------------------------------------------- tests


def test_a_declared_int8_method_is_known_everywhere_from_its_declaration(tmp_path: Path) -> None:
    assert "toy-int8" not in int8_methods()
    declare_method("quantize", "toy-int8", ToyInt8Params, f"{__name__}:toy_int8",
                   "Toy int8", traits=MethodTraits(produces_int8=True))

    assert "toy-int8" in methods_of("quantize") and "toy-int8" in int8_methods()
    assert "toy-int8" in quantize_choices()  # the CLI's --quantize help
    config = demo_config()
    config.compression.steps = [CompressionStep(kind="quantize", method="toy-int8")]
    assert weight_bits(config) == 8
    fake4 = CompressionStep(kind="quantize", method="fake", params={"bits": 4})
    config.compression.steps = [fake4]  # declared weight_bits: the fake-quant's own bits
    assert weight_bits(config) == 4
    config.compression.steps = [CompressionStep(kind="quantize", method="toy-int8")]

    ds = data()
    ctx = CompressionContext(input_shape=(6,), calibration=ds, validation=ds)
    with pytest.raises(CompressionError, match="comes after the int8 step"):
        check_steps([CompressionStep(kind="quantize", method="toy-int8"),
                     CompressionStep(kind="prune", method="magnitude")], ctx)
    with pytest.raises(CompressionError, match="cannot fine-tune an int8 model"):
        check_steps([CompressionStep(kind="quantize", method="toy-int8", finetune_epochs=1)], ctx)

    out = run_folders.stages_dir(tmp_path)  # as a session passes it
    _, (model, stages) = drive(run_pipeline(mlp(), config.compression.steps, ctx, out))
    assert type(model[0]).__name__ == "Linear" and model[0].__module__.startswith("torch.ao")
    assert [s["name"] for s in stages] == ["before", "quantize:toy-int8"]
    saved = run_folders.stage_dirs(tmp_path)
    assert [p.name for p in saved] == ["0_before", "1_quantize-toy-int8"]
    assert (saved[1] / "model.ts").is_file()  # torch.export cannot hold int8: TorchScript


def test_declared_training_and_calibration_needs_are_checked_before_any_work(tmp_path: Path
                                                                             ) -> None:
    declare_method("prune", "toy-calibrated", ToyCalibratedParams, f"{__name__}:toy_calibrated",
                   "Toy calibrated", traits=MethodTraits(
                       needs_calibration=True, trains_during_step=lambda p: p.train))
    assert method_traits("prune", "toy-calibrated").calibrates()
    out = tmp_path / "stages"
    no_data = CompressionContext(input_shape=(6,))
    step = CompressionStep(kind="prune", method="toy-calibrated")
    with pytest.raises(CompressionError, match="needs calibration data"):
        drive(run_pipeline(mlp(), [step], no_data, out))
    assert not out.exists()  # refused before the first stage was measured or saved
    trains = CompressionStep(kind="prune", method="toy-calibrated", params={"train": True})
    ds = data()
    with pytest.raises(CompressionError, match="needs fine-tuning"):
        check_steps([trains], CompressionContext(input_shape=(6,), calibration=ds))

    ctx = CompressionContext(input_shape=(6,), calibration=ds, validation=ds)
    _, (model, _stages) = drive(run_pipeline(mlp(), [step], ctx, out))
    assert bool((model[0].weight[:, 5] == 0).all()) and bool((model[0].weight[:, 0] != 0).any())


def test_a_declared_exporter_joins_the_format_table(tmp_path: Path) -> None:
    assert "toy" not in format_names()
    declare_format("toy", ToyInt8Params, f"{__name__}:ToyExporter", "Toy (.toy)",
                   suffix=".toy", verify="reloaded with torch.load", holds_int8=False)

    assert export_format("toy").suffix == ".toy" and "toy" in format_names()
    assert ExportConfig(formats=["toy"]).formats == ["toy"]
    assert run_folders.export_path(tmp_path, "toy") == tmp_path / "export" / "model.toy"
    model = mlp()
    result = export_model(model, "toy", tmp_path / "model", torch.randn(2, 6))
    assert Path(result.path).name == "model.toy" and result.verified
    assert detect_format(Path(result.path)) == "toy"
    x = torch.randn(4, 6)
    torch.testing.assert_close(load_exported(result.path, model=model)(x), model(x))
    assert "toy" in compatible_formats(model)
    quantized = toy_int8(mlp(), None, CompressionContext(input_shape=(6,)))
    assert "toy" not in compatible_formats(quantized)
