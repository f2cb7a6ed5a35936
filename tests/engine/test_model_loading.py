"""Loading models from files: every format's round trip, every bad file, and the trust rule."""

from __future__ import annotations

import os
import pickle
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from kdgui.core.config import ModelRef
from kdgui.core.errors import CompatibilityError, ModelLoadError, TrustRequired
from kdgui.core.presets import PRESETS
from kdgui.engine.models import (
    build_from_spec,
    check_compatibility,
    inspect_file,
    load_model,
)

SHAPE = (1, 8, 8)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_from_spec(PRESETS["cnn-tiny"].build(SHAPE, 10), SHAPE, 10).eval()


def _same_outputs(a: nn.Module, b: nn.Module, shape=SHAPE) -> None:
    x = torch.randn(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def _load_error(tmp_path: Path, name: str, content: bytes, **ref) -> ModelLoadError:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(path=str(path), **ref))
    err = info.value
    assert "\n" not in str(err) and err.what and err.fix
    assert err.source == str(path)
    return err


# -- round trips -------------------------------------------------------------------------------

def test_torchscript_round_trip_even_with_a_misleading_extension(tmp_path: Path) -> None:
    model = _tiny()
    path = tmp_path / "model.pth"
    torch.jit.save(torch.jit.script(model), str(path))
    loaded = load_model(ModelRef(path=str(path)))
    assert loaded.format == "torchscript"
    _same_outputs(model, loaded.module)


def test_pt2_round_trip_knows_its_input_shape(tmp_path: Path) -> None:
    model = _tiny()
    batch = torch.export.Dim("batch")
    ep = torch.export.export(model, (torch.randn(2, *SHAPE),), dynamic_shapes=({0: batch},))
    path = tmp_path / "model.pt2"
    torch.export.save(ep, str(path))
    loaded = load_model(ModelRef(path=str(path)))
    assert loaded.format == "pt2" and loaded.input_shape == SHAPE
    _same_outputs(model, loaded.module)
    check_compatibility(loaded.module, None, SHAPE, 10, 1)


def test_pt2_with_fixed_batch_runs_in_chunks_of_its_batch(tmp_path: Path) -> None:
    model = _tiny()
    ep = torch.export.export(model, (torch.randn(2, *SHAPE),))
    path = tmp_path / "fixed.pt2"
    torch.export.save(ep, str(path))
    loaded = load_model(ModelRef(path=str(path)))
    assert loaded.metadata["fixed_batch"] == 2
    # 5 samples: two full chunks and one padded chunk whose padding is dropped
    x = torch.randn(5, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x))
    assert check_compatibility(loaded.module, None, SHAPE, 10, 1) == {"teacher": (10,)}


def test_loaded_torchscript_and_pt2_take_the_frozen_teacher_calls(tmp_path: Path) -> None:
    """The calls a session makes on a teacher: .to().eval(), requires_grad_, parameters."""
    model = _tiny()
    ts, pt2 = tmp_path / "m.ts", tmp_path / "m.pt2"
    torch.jit.save(torch.jit.trace(model, torch.randn(2, *SHAPE)), str(ts))
    torch.export.save(torch.export.export(model, (torch.randn(2, *SHAPE),)), str(pt2))
    for path in (ts, pt2):
        module = load_model(ModelRef(path=str(path))).module
        same = module.to("cpu").eval().requires_grad_(False)
        assert same is module and not module.training
        params = list(module.parameters())
        assert sum(p.numel() for p in params) == sum(p.numel() for p in model.parameters())
        assert not any(p.requires_grad for p in params)
        module.train()  # a .pt2 program keeps its export mode instead of raising


def test_state_dict_with_torchvision_resnet18(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    model = resnet18(num_classes=10).eval()
    path = tmp_path / "resnet.bin"
    torch.save(model.state_dict(), str(path))
    loaded = load_model(ModelRef(path=str(path), arch="torchvision:resnet18", num_classes=10))
    assert loaded.format == "torch_save" and loaded.num_classes == 10
    _same_outputs(model, loaded.module, (3, 32, 32))
    # a mismatched head is named with both shapes and the class count to set
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(path=str(path), arch="torchvision:resnet18"))
    assert "fc.weight file [10, 512] vs model [1000, 512]" in info.value.what
    assert "set num_classes to 10" in info.value.fix


ARCH_FILE = """
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes=3, hidden=5):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))
"""


def test_state_dict_with_python_file_class_and_nested_checkpoint(tmp_path: Path) -> None:
    arch_py = tmp_path / "my_model.py"
    arch_py.write_text(ARCH_FILE)
    ns: dict = {}
    exec(ARCH_FILE, ns)
    model = ns["Net"](num_classes=10, hidden=7).eval()
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, str(path))
    ref = ModelRef(path=str(path), arch=f"{arch_py}:Net", arch_kwargs={"hidden": 7})
    loaded = load_model(ref, num_classes=10)
    _same_outputs(model, loaded.module)
    with pytest.raises(ModelLoadError) as info:
        load_model(ref.model_copy(update={"arch": f"{arch_py}:Nope"}), num_classes=10)
    assert "Use one of: Net" in info.value.fix


def test_safetensors_with_preset_and_arch_mismatch(tmp_path: Path) -> None:
    model = _tiny()
    path = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = load_model(ModelRef(path=str(path), arch="preset:cnn-tiny"), input_shape=SHAPE,
                        num_classes=10)
    assert loaded.format == "safetensors"
    _same_outputs(model, loaded.module)
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(path=str(path), arch="preset:cnn-small"), input_shape=SHAPE,
                   num_classes=10)
    assert "does not match the weights" in info.value.what
    assert "layers.0.weight file [8, 1, 3, 3] vs model [16, 1, 3, 3]" in info.value.what


def test_architecture_alone_and_unknown_names() -> None:
    loaded = load_model(ModelRef(arch="torchvision:resnet18", num_classes=4))
    assert loaded.module.fc.out_features == 4 and loaded.format == "architecture"
    with pytest.raises(ModelLoadError, match="Did you mean resnet18"):
        load_model(ModelRef(arch="torchvision:resnet19"))
    with pytest.raises(ModelLoadError, match="cannot understand"):
        load_model(ModelRef(arch="somewhere:else"))


def test_pretrained_offline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(arch="torchvision:resnet18", pretrained=True))
    assert "could not download the pretrained weights" in info.value.what
    assert "pretrained" in info.value.fix


# -- trust -------------------------------------------------------------------------------------

class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch_save", "raw_pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if how == "torch_save":
        torch.save({"model": _Evil(str(marker))}, str(path))
    else:
        path.write_bytes(pickle.dumps(_Evil(str(marker)), protocol=2))
    with pytest.raises(TrustRequired) as info:
        load_model(ModelRef(path=str(path)))
    assert info.value.what == "this file is a pickled Python object that can run code when loaded"
    assert "--trust" in info.value.fix
    with pytest.raises(TrustRequired):
        inspect_file(path)
    assert not marker.exists()


def test_pickled_module_loads_only_with_trust(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    path = tmp_path / "full.pt"
    torch.save(model, str(path))
    with pytest.raises(TrustRequired):
        load_model(ModelRef(path=str(path)))
    loaded = load_model(ModelRef(path=str(path), trust=True))
    assert loaded.format == "pickled_module"
    _same_outputs(model, loaded.module)


# -- bad files ---------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(ModelRef(path=str(tmp_path / "nope.pt")))


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in _load_error(tmp_path, "e.pt", b"").what


@pytest.mark.parametrize("kind", ["torch_save", "torchscript", "safetensors", "legacy"])
def test_truncated_files(tmp_path: Path, kind: str) -> None:
    model, full = _tiny(), tmp_path / "full"
    if kind == "torch_save":
        torch.save(model.state_dict(), str(full))
    elif kind == "torchscript":
        torch.jit.save(torch.jit.script(model), str(full))
    elif kind == "safetensors":
        save_file(model.state_dict(), str(full))
    else:
        torch.save(model.state_dict(), str(full), _use_new_zipfile_serialization=False)
    data = full.read_bytes()
    err = _load_error(tmp_path, "cut.pt", data[: len(data) // 2], arch="preset:cnn-tiny")
    assert "truncated" in err.what or "truncated" in err.fix


def test_random_bytes(tmp_path: Path) -> None:
    err = _load_error(tmp_path, "r.pt", bytes(range(256)) * 8 + os.urandom(100))
    assert "not a model format" in err.what


def test_text_file_named_pt(tmp_path: Path) -> None:
    err = _load_error(tmp_path, "page.pt", b"<html><body>404 Not Found</body></html>\n")
    assert "text file" in err.what and "<html>" in err.what


def test_zip_that_is_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(path=str(path)))
    assert "zip archive but not a PyTorch file" in info.value.what
    assert "readme.txt" in info.value.what


def test_state_dict_without_arch(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(_tiny().state_dict(), str(path))
    n = len(_tiny().state_dict())
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(path=str(path)))
    assert info.value.what == f"this file holds only weights (a state_dict with {n} tensors)"
    assert info.value.fix.startswith("Pass --arch")


def test_pickle_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], str(path))
    with pytest.raises(ModelLoadError, match="neither a model nor a state_dict"):
        load_model(ModelRef(path=str(path)))


def test_missing_demo_resources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import kdgui.engine.models.demo as demo

    monkeypatch.setattr(demo, "resource_path", lambda *parts: tmp_path.joinpath(*parts))
    with pytest.raises(ModelLoadError, match="demo teacher is missing"):
        load_model(ModelRef(path="demo"))


def test_resource_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kdgui.core.resources import resource_path

    (tmp_path / "demo_teacher").mkdir()
    monkeypatch.setenv("KDGUI_RESOURCES", str(tmp_path))
    assert resource_path("demo_teacher") == tmp_path / "demo_teacher"
    monkeypatch.delenv("KDGUI_RESOURCES")
    assert (resource_path("demo_teacher") / "spec.json").is_file()


# -- inspect -----------------------------------------------------------------------------------

def test_inspect_state_dict_with_and_without_arch(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(_tiny().state_dict(), str(path))
    info = inspect_file(path)
    assert info["format"] == "safetensors" and "architecture" in info["note"]
    assert {"name": "layers.0.weight", "shape": [8, 1, 3, 3], "dtype": "float32"} in info["tensors"]
    assert "layers" not in info
    full = inspect_file(path, arch="preset:cnn-tiny", num_classes=10, input_shape=SHAPE)
    assert full["params"] == sum(p.numel() for p in _tiny().parameters())
    first = full["layers"][0]
    assert {k: first[k] for k in ("name", "type", "params")} == {
        "name": "layers.0", "type": "Conv2d", "params": 72}
    if full.get("input_shape"):
        assert first["out_shape"][1] == 8  # a bias-free conv: a MAC per weight per position
        assert first["macs"] == 72 * first["out_shape"][2] * first["out_shape"][3]
    assert full["input_shape"] == [1, 8, 8] and full["spec"]["name"] == "cnn-tiny"


def test_inspect_demo_and_torchscript(tmp_path: Path) -> None:
    info = inspect_file("demo")
    assert info["input_shape"] == [1, 8, 8] and info["num_classes"] == 10
    assert info["params"] == sum(layer["params"] for layer in info["layers"])
    assert info["macs"] == sum(layer["macs"] or 0 for layer in info["layers"])
    assert info["layers"][0]["macs"] == 32 * 1 * 9 * 8 * 8  # conv 1→32, 3×3, on 8×8
    path = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(_tiny()), str(path))
    ts = inspect_file(path)
    assert ts["format"] == "torchscript" and ts["input_shape"] is None
    assert ts["params"] == sum(p.numel() for p in _tiny().parameters())
    assert ts["layers"][0] == {"name": "layers.0", "type": "Conv2d", "params": 72}


# -- bring your own model: ONNX teachers, feature maps, rebuild recipes, timm, Hugging Face -----

def _onnx_file(model: nn.Module, path: Path, batch: int | None) -> Path:
    """An ONNX file as a user writes one: dynamic batch, or fixed at ``batch``."""
    example = torch.randn(batch or 2, *SHAPE)
    dynamic = None if batch else ({0: torch.export.Dim("batch", min=1)},)
    torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                      dynamic_shapes=dynamic)
    return path


def test_onnx_teacher_runs_in_onnxruntime_and_knows_its_shape(tmp_path: Path) -> None:
    model = _tiny()
    loaded = load_model(ModelRef(path=str(_onnx_file(model, tmp_path / "t.onnx", None))))
    assert loaded.format == "onnx" and loaded.input_shape == SHAPE
    module = loaded.module.to("cpu").eval().requires_grad_(False)
    x = torch.randn(5, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), atol=1e-5, rtol=1e-4)
    # its initializers stand in for parameters (BatchNorm folded into the convolutions)
    count, eager = sum(p.numel() for p in module.parameters()), sum(
        p.numel() for p in model.parameters())
    assert 0.9 * eager <= count <= eager
    fixed = load_model(ModelRef(path=str(_onnx_file(model, tmp_path / "f.onnx", 3))))
    assert fixed.metadata["fixed_batch"] == 3
    with torch.no_grad():  # 5 samples through a batch-3 file: one full and one padded chunk
        torch.testing.assert_close(fixed.module(x), model(x), atol=1e-5, rtol=1e-4)
    info = inspect_file(tmp_path / "t.onnx")
    assert info["format"] == "onnx" and info["macs"] is None
    assert "Conv" in {layer["type"] for layer in info["layers"]}


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_feature_losses_refuse_a_teacher_without_feature_maps(tmp_path: Path, kind: str) -> None:
    from kdgui.core.config import DistillConfig
    from kdgui.engine.distill import Distiller

    model = _tiny()
    path = tmp_path / f"t.{kind}"
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(model), str(path))
    else:
        _onnx_file(model, path, None)
    teacher = load_model(ModelRef(path=str(path))).module
    with pytest.raises(CompatibilityError) as info:
        Distiller(teacher, _tiny(), DistillConfig(alpha=0.5, beta=0.3), SHAPE)
    title = "TorchScript" if kind == "torchscript" else "ONNX"
    assert f"which {'a' if kind == 'torchscript' else 'an'} {title} teacher cannot give" in (
        info.value.what)
    assert "--arch" in info.value.fix and "beta and gamma to 0" in info.value.fix
    # logit distillation works with the same teacher
    losses, logits = Distiller(teacher, _tiny(), DistillConfig(alpha=0.5), SHAPE)(
        torch.randn(4, *SHAPE), torch.arange(4))
    assert logits.shape == (4, 10) and torch.isfinite(losses["total"])


def _compressed_resnet(kind: str) -> nn.Module:
    """A torchvision resnet18 as load_model builds it, pruned / factorised / int8."""
    from kdgui.core.config import CompressionStep
    from kdgui.engine.compress import CompressionContext, run_pipeline

    torch.manual_seed(0)
    model = load_model(ModelRef(arch="torchvision:resnet18", num_classes=10)).module
    steps = {
        "pruned": [CompressionStep(kind="prune", method="structured", params={"ratio": 0.5})],
        "lowrank": [CompressionStep(kind="lowrank", method="svd",
                                    params={"layers": ["fc"], "rank": 4})],
        "int8": [CompressionStep(kind="prune", method="structured", params={"ratio": 0.25}),
                 CompressionStep(kind="quantize", method="dynamic-int8")],
    }[kind]
    ctx = CompressionContext(input_shape=(3, 32, 32))
    pipeline = run_pipeline(model, steps, ctx, None)
    while True:
        try:
            next(pipeline)
        except StopIteration as stop:
            return stop.value[0]


@pytest.mark.parametrize("kind", ["pruned", "lowrank", "int8"])
@pytest.mark.parametrize("fmt", ["state_dict", "safetensors"])
def test_compressed_weights_reload_without_arch(tmp_path: Path, kind: str, fmt: str) -> None:
    from kdgui.engine.export import export_model

    model = _compressed_resnet(kind).eval()
    result = export_model(model, fmt, tmp_path / "model", torch.randn(1, 3, 32, 32))
    assert result.verified and not result.needs_architecture
    x = torch.randn(2, 3, 32, 32)
    for ref in (ModelRef(path=result.path),  # no --arch: the recipe rebuilds it
                ModelRef(path=result.path, arch="torchvision:resnet18", num_classes=10)):
        back = load_model(ref)
        assert back.metadata["rebuilt"] and back.input_shape == (3, 32, 32)
        with torch.no_grad():
            assert torch.equal(back.module(x), model(x))
    info = inspect_file(result.path)
    assert info["num_classes"] == 10 and info["format"] == fmt.replace("state_dict", "torch_save")
    if kind != "int8":  # (packed int8 weights are not parameters)
        assert info["params"] == sum(p.numel() for p in model.parameters()) < 11_181_642


def test_packing_restores_int8_state_bit_for_bit() -> None:
    from torch.ao.quantization import quantize_dynamic

    from kdgui.engine.export.packing import pack_state, unpack_state

    mlp = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    state = quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8).state_dict()
    tensors, layout = pack_state(state)
    assert all(not t.is_quantized for t in tensors.values())
    back = unpack_state(tensors, json_roundtrip(layout))
    assert list(back) == list(state)
    weight, bias = back["0._packed_params._packed_params"]
    ref_weight, ref_bias = state["0._packed_params._packed_params"]
    assert torch.equal(weight.int_repr(), ref_weight.int_repr())
    assert weight.q_scale() == ref_weight.q_scale() and torch.equal(bias, ref_bias)


def json_roundtrip(value: object) -> object:
    import json

    return json.loads(json.dumps(value))


def test_timm_architecture_takes_local_weights_and_never_downloads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timm = pytest.importorskip("timm")

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("timm tried to download weights")

    monkeypatch.setattr("timm.models._builder.load_pretrained", no_download)
    model = timm.create_model("test_resnet", num_classes=10).eval()
    path = tmp_path / "timm.pth"
    torch.save(model.state_dict(), str(path))
    loaded = load_model(ModelRef(path=str(path), arch="timm:test_resnet", num_classes=10))
    _same_outputs(model, loaded.module, (3, 32, 32))
    with pytest.raises(ModelLoadError, match="timm has no model called 'resnet_18'"):
        load_model(ModelRef(arch="timm:resnet_18"))


def test_hugging_face_folder_as_teacher_and_as_student_family(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                                       depths=[1, 1], num_labels=10, image_size=32)
    hf = transformers.ResNetForImageClassification(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    teacher = load_model(ModelRef(path=str(tmp_path / "hf")))
    assert teacher.format == "hf_folder" and teacher.input_shape == (3, 32, 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(teacher.module(x), hf(pixel_values=x).logits)
    student = load_model(ModelRef(arch=f"hf:{tmp_path / 'hf'}"), num_classes=4)
    assert student.num_classes == 4
    with torch.no_grad():
        assert student.module(x).shape == (2, 4)
    assert inspect_file(tmp_path / "hf")["format"] == "hf_folder"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(config.to_json_string())
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(ModelRef(path=str(tmp_path / "empty")))
