"""Turning an exporter's crash into an :class:`ExportError` that names the culprit and the way out.

torch.export and the ONNX translator raise long multi-step reports; users need one line: which
operator (or which layer) the format cannot represent, and which formats can hold this model.
"""

from __future__ import annotations

import re

from torch import nn

from kdgui.core.components.export import format_names, int8_formats
from kdgui.core.errors import ExportError
from kdgui.engine.metrics._modules import is_quantized_module

_PATTERNS = (
    # ONNX translation: "No ONNX function found for <OpOverload(op='aten.foo', overload='default')>"
    re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'"),
    # torch.export meeting a TorchBind object (packed quantized weights, custom C++ classes)
    re.compile(r"torch\.classes\.(\w+\.\w+)"),
    # An FX node the translator choked on: "call_function[target=torch.ops.aten.foo.default]"
    re.compile(r"call_function\[target=(?:torch\.ops\.)?([\w.]+)\]"),
    # Kernels missing for a backend: "Could not run 'quantized::linear_dynamic' with arguments"
    re.compile(r"Could not run '([\w:.]+)'"),
    re.compile(r"[Uu]nsupported (?:operator|op|node)s?:?\s*'?([\w:.]+)"),
)


def compatible_formats(model: nn.Module) -> list[str]:
    """The formats this model can be written to, as far as can be told without trying.

    ``torch.ao`` quantized layers keep packed int8 weights that torch.export (hence pt2) cannot
    hold. Dynamic-int8 layers go to the formats declared ``holds_int8`` (safetensors as int8
    values plus scales, ONNX through ONNX Runtime's quantizer); static (torch.fx) int8 models only
    to state_dict and TorchScript. Everything else is attempted in every format, and a failure is
    reported by :func:`unsupported_error` when it happens.
    """
    quantized = [m for m in model.modules() if is_quantized_module(m)]
    if not quantized:
        return format_names()
    if all(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in quantized):
        return int8_formats()
    return int8_formats(static=True)


def culprit(exc: BaseException, model: nn.Module) -> str:
    """A short name for what could not be exported: an operator, a C++ class or a layer."""
    text = "\n".join(str(e) for e in _chain(exc))
    layers = quantized_layers(model)
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            found = match.group(1)
            if found.startswith("quantized") and layers:
                return f"the torch.ao quantized layer {layers} (packed weights: {found})"
            return f"the operator {found}"
    if layers:
        return f"the torch.ao quantized layer {layers}"
    return f"an unsupported construct ({type(exc).__name__})"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def detail(exc: BaseException) -> str:
    """One informative line of an exporter's report (its exception summary when it has one)."""
    text = _ANSI.sub("", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("## Exception summary") and i + 1 < len(lines):
            return lines[i + 1][:240]
    return (lines[0] if lines else type(exc).__name__)[:240]


def quantized_layers(model: nn.Module) -> str:
    """``'fc1' (DynamicQuantizedLinear)`` for the first quantized layer, plus how many more."""
    found = [(n, m) for n, m in model.named_modules() if is_quantized_module(m)]
    if not found:
        return ""
    name, module = found[0]
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return f"'{name or type(module).__name__}' ({module._get_name()}){more}"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _route(fmt: str) -> str:
    return "onnx (int8 through ONNX Runtime's quantizer)" if fmt == "onnx" else fmt


def unsupported_error(exc: BaseException, model: nn.Module, fmt: str, title: str) -> ExportError:
    """An ExportError naming what ``fmt`` cannot represent and the formats that can hold it."""
    others = [f for f in compatible_formats(model) if f != fmt]
    if "quantized" in culprit(exc, model):
        others = [f for f in others if f in int8_formats()]
    return ExportError(
        f"cannot export to {title}: {culprit(exc, model)} has no {title} equivalent "
        f"({detail(exc)})",
        f"Export to {', '.join(_route(f) for f in others) or 'another format'} instead, "
        "or replace that layer with standard PyTorch layers.",
    )
