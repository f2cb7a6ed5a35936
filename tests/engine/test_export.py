"""Every export format round-trips, verifies itself, writes atomically and fails clearly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgui.core.errors import ConfigError, ExportError
from kdgui.engine.export import (
    compatible_formats,
    export_model,
    load_exported,
    read_metadata,
)

FORMATS = ["state_dict", "safetensors", "pt2", "onnx", "torchscript"]
WEIGHTS_ONLY = {"state_dict", "safetensors"}


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.conv2(torch.relu(self.bn1(self.conv1(h)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


def _trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so a file that drops buffers cannot pass."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 12, 12) * 3 + 1)
    return model.eval()


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    model = _trained_like(SmallCNN())
    model.kdgui_spec = {"preset": "cnn-small", "width": 1.0}
    return model


@pytest.fixture(scope="module")
def residual() -> nn.Module:
    return _trained_like(Residual())


EXAMPLE = torch.randn(1, 1, 12, 12, generator=torch.Generator().manual_seed(3))
META = {
    "class_names": [f"c{i}" for i in range(10)],
    "normalization": {"mean": [0.5], "std": [0.25]},
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["cnn", "residual"])
def test_round_trip(fmt: str, which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    model = request.getfixturevalue(which)
    result = export_model(model, fmt, tmp_path / "model", EXAMPLE, metadata=META)
    assert result.verified, result.warnings
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert Path(result.path).is_file() and result.size_bytes == Path(result.path).stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(result.path).name] + [Path(p).name for p in result.extra_files]
    )  # no temporary files left behind
    loaded = load_exported(result.path, model=model if fmt in WEIGHTS_ONLY else None)
    x = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(loaded(x), expected, atol=1e-4)
    assert torch.allclose(torch.as_tensor(loaded(x.numpy())), expected, atol=1e-4)
    meta = read_metadata(result.path)
    assert meta["format"] == fmt and meta["input_shape"] == [1, 12, 12]
    assert meta["class_names"] == META["class_names"]
    assert meta["normalization"] == META["normalization"]
    assert model.training is False and next(model.parameters()).device.type == "cpu"


def test_weights_only_files_need_the_architecture(cnn: nn.Module, tmp_path: Path) -> None:
    result = export_model(cnn, "state_dict", tmp_path / "w.pt", EXAMPLE, metadata=META)
    assert result.extra_files == [str(tmp_path / "w.json")]
    sidecar = read_metadata(result.path)
    assert sidecar["architecture"] == {"preset": "cnn-small", "width": 1.0}
    with pytest.raises(ExportError, match="architecture"):
        load_exported(result.path)
    with pytest.raises(ExportError, match="do not fit"):
        load_exported(result.path, model=Residual())


def test_onnx_dynamic_batch_metadata_and_ort_latency(cnn: nn.Module, tmp_path: Path) -> None:
    import onnx

    result = export_model(cnn, "onnx", tmp_path / "m.onnx", EXAMPLE, metadata=META)
    assert result.ort_latency_ms is not None and result.ort_latency_ms > 0
    assert not (tmp_path / "m.onnx.data").exists()
    proto = onnx.load(result.path)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 12, 12]
    props = {p.key: p.value for p in proto.metadata_props}
    assert "kdgui" in props and props["format"] == "onnx"
    loaded = load_exported(result.path)
    x = torch.randn(5, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(loaded(x), cnn(x), atol=1e-4)


def test_onnx_static_batch_and_opset(cnn: nn.Module, tmp_path: Path) -> None:
    import onnx

    params = {"dynamic_batch": False, "opset": 18}
    result = export_model(cnn, "onnx", tmp_path / "s.onnx", EXAMPLE, params=params)
    proto = onnx.load(result.path)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18


def test_pt2_accepts_other_batch_sizes(residual: nn.Module, tmp_path: Path) -> None:
    result = export_model(residual, "pt2", tmp_path / "r.pt2", EXAMPLE)
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(load_exported(result.path)(x), residual(x), atol=1e-4)


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_code_that_fixes_the_batch_falls_back_to_a_static_batch(fmt: str, tmp_path: Path) -> None:
    class FixedBatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(12, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.reshape(1, 12))

    model = FixedBatch().eval()
    result = export_model(model, fmt, tmp_path / "f", torch.randn(1, 3, 4))
    assert result.verified
    assert any("batch size is fixed to 1" in w for w in result.warnings)


def test_torchscript_reports_deprecation(cnn: nn.Module, tmp_path: Path) -> None:
    result = export_model(cnn, "torchscript", tmp_path / "m.ts", EXAMPLE)
    assert any("FutureWarning" in w and "deprecated" in w for w in result.warnings)


def test_a_model_in_training_mode_is_exported_in_eval_mode_and_left_training(
    tmp_path: Path,
) -> None:
    model = _trained_like(SmallCNN()).train()
    stats = model.features[1].running_mean.clone()
    result = export_model(model, "torchscript", tmp_path / "t.ts", EXAMPLE)
    assert result.verified and model.training and model.features[1].training
    assert torch.equal(model.features[1].running_mean, stats)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(load_exported(result.path)(EXAMPLE), model(EXAMPLE), atol=1e-4)


def test_torchscript_script_method(cnn: nn.Module, tmp_path: Path) -> None:
    scripted = export_model(
        cnn, "torchscript", tmp_path / "s.ts", EXAMPLE, params={"method": "script"}
    )
    assert scripted.verified


def test_real_samples_catch_a_trace_that_froze_a_branch(tmp_path: Path) -> None:
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x * 3

    example = torch.ones(1, 4)
    ok = export_model(Branchy(), "torchscript", tmp_path / "a.ts", example)
    assert ok.verified
    bad = export_model(
        Branchy(), "torchscript", tmp_path / "b.ts", example, samples=-torch.ones(2, 4)
    )
    assert not bad.verified and bad.max_abs_diff == pytest.approx(1.0)
    assert any("real samples" in w for w in bad.warnings)


def test_unwritable_folder_is_a_user_error(cnn: nn.Module, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(ExportError) as info:
        export_model(cnn, "onnx", blocker / "m.onnx", EXAMPLE)
    assert str(blocker) in info.value.what and info.value.fix


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder_is_a_user_error(cnn: nn.Module, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="not writable"):
            export_model(cnn, "state_dict", folder / "m.pt", EXAMPLE)
    finally:
        folder.chmod(0o700)


def _write_half_then_fail(path: object, *args: object, **kwargs: object) -> None:
    Path(str(path)).write_bytes(b"PK\x03\x04 half a file")
    raise OSError(28, "No space left on device")


def test_failure_half_way_leaves_no_file(
    cnn: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.onnx

    from kdgui.engine.export import state_dict as state_dict_module

    previous = tmp_path / "m.pt"
    previous.write_bytes(b"an older export")
    monkeypatch.setattr(
        state_dict_module.torch, "save", lambda obj, path: _write_half_then_fail(path)
    )
    with pytest.raises(ExportError, match="No space left"):
        export_model(cnn, "state_dict", previous, EXAMPLE)
    assert previous.read_bytes() == b"an older export"  # the old file survives untouched
    monkeypatch.undo()

    monkeypatch.setattr(
        torch.onnx.ONNXProgram, "save", lambda self, path, **kw: _write_half_then_fail(path)
    )
    with pytest.raises(ExportError):
        export_model(cnn, "onnx", tmp_path / "m.onnx", EXAMPLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_failed_verification_leaves_no_file(
    cnn: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kdgui.engine.export.pt2 import Pt2Exporter

    def broken(cls: type, path: Path, model: nn.Module | None = None) -> object:
        raise RuntimeError("cannot read it back")

    monkeypatch.setattr(Pt2Exporter, "load", classmethod(broken))
    with pytest.raises(RuntimeError):
        export_model(cnn, "pt2", tmp_path / "m.pt2", EXAMPLE)
    assert list(tmp_path.iterdir()) == []


def test_quantized_mlp_exports_where_it_can(tmp_path: Path) -> None:
    from torch.ao.quantization import quantize_dynamic

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    q = quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8)
    x = torch.randn(2, 16)
    assert compatible_formats(q) == ["state_dict", "safetensors", "onnx", "torchscript"]
    for fmt in ("state_dict", "safetensors", "torchscript"):
        result = export_model(q, fmt, tmp_path / f"q_{fmt}", x)
        assert result.verified and result.max_abs_diff <= result.tolerance
        # a bare Sequential records no architecture: the weight formats need the model
        assert result.needs_architecture == (fmt != "torchscript")
        loaded = load_exported(result.path, model=q if fmt != "torchscript" else None)
        with torch.no_grad():
            assert torch.equal(loaded(x), q(x))  # the same int8 kernels: exactly equal
    # int8 ONNX: the float twin quantized by ONNX Runtime, compared with the torch int8 model
    result = export_model(q, "onnx", tmp_path / "q_onnx", x)
    assert result.verified and result.max_abs_diff <= result.tolerance
    import onnx

    ops = {n.op_type for n in onnx.load(result.path).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops, ops
    with pytest.raises(ExportError) as info:
        export_model(q, "pt2", tmp_path / "q_pt2", x)
    assert "'0' (DynamicQuantizedLinear)" in info.value.what, info.value.what
    assert "torchscript" in info.value.fix and "ONNX Runtime" in info.value.fix
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [
        ".json", ".onnx", ".pt", ".safetensors", ".ts"]


@torch.library.custom_op("kdgui_test::double_it", mutates_args=())
def double_it(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@double_it.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def test_op_without_onnx_mapping_is_named(tmp_path: Path) -> None:
    class Custom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return double_it(x) + 1

    with pytest.raises(ExportError) as info:
        export_model(Custom(), "onnx", tmp_path / "c.onnx", torch.randn(2, 3))
    assert "kdgui_test.double_it" in info.value.what
    assert "pt2" in info.value.fix and "torchscript" in info.value.fix
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_bad_params_are_config_errors(cnn: nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tflite"):
        export_model(cnn, "tflite", tmp_path / "m", EXAMPLE)
    with pytest.raises(ConfigError, match="opset"):
        export_model(cnn, "onnx", tmp_path / "m", EXAMPLE, params={"opset": 5})
