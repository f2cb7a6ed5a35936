"""TorchScript (``.ts``): deprecated in PyTorch 2.14, kept because it is the one self-contained
format that holds ``torch.ao`` quantized models (their packed weights are TorchScript classes).

PyTorch's deprecation FutureWarnings are passed on in :attr:`ExportResult.warnings` so the user
sees them in the export report rather than on a console they may not be watching. Traced files
do not store the example input (``_store_inputs=False``): it may be a real, private sample.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.export.base import Exporter, LoadedModel, json_text
from kdgui.engine.export.pt2 import _zip_extra

EXTRA_FILE = "kdgui.json"


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    """Deprecation and tracer warnings, each once, as plain text."""
    out: list[str] = []
    for item in caught:
        if issubclass(item.category, (FutureWarning, DeprecationWarning, torch.jit.TracerWarning)):
            text = f"{item.category.__name__}: {item.message}"
            if text not in out:
                out.append(text)
    return out


class TorchScriptExporter(Exporter):
    name = "torchscript"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        method = getattr(self.params, "method", "trace")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if method == "script":
                    compiled = torch.jit.script(model)
                else:
                    compiled = torch.jit.trace(
                        model, (example,), check_trace=False, _store_inputs=False
                    )
            except Exception as exc:
                other = "trace" if method == "script" else "script"
                raise ExportError(
                    f"torch.jit.{method} cannot compile this model: "
                    f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__}",
                    f"Try the torchscript method '{other}', or export to pt2 or onnx.",
                ) from None
            torch.jit.save(compiled, str(path), _extra_files={EXTRA_FILE: json_text(metadata)})
        return _messages(caught)

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        from kdgui.engine.models.script_load import load_script_module

        module = load_script_module(path)
        return LoadedModel(cls.name, path, module, module, cls.read_metadata(path))

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        return _zip_extra(path, EXTRA_FILE)
