"""``torch.save(model.state_dict())`` plus a ``<name>.json`` sidecar with the metadata.

The weights are loaded back with ``weights_only=True``, which cannot execute code, so a state_dict
is safe to share; the price is that loading needs the architecture. The sidecar records what is
needed to rebuild it (the recipe of :mod:`kdgui.engine.models.rebuild`: the base architecture and
every layer compression changed, or the student spec) and to use it (input shape, class names,
normalization). Keep the two files together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.compress.quantize.ao_warnings import silence_torch_ao_deprecations
from kdgui.engine.export.base import (
    Exporter,
    LoadedModel,
    rebuild_from_metadata,
    rebuild_with_weights,
)

silence_torch_ao_deprecations()  # reloading an int8 state_dict rebuilds torch.ao tensors


class StateDictExporter(Exporter):
    name = "state_dict"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        torch.save(model.state_dict(), path)
        return []

    def sidecar(self, metadata: dict[str, Any]) -> dict[str, Any] | None:
        return metadata

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ExportError(
                f"{path} is not a readable state_dict file: {exc}",
                "Check that the file is complete and was written by torch.save(state_dict).",
            ) from None
        meta = cls.read_metadata(path)
        if model is None:
            net = rebuild_from_metadata(path, state, meta, "state_dict")
        else:
            net = rebuild_with_weights(model, state, path)
        return LoadedModel(cls.name, path, net, net, meta)

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        sidecar = Path(path).with_suffix(".json")
        if not sidecar.is_file():
            return {}
        return json.loads(sidecar.read_text(encoding="utf-8"))
