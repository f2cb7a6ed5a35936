"""What every exporter shares: the exporter interface, loaded files, metadata, comparisons.

An :class:`Exporter` only knows how to *write* its format to a given (temporary) path and how to
*load* such a file back; :func:`kdgui.engine.export.export_model` does the rest the same way for
every format (atomic writes, verification, errors), so a new format cannot forget a step.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

import kdgui
from kdgui.core.components.export import export_format
from kdgui.core.errors import ExportError

#: Float models: outputs of the reloaded file may differ by at most this, times max(1, max|y|).
FLOAT_TOLERANCE = 1e-4
#: ``torch.ao`` quantized models. A reload that runs the same int8 kernels matches exactly, but
#: another runtime may round the dynamically chosen activation scale differently, which moves an
#: output by about one step of the 8-bit grid: ~1/255 of the output range, hence 1e-2 relative.
QUANTIZED_TOLERANCE = 1e-2


def tolerance_for(reference: list[torch.Tensor], quantized: bool,
                  quantized_tolerance: float = QUANTIZED_TOLERANCE) -> float:
    """The allowed max-abs difference for these reference outputs (scaled by their magnitude)."""
    scale = max([1.0] + [float(t.abs().max()) for t in reference if t.numel()])
    return (quantized_tolerance if quantized else FLOAT_TOLERANCE) * scale


def flatten_outputs(value: Any) -> list[torch.Tensor]:
    """All tensors of a model output (tensor, tuple, list or dict), in order, as float CPU."""
    if isinstance(value, torch.Tensor):
        return [value.detach().cpu()]
    if isinstance(value, np.ndarray):
        return [torch.from_numpy(value)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in flatten_outputs(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in flatten_outputs(item)]
    if hasattr(value, "logits"):
        return flatten_outputs(value.logits)
    return []


def max_abs_diff(reference: list[torch.Tensor], other: list[torch.Tensor]) -> float:
    """Largest elementwise difference; ``inf`` when the outputs differ in number, shape or NaNs."""
    if len(reference) != len(other):
        return math.inf
    worst = 0.0
    for a, b in zip(reference, other, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            return math.inf
        if a.numel() == 0:
            continue
        diff = float((a.double() - b.double()).abs().max())
        if not math.isfinite(diff):
            return math.inf
        worst = max(worst, diff)
    return worst


class LoadedModel:
    """An exported file loaded back: call it on a tensor or NumPy array like the original model.

    Returns what the original returned (a tensor, or a tuple of tensors for several outputs).
    ``module`` is the underlying object (an ``nn.Module``, a ScriptModule or an onnxruntime
    session) for callers that need more than a forward pass.
    """

    def __init__(
        self, fmt: str, path: Path, fn: Callable[[torch.Tensor], Any], module: Any, metadata: dict
    ) -> None:
        self.format = fmt
        self.path = path
        self.module = module
        self.metadata = metadata
        self._fn = fn

    def __call__(self, x: torch.Tensor | np.ndarray) -> Any:
        tensor = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        with torch.no_grad():
            return self._fn(tensor)

    def __repr__(self) -> str:
        return f"LoadedModel(format={self.format!r}, path='{self.path}')"


class Exporter:
    """One file format. Subclasses set ``name`` and implement ``write`` and ``load``; the suffix and
    what the format can hold are declared with the exporter (kdgui.core.components.export)."""

    name: ClassVar[str] = ""
    #: Whether files of this format, as configured, accept a batch size other than the example's.
    dynamic_batch: bool = False
    #: The relative tolerance for an int8 model; a writer that changes runtimes may widen it.
    quantized_tolerance: float = QUANTIZED_TOLERANCE

    def __init__(self, params: BaseModel) -> None:
        self.params = params
        self.dynamic_batch = bool(getattr(params, "dynamic_batch", False))

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        """Write ``model`` to ``path`` (a temporary name); return warnings for the user."""
        raise NotImplementedError

    def sidecar(self, metadata: dict[str, Any]) -> dict[str, Any] | None:
        """JSON to write next to the file as ``<name>.json``, or None (the default: none)."""
        return None

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        """Load a file of this format; weight-only formats need ``model`` (the architecture)."""
        raise NotImplementedError

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        """The metadata stored with the file ({} when it has none)."""
        raise NotImplementedError

    def measure(self, loaded: LoadedModel, example: torch.Tensor) -> dict[str, Any]:
        """Format-specific numbers taken after verification (e.g. onnxruntime latency)."""
        return {}


def json_text(metadata: dict[str, Any]) -> str:
    """Metadata as JSON text; values JSON cannot hold are written as their ``str``."""
    return json.dumps(metadata, default=str, sort_keys=True)


def build_metadata(
    model: nn.Module, fmt: str, example: torch.Tensor, extra: dict[str, Any] | None
) -> dict[str, Any]:
    """What travels with every file: versions, input shape, architecture, and the caller's keys.

    The architecture spec is taken from ``model.kdgui_spec`` (set by the student builder) when
    present; callers add ``class_names``, ``normalization`` and the like through ``extra``.
    """
    meta: dict[str, Any] = {
        "producer": "kdgui",
        "kdgui_version": kdgui.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "format": fmt,
        "input_shape": list(example.shape[1:]),
        "architecture_class": f"{type(model).__module__}.{type(model).__qualname__}",
    }
    if export_format(fmt).weights_only:  # weights only: the metadata carries the rebuild recipe
        from kdgui.engine.models.rebuild import recipe_of

        recipe, why = recipe_of(model)
        if recipe is not None:
            meta["rebuild"] = recipe
        else:
            meta["rebuild_missing"] = why
    spec = getattr(model, "kdgui_spec", None)
    if spec is not None:
        if hasattr(spec, "model_dump"):
            meta["architecture"] = spec.model_dump(mode="json")
        elif isinstance(spec, (dict, list, str, int, float)):
            meta["architecture"] = spec
        else:
            meta["architecture"] = str(spec)
    meta.update(extra or {})
    return json.loads(json_text(meta))


def needs_architecture(path: Path, fmt: str, why: str = "") -> ExportError:
    """The error for loading a weights-only file that records no way to rebuild its model."""
    because = f" ({why})" if why else ""
    return ExportError(
        f"{path} holds only the weights ({fmt}) and no architecture it can be rebuilt "
        f"from{because}",
        "Pass model=<an instance of the architecture>, or export to pt2, onnx or torchscript "
        "for a self-contained file.",
    )


def rebuild_from_metadata(path: Path, state: dict[str, Any], meta: dict[str, Any],
                          fmt: str) -> nn.Module:
    """The model rebuilt from the recipe in the file's metadata, carrying ``state``."""
    from kdgui.core.errors import ModelLoadError
    from kdgui.engine.models.rebuild import rebuild

    recipe = meta.get("rebuild")
    if not isinstance(recipe, dict):
        raise needs_architecture(path, fmt, str(meta.get("rebuild_missing", "")))
    try:
        return rebuild(recipe, state, source=str(path))
    except ModelLoadError as exc:
        raise ExportError(f"{path} cannot be rebuilt: {exc.what}", exc.fix) from None


def rebuild_with_weights(model: nn.Module, state: dict[str, Any], path: Path) -> nn.Module:
    """A copy of ``model`` carrying the weights read from ``path``.

    The copy's float tensors are set to NaN before loading, so a tensor the file lacks (or that
    failed to load) shows up as NaN outputs in verification instead of silently keeping the
    original's value.
    """
    clone = copy.deepcopy(model).cpu()
    with torch.no_grad():
        for tensor in clone.state_dict(keep_vars=True).values():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                tensor.data.fill_(float("nan"))
    try:
        clone.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ExportError(
            f"the weights in {path} do not fit the architecture: {exc}",
            "Pass the model the file was exported from (same layers and shapes).",
        ) from None
    return clone.eval()
