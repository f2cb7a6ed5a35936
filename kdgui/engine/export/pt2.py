"""torch.export programs (``.pt2``): graph and weights in one file, no Python code needed to load.

The example input is traced with a batch of at least two, because torch.export specialises
dimensions of size 0 and 1 to constants: a batch-1 example would silently fix the batch size.
The example itself is not stored in the file (torch.export would keep it as ``sample_inputs``),
since it may be a real, private sample.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgui.engine.export.base import Exporter, LoadedModel, json_text
from kdgui.engine.export.failures import unsupported_error

EXTRA_FILE = "kdgui.json"


def tracing_input(example: torch.Tensor, dynamic: bool) -> torch.Tensor:
    """The example, repeated to a batch of 2 when the batch should stay symbolic."""
    if dynamic and example.shape[0] < 2:
        return example[:1].expand(2, *example.shape[1:]).contiguous()
    return example


def batch_dim_spec(dynamic: bool) -> tuple[dict[int, Any], ...] | None:
    """``dynamic_shapes`` making dim 0 of the single input a symbol named ``batch``."""
    return ({0: torch.export.Dim("batch", min=1)},) if dynamic else None


def export_program(
    model: nn.Module, example: torch.Tensor, dynamic: bool, strict: bool
) -> torch.export.ExportedProgram:
    """``torch.export.export`` with a symbolic batch; falls back to a fixed batch if refused."""
    x = tracing_input(example, dynamic)
    with contextlib.redirect_stdout(io.StringIO()):
        return torch.export.export(
            model, (x,), dynamic_shapes=batch_dim_spec(dynamic), strict=strict
        )


class Pt2Exporter(Exporter):
    name = "pt2"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        warnings: list[str] = []
        strict = bool(getattr(self.params, "strict", False))
        try:
            program = export_program(model, example, self.dynamic_batch, strict)
        except Exception as exc:
            if not self.dynamic_batch:
                raise unsupported_error(exc, model, self.name, "torch.export (pt2)") from None
            try:  # a model whose code fixes the batch size (e.g. x.view(1, -1)) can still go
                program = export_program(model, example, False, strict)
            except Exception:
                raise unsupported_error(exc, model, self.name, "torch.export (pt2)") from None
            self.dynamic_batch = False
            warnings.append(
                f"the batch size is fixed to {example.shape[0]}: the model's code does not "
                "allow a symbolic batch dimension"
            )
        program.example_inputs = None  # may be a real sample: keep it out of the file
        torch.export.save(program, str(path), extra_files={EXTRA_FILE: json_text(metadata)})
        return warnings

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        program = torch.export.load(str(path))
        module = program.module()
        return LoadedModel(cls.name, path, module, module, cls.read_metadata(path))

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        return _zip_extra(path, EXTRA_FILE)


def _zip_extra(path: Path, name: str) -> dict[str, Any]:
    """Read ``<archive>/extra/<name>`` from a PyTorch zip archive (pt2 and TorchScript alike)."""
    with zipfile.ZipFile(path) as archive:
        for entry in archive.namelist():
            if entry.endswith(f"/extra/{name}"):
                return json.loads(archive.read(entry).decode("utf-8") or "{}")
    return {}
