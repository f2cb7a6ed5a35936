"""Bring your own model, end to end: every teacher format x {distill, compress, export, reload,
Netron}.

Each teacher file is made here the way a user makes one, with plain torch/torchvision calls (no
project code): TorchScript (scripted and traced), torch.export ``.pt2`` (dynamic and fixed batch),
a state_dict and a safetensors file with their architecture, a torchvision name, and ONNX. For
each one, through the engine's facade (``kdgui.engine.jobs``):

1. **run**: distil one short epoch into a small student, compress the student (structured
   pruning, low-rank, dynamic int8) and export it in every format; pt2 must refuse the int8
   model naming the route that works, and every other file must reload with the tool a user
   would use (``load_model`` without ``--arch``, ``torch.jit.load``, onnxruntime) and match;
2. **compress** the teacher file itself: an eager teacher is pruned and factorised and exported
   in every format (each reloaded and compared); a TorchScript/.pt2/ONNX teacher gets int8
   through ONNX Runtime, and a pruning request is refused before anything is written;
3. **Netron**: the teacher file (and the run's ONNX export) are annotated for the viewer.

Models stay small (torchvision resnet18 / mobilenet_v3_small with 10 classes at 3x32x32, an MLP
at 1x28x28) and data tiny (image folders of 30 images made with PIL), so each cell is one test
that runs in about a minute on two busy cores.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from kdgui.core.config import ExperimentConfig, ModelRef
from kdgui.core.events import JobFinished, RunFailed, RunFinished
from kdgui.engine import jobs

pytestmark = pytest.mark.slow

ALL_FORMATS = ["state_dict", "safetensors", "pt2", "onnx", "torchscript"]

MLP_SOURCE = '''
from torch import nn


class MLP(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(),
                                 nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, num_classes))

    def forward(self, x):
        return self.net(x)
'''


class MLP(nn.Module):
    """The same MLP as MLP_SOURCE (the test writes the file; this builds the weights)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(),
                                 nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _image_folder(root: Path, mode: str, size: int) -> Path:
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(3):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            pixels = rng.integers(0, 255, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every teacher file, made with plain torch/torchvision calls, and the two data folders."""
    root = tmp_path_factory.mktemp("byom")
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    mnv3 = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    mlp = MLP().eval()
    x3 = torch.randn(2, 3, 32, 32)
    batch = torch.export.Dim("batch", min=1)
    files: dict[str, Any] = {}

    torch.jit.save(torch.jit.script(mlp), str(root / "mlp_scripted.pt"))
    files["torchscript_scripted"] = {"path": root / "mlp_scripted.pt"}
    torch.jit.save(torch.jit.trace(mnv3, x3), str(root / "mnv3_traced.ts"))
    files["torchscript_traced"] = {"path": root / "mnv3_traced.ts"}
    torch.export.save(torch.export.export(mnv3, (x3,), dynamic_shapes=({0: batch},)),
                      str(root / "mnv3_dynamic.pt2"))
    files["pt2_dynamic"] = {"path": root / "mnv3_dynamic.pt2"}
    torch.export.save(torch.export.export(mnv3, (x3,)), str(root / "mnv3_fixed2.pt2"))
    files["pt2_fixed_batch"] = {"path": root / "mnv3_fixed2.pt2"}
    torch.save(resnet.state_dict(), str(root / "resnet18.pth"))
    files["state_dict_arch"] = {"path": root / "resnet18.pth", "arch": "torchvision:resnet18"}
    from safetensors.torch import save_file

    (root / "model.py").write_text(MLP_SOURCE)
    save_file(mlp.state_dict(), str(root / "mlp.safetensors"))
    files["safetensors_arch"] = {"path": root / "mlp.safetensors",
                                 "arch": f"{root / 'model.py'}:MLP"}
    files["torchvision_name"] = {"path": None, "arch": "torchvision:mobilenet_v3_small"}
    torch.onnx.export(mnv3, (x3,), str(root / "mnv3.onnx"), dynamo=True, external_data=False,
                      dynamic_shapes=({0: batch},))
    files["onnx"] = {"path": root / "mnv3.onnx"}
    rgb = _image_folder(root / "rgb", "RGB", 32)
    gray = _image_folder(root / "gray", "L", 28)
    for name, entry in files.items():
        entry["data"] = f"folder:{gray if 'scripted' in name or 'safetensors' in name else rgb}"
    return {"root": root, "files": files}


CELLS = ["torchscript_scripted", "torchscript_traced", "pt2_dynamic", "pt2_fixed_batch",
         "state_dict_arch", "safetensors_arch", "torchvision_name", "onnx"]
OPAQUE = {"torchscript_scripted", "torchscript_traced", "pt2_dynamic", "pt2_fixed_batch", "onnx"}


def _drain(events: Any) -> list[Any]:
    out = []
    for event in events:
        out.append(event)
        if isinstance(event, RunFailed):
            pytest.fail(f"{event.error.get('message')}\n{event.error.get('traceback', '')}")
    return out


def _teacher_ref(entry: dict[str, Any]) -> ModelRef:
    path = entry.get("path")
    return ModelRef(path=str(path) if path else None, arch=entry.get("arch"), num_classes=10)


def _sample(data: str) -> torch.Tensor:
    """Two samples: the batch size every file accepts (a fixed-batch .pt2 was exported at 2)."""
    torch.manual_seed(1)
    return torch.randn(2, 1, 28, 28) if "gray" in data else torch.randn(2, 3, 32, 32)


def _reload_all(exports: list[dict[str, Any]], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every ok export reloaded the way a user would, and its outputs on ``x``."""
    import onnxruntime as ort

    outs: dict[str, torch.Tensor] = {}
    for record in exports:
        if not record.get("ok"):
            continue
        path = record["path"]
        fmt = record["format"]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt in ("state_dict", "safetensors"):  # without --arch: the file says it all
                outs[fmt] = jobs.load_model(path).module(x)
            elif fmt == "torchscript":
                outs[fmt] = torch.jit.load(path)(x)
            elif fmt == "pt2":
                outs[fmt] = torch.export.load(path).module()(x)
            else:
                session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                name = session.get_inputs()[0].name
                outs[fmt] = torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    return outs


def _netron(path: Path, out: Path, **ref: Any) -> int:
    """Annotate a model file for Netron; the number of graph nodes drawn."""
    import onnx

    prepared = jobs.prepare_model(jobs.model_source_for_path(path, **ref), out)
    return len(onnx.load(str(prepared.onnx_path)).graph.node)


@pytest.mark.parametrize("cell", CELLS)
def test_teacher_format_distills_compresses_exports_and_reloads(
    made: dict[str, Any], cell: str, tmp_path: Path
) -> None:
    entry = made["files"][cell]
    data = entry["data"]
    x = _sample(data)

    # 1. run: distil one epoch, compress the student (prune + low-rank + int8), export all
    cfg = ExperimentConfig.model_validate({
        "name": cell, "data": {"spec": data, "val_fraction": 0.3},
        "teacher": _teacher_ref(entry).model_dump(),
        "student": {"preset": "cnn-small", "width": 0.5},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu", "log_every": 1},
        "compression": {"steps": [
            {"kind": "prune", "method": "structured", "params": {"ratio": 0.5}},
            {"kind": "lowrank", "method": "conv", "params": {"rank_fraction": 0.5}},
            {"kind": "quantize", "method": "dynamic-int8"}]},
        "export": {"formats": ALL_FORMATS},
    })
    events = _drain(jobs.run(cfg, tmp_path / "run"))
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert finished and not finished[0].stopped
    summary = finished[0].summary
    assert summary["teacher"]["params"] > 100_000  # the teacher's own weights were counted
    records = {r["format"]: r for r in summary["exports"]}
    for fmt in ("state_dict", "safetensors", "onnx", "torchscript"):
        assert records[fmt]["ok"] and records[fmt]["verified"], records[fmt]
    assert not records["pt2"]["ok"] and "onnx" in records["pt2"]["error"], records["pt2"]
    outs = _reload_all(summary["exports"], x)
    assert set(outs) == {"state_dict", "safetensors", "onnx", "torchscript"}
    # the same int8 kernels: the torch reloads agree exactly; ONNX Runtime's int8 within its
    # documented tolerance (kdgui.engine.export.int8_onnx.ORT_INT8_TOLERANCE)
    assert torch.equal(outs["state_dict"], outs["torchscript"])
    assert torch.equal(outs["safetensors"], outs["torchscript"])
    scale = max(1.0, float(outs["torchscript"].abs().max()))
    assert float((outs["onnx"] - outs["torchscript"]).abs().max()) <= 0.05 * scale
    assert _netron(Path(records["onnx"]["path"]), tmp_path / "netron_run") > 5

    # 2. compress the teacher file itself
    out = tmp_path / "compress"
    if cell in OPAQUE:
        refused = _drain_failure(jobs.compress(jobs.CompressRequest(
            model=str(entry["path"]), data=data, out_dir=out, prune="structured:0.5",
            formats=["onnx"])))
        assert "onnx-int8" in refused["fix"] and "exposes none" in refused["what"], refused
        assert not out.exists() or not any(out.iterdir())
        request = jobs.CompressRequest(model=str(entry["path"]), data=data, out_dir=out,
                                       quantize="onnx-int8", formats=["onnx"])
        wanted = {"onnx"}
    else:
        conv = "gray" not in data
        request = jobs.CompressRequest(
            model=str(entry["path"]) if entry["path"] else entry["arch"],
            arch=entry["arch"] if entry["path"] else None, num_classes=10, data=data,
            out_dir=out, prune="structured:0.5", lowrank=0.5,
            lowrank_method="conv" if conv else "svd", formats=ALL_FORMATS)
        wanted = set(ALL_FORMATS)
    result = next(e for e in _drain(jobs.compress(request)) if isinstance(e, JobFinished)).result
    exports = {r["format"]: r for r in result["exports"]}
    assert {f for f, r in exports.items() if r["ok"] and r.get("verified", True)} == wanted
    outs = _reload_all(result["exports"], x)
    assert set(outs) == wanted
    reference = outs.get("torchscript", outs["onnx"])
    for fmt, y in outs.items():
        assert y.shape == (2, 10)
        limit = 1e-4 * max(1.0, float(reference.abs().max()))
        assert float((y - reference).abs().max()) <= limit, (fmt, y, reference)
    if cell not in OPAQUE:  # pruning changed the architecture, and the weight files know it
        meta = json.loads((out / "model.json").read_text())
        assert meta["rebuild"]["layers"], "the recipe records the changed layers"

    # 3. Netron annotates the teacher file itself
    if entry["path"] is not None:
        shape = tuple(x.shape[1:])
        assert _netron(Path(entry["path"]), tmp_path / "netron_teacher", arch=entry.get("arch"),
                       num_classes=10, input_shape=shape) > 5


def _drain_failure(events: Any) -> dict[str, Any]:
    for event in events:
        if isinstance(event, RunFailed):
            return event.error
    pytest.fail("the request was not refused")
