"""Writing a TorchScript, torch.export or ONNX model (a :class:`FrozenTeacher`) to a file.

These models have no Python architecture, so the route to each format is specific:

* TorchScript -> ``.ts``: the archive itself (``torch.jit.save``); -> ONNX: PyTorch's
  TorchScript-based exporter (``dynamo=False``), the one that accepts ScriptModules; -> pt2:
  impossible (torch.export cannot read TorchScript).
* torch.export program -> pt2, ONNX, TorchScript: the program's module, re-exported or traced
  (a fixed batch size stays fixed).
* ONNX -> ONNX: the file, with KD Studio's metadata added; -> anything else: impossible.
* state_dict / safetensors: impossible for all three (no architecture to load the weights into).

Every refusal names the formats that work for the model at hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from kdgui.core.components.export import export_format
from kdgui.core.errors import ExportError
from kdgui.engine.export.base import Exporter, json_text
from kdgui.engine.models.frozen import FrozenTeacher

#: Formats each wrapped kind can be written to.
ROUTES = {"torchscript": ("torchscript", "onnx"), "pt2": ("pt2", "onnx", "torchscript"),
          "onnx": ("onnx",)}


def batch_example(model: FrozenTeacher, example: torch.Tensor) -> torch.Tensor:
    """The example at the program's fixed batch size (a fixed-batch file accepts no other)."""
    batch = model.fixed_batch
    if batch is None or example.shape[0] == batch:
        return example
    return example[:1].expand(batch, *example.shape[1:]).contiguous()


def write_opaque(model: FrozenTeacher, exporter: Exporter, path: Path, example: torch.Tensor,
                 metadata: dict[str, Any]) -> list[str]:
    """Write ``model`` with ``exporter``'s format, or an ExportError naming the routes."""
    fmt, kind, title = exporter.name, model.kind, model.kdgui_opaque
    if fmt not in ROUTES[kind]:
        why = ("has no architecture its weights could be loaded into"
               if export_format(fmt).weights_only else f"cannot be converted to {fmt}")
        raise ExportError(f"{_article(title)} {title} model {why}",
                          f"Export it as {' or '.join(ROUTES[kind])}; for weights files, give "
                          "the model as a state_dict or .safetensors with its architecture.")
    if kind == "onnx":
        shutil.copyfile(model.path, path)
        _add_onnx_metadata(path, metadata)
        return []
    if kind == "torchscript" and fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(model.inner, str(path),
                           _extra_files={"kdgui.json": json_text(metadata)})
        return []
    if kind == "torchscript":  # -> onnx
        dynamic = model.fixed_batch is None
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model.inner.eval(), (example,), str(path), dynamo=False, input_names=["input"],
                    dynamic_axes={"input": {0: "batch"}} if dynamic else None)
            except Exception as exc:
                raise ExportError(
                    f"the TorchScript model cannot be exported to ONNX: "
                    f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc}",
                    "Export it as torchscript.") from None
        _add_onnx_metadata(path, metadata)
        return ["ONNX written by PyTorch's TorchScript-based exporter (dynamo=False)"]
    return exporter.write(model.inner, path, example, metadata)  # a .pt2 program's module


def _article(title: str) -> str:
    return "an" if title[:1] in "AEIOU" else "a"


def _add_onnx_metadata(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if p.key not in metadata and p.key != "kdgui"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in {**metadata, "kdgui": json_text(metadata)}.items():
        entry = proto.metadata_props.add()
        entry.key = str(key)
        entry.value = value if isinstance(value, str) else json.dumps(value, default=str)
    onnx.save(proto, str(path))
