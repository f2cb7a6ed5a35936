"""The export formats, declared once: what each writes, its options, and where it is implemented.

Which format to pick: ``pt2`` (torch.export) and ``onnx`` are self-contained and need no Python
code to load; ``torchscript`` is deprecated since PyTorch 2.14 but is the only self-contained
format for ``torch.ao`` quantized models; ``state_dict`` and ``safetensors`` hold weights only and
need the architecture to load (safetensors cannot run code when loaded and holds plain tensors
only, so not packed int8 weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from kdgui.core.errors import ConfigError
from kdgui.core.params import Params, param
from kdgui.core.registry import Component, exporters, register


@dataclass(frozen=True)
class ExportFormat:
    """The one table of export formats, a row per exporter, declared with it.

    ``suffix``: the file extension written (``RUN/export/model<suffix>``) and recognised when
    reloading; ``verify``: how a written file is checked before it is moved into place;
    ``holds_int8``: whether the format can carry a ``torch.ao`` dynamic-int8 model (packed
    weights) — the others need a float model; ``holds_static_int8``: also a static (torch.fx)
    int8 model, whose quantized activations only TorchScript and a state_dict keep;
    ``weights_only``: the file holds weights without the architecture, so reloading it needs the
    model (or KD Studio's metadata).
    """

    name: str
    suffix: str
    verify: str
    holds_int8: bool
    weights_only: bool = False
    holds_static_int8: bool = False


#: Format name → its row, filled by :func:`declare_format` (read it through the functions below).
FORMATS: dict[str, ExportFormat] = {}


def declare_format(
    name: str,
    params: type[BaseModel],
    impl: str,
    title: str,
    summary: str = "",
    *,
    suffix: str,
    verify: str,
    holds_int8: bool,
    weights_only: bool = False,
    holds_static_int8: bool = False,
) -> Component:
    """Register an exporter and its row of the format table in one declaration."""
    component = register("exporter", name, params, impl, title, summary)
    FORMATS[name] = ExportFormat(name, suffix, verify, holds_int8, weights_only,
                                 holds_static_int8)
    return component


def export_format(name: str) -> ExportFormat:
    """The table row of ``name``; an unknown name is a ConfigError listing the known ones."""
    exporters.get(name)
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"the exporter '{name}' was registered without its format (suffix, verification)",
            "Declare it with kdgui.core.components.export.declare_format.",
        ) from None


def export_formats() -> list[ExportFormat]:
    """Every declared format, in declaration order (what ``export.formats`` may name)."""
    return [FORMATS[c.name] for c in exporters if c.name in FORMATS]


def format_names() -> list[str]:
    return [f.name for f in export_formats()]


def int8_formats(*, static: bool = False) -> list[str]:
    """Formats that can hold a ``torch.ao`` dynamic-int8 model (``static``: a static one)."""
    return [f.name for f in export_formats() if (f.holds_static_int8 if static else f.holds_int8)]


def format_of_suffix(suffix: str) -> str | None:
    """The format whose files end in ``suffix`` (case-insensitive), if one does."""
    found = [f.name for f in export_formats() if f.suffix.lower() == suffix.lower()]
    return found[0] if found else None


class StateDictParams(Params):
    """No options: ``torch.save(model.state_dict())`` plus a JSON sidecar with the metadata."""


class SafetensorsParams(Params):
    """No options: ``safetensors.torch.save_file`` with the metadata in the file's header."""


class Pt2Params(Params):
    dynamic_batch: bool = param(
        True, "Accept any batch size when loaded (otherwise the example's batch size is fixed)."
    )
    strict: bool = param(
        False,
        "Trace with torch.export's strict mode (TorchDynamo), which refuses more Python "
        "constructs but checks more; non-strict traces the Python code as it runs.",
    )


class OnnxParams(Params):
    opset: int = param(
        20,
        "ONNX opset version: newer opsets have more operators, older runtimes need older ones.",
        ge=18,
        le=23,
        step=1,
    )
    dynamic_batch: bool = param(
        True, "Make the batch dimension symbolic so the file accepts any batch size."
    )
    optimize: bool = param(
        True, "Let the exporter fold constants and fuse simple patterns (smaller, faster file)."
    )


class TorchScriptParams(Params):
    method: Literal["trace", "script"] = param(
        "trace",
        "'trace' records the operations run on the example input (data-dependent branches are "
        "frozen); 'script' compiles the Python code (keeps branches, refuses more code).",
    )


class DeepcParams(Params):
    """Deep Compression's storage (Han et al. 2016 §4): relative sparse indices + codebook indices,
    both Huffman-coded."""

    index_bits: int | None = param(
        None, "Bits of the relative index (gap between non-zeros; longer gaps get filler "
        "zeros). Empty: per layer, the width that gives the smallest file (the paper: 5 for fc, "
        "8 for conv).", ge=1, le=8, step=1,
    )


_ENGINE = "kdgui.engine.export"

declare_format(
    "state_dict",
    StateDictParams,
    f"{_ENGINE}.state_dict:StateDictExporter",
    "PyTorch state_dict (.pt)",
    "Weights only, loaded without running code (weights_only); a JSON sidecar records the "
    "architecture spec, input shape, class names and normalization.",
    suffix=".pt",
    verify="reloaded with weights_only=True and rebuilt from the sidecar's recorded architecture; "
    "outputs compared with PyTorch's",
    holds_int8=True,
    weights_only=True,
    holds_static_int8=True,
)
declare_format(
    "safetensors",
    SafetensorsParams,
    f"{_ENGINE}.safetensors:SafetensorsExporter",
    "safetensors (.safetensors)",
    "Weights only in a format that cannot execute code when loaded; metadata in the header, "
    "including the recipe that rebuilds a pruned, factorised or int8 model. dynamic-int8 "
    "weights are stored as int8 values plus scales.",
    suffix=".safetensors",
    verify="rebuilt from the file alone (recorded architecture); outputs compared with PyTorch's",
    holds_int8=True,
    weights_only=True,
)
declare_format(
    "pt2",
    Pt2Params,
    f"{_ENGINE}.pt2:Pt2Exporter",
    "torch.export program (.pt2)",
    "Self-contained graph and weights, loaded with torch.export.load; PyTorch's recommended "
    "successor to TorchScript.",
    suffix=".pt2",
    verify="torch.export.load; outputs compared, also at a second batch size when dynamic",
    holds_int8=False,
)
declare_format(
    "onnx",
    OnnxParams,
    f"{_ENGINE}.onnx:OnnxExporter",
    "ONNX (.onnx)",
    "Runs in onnxruntime and many other runtimes; verified with onnx.checker and onnxruntime. "
    "A dynamic-int8 model becomes an int8 ONNX file through ONNX Runtime's quantize_dynamic.",
    suffix=".onnx",
    verify="onnx.checker, then onnxruntime outputs compared, also at a second batch size",
    holds_int8=True,
)
declare_format(
    "torchscript",
    TorchScriptParams,
    f"{_ENGINE}.torchscript:TorchScriptExporter",
    "TorchScript (.ts)",
    "Self-contained, deprecated since PyTorch 2.14 but the one self-contained format that "
    "holds torch.ao quantized models.",
    suffix=".ts",
    verify="torch.jit.load; outputs compared with PyTorch's",
    holds_int8=True,
    holds_static_int8=True,
)
declare_format(
    "deepc",
    DeepcParams,
    f"{_ENGINE}.deepc:DeepcExporter",
    "Deep Compression (.kdc)",
    "Weight-shared layers stored as relative sparse indices and codebook indices, Huffman-coded "
    "(Han et al. 2016); other tensors raw. Use after quantize:kmeans. Weights only: reloading "
    "rebuilds the model from the recorded architecture; the file reports bits per weight per "
    "layer and what zlib/lzma make of the same streams.",
    suffix=".kdc",
    verify="decoded and rebuilt from the file alone (recorded architecture); outputs compared "
    "with PyTorch's",
    holds_int8=False,
    weights_only=True,
)
