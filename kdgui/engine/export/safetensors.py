"""safetensors: plain tensors and a string header, nothing that can execute code when loaded.

The format holds dense tensors only, so a ``torch.ao`` dynamic-int8 model's packed weights are
stored as int8 values plus scales and zero points with a JSON layout in the header
(:mod:`.packing`), which restores them exactly. Tensors that share memory (tied weights) are
written as copies, which safetensors requires; loading them back into the architecture ties them
again. The header also carries the metadata, including the recipe that rebuilds a pruned,
factorised or quantized architecture (:mod:`kdgui.engine.models.rebuild`).
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
from kdgui.engine.export.base import (
    Exporter,
    LoadedModel,
    json_text,
    rebuild_from_metadata,
    rebuild_with_weights,
)
from kdgui.engine.export.packing import LAYOUT_KEY, needs_packing, pack_state, unpack_state

METADATA_KEY = "kdgui"


class SafetensorsExporter(Exporter):
    name = "safetensors"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        state = model.state_dict()
        header = {"format": "pt", METADATA_KEY: json_text(metadata)}
        if needs_packing(state):  # int8: values, scales and zero points as plain tensors
            try:
                tensors, layout = pack_state(state)
            except TypeError as exc:
                raise ExportError(f"safetensors cannot hold this model: {exc}",
                                  "Export it as torchscript or state_dict instead.") from None
            header[LAYOUT_KEY] = json.dumps(layout)
        else:
            tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
        save_file(tensors, str(path), metadata=header)
        return []

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        state = read_state(path)
        meta = cls.read_metadata(path)
        if model is None:
            net = rebuild_from_metadata(path, state, meta, "safetensors")
        else:
            net = rebuild_with_weights(model, state, path)
        return LoadedModel(cls.name, path, net, net, meta)

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        return json.loads(header[METADATA_KEY]) if METADATA_KEY in header else {}


def read_state(path: Path) -> dict[str, Any]:
    """The state_dict in a safetensors file, int8 entries reassembled from their layout."""
    try:
        tensors = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as exc:
        raise ExportError(
            f"{path} is not a readable safetensors file: {exc}",
            "Check that the file is complete and was written by safetensors.",
        ) from None
    if LAYOUT_KEY in header:
        return unpack_state(tensors, json.loads(header[LAYOUT_KEY]))
    return dict(tensors)
