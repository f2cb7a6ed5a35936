"""safetensors: plain tensors and a string header, nothing that can execute code when loaded.

The format holds dense tensors only, so ``torch.ao`` quantized models, whose weights are packed
C++ objects, are refused with an error that names the formats that do hold them. Tensors that
share memory (tied weights) are written as copies, which safetensors requires; loading them back
into the architecture ties them again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.export.base import Exporter, LoadedModel, json_text, rebuild_with_weights
from kdgui.engine.export.failures import quantized_layers
from kdgui.engine.export.state_dict import needs_architecture

METADATA_KEY = "kdgui"


class SafetensorsExporter(Exporter):
    name = "safetensors"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        layers = quantized_layers(model)
        if layers:
            raise ExportError(
                f"safetensors holds plain tensors only, but the torch.ao quantized layer "
                f"{layers} keeps packed int8 weights",
                "Export this quantized model as torchscript or state_dict instead.",
            )
        tensors: dict[str, torch.Tensor] = {}
        for key, value in model.state_dict().items():
            if not isinstance(value, torch.Tensor) or value.is_quantized:
                raise ExportError(
                    f"safetensors holds plain tensors only, but the state_dict entry '{key}' is "
                    f"a {type(value).__name__ if not isinstance(value, torch.Tensor) else 'quantized tensor'}",
                    "Export this model as torchscript, pt2 or state_dict instead.",
                )
            tensors[key] = value.detach().cpu().contiguous().clone()
        save_file(tensors, str(path), metadata={"format": "pt", METADATA_KEY: json_text(metadata)})
        return []

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        if model is None:
            raise needs_architecture(path, "safetensors")
        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ExportError(
                f"{path} is not a readable safetensors file: {exc}",
                "Check that the file is complete and was written by safetensors.",
            ) from None
        net = rebuild_with_weights(model, state, path)
        return LoadedModel(cls.name, path, net, net, cls.read_metadata(path))

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        return json.loads(header[METADATA_KEY]) if METADATA_KEY in header else {}
