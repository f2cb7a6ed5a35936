"""An ONNX file for *viewing*: the model's graph with what compression did written on each node.

Netron draws a graph but knows nothing of sparsity, removed channels, ranks or bit widths. This
module exports the model to ONNX and writes, on every node that belongs to a layer, the layer's
numbers from :func:`kdgui.engine.metrics.layer_table` (the same numbers as the reports) as
``metadata_props`` (``kdgui.sparsity``, ``kdgui.removed_channels``, ``kdgui.rank``,
``kdgui.bits``, …) and as a readable ``doc_string``; Netron shows both in the node's properties.

Mapping torch layers to ONNX nodes. The dynamo exporter (torch 2.14) writes each node's module
path in ``metadata_props["pkg.torch.onnx.name_scopes"]`` (e.g. ``['', 'features', 'features.0',
'conv2d']``) and in ``namespace``; its optimizer can fuse a layer into the next (Conv + BatchNorm
becomes one Conv whose scope is the BatchNorm's), so the weights a node reads (initializers named
``features.0.weight``) are consulted first. The legacy exporter and ONNX Runtime's quantizer
leave only node names (``/features/features.0/Conv``) and initializer names, which are the
fallbacks. Annotations set on containers (the ``nn.Sequential`` pair of a low-rank factorisation
carries ``kdgui_rank``) reach every node inside them.

Reading an ONNX graph and writing the numbers onto its nodes is :mod:`kdgui.engine.netron_annotate`
(no torch); this module makes the graph from a torch model and re-exports those names.

This file is never the deployable export (that is :mod:`kdgui.engine.export`): stack traces are
dropped from the metadata, and ``torch.ao`` int8 layers, which ONNX export cannot represent, are
shown as the float layers they came from, with their bit width written on them and a note saying
so.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.netron_annotate import (
    AnnotatedGraph,
    annotate_proto,
    describe_layer,
    node_owners,
    node_scopes,
    read_annotations,
)

#: The module attribute each compression field is read from (set by the compression methods).
_ATTRS = {"removed_channels": "kdgui_removed_channels", "rank": "kdgui_rank",
          "bits": "kdgui_bits"}


# -- what compression did, per module ------------------------------------------------------------

def container_annotations(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``kdgui_*`` attributes set on modules that have children (the layer table lists leaves).

    A low-rank factorisation replaces a layer by an ``nn.Sequential`` carrying ``kdgui_rank``;
    without this, the rank would be lost from the graph.
    """
    from kdgui.engine.metrics._modules import is_quantized_module

    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if not any(True for _ in module.children()) or is_quantized_module(module):
            continue  # leaves (int8 layers included: their packed weights are a child)
        found = {k: _plain(getattr(module, attr)) for k, attr in _ATTRS.items()
                 if getattr(module, attr, None) is not None}
        if found:
            out[name] = found
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- int8 models: the float graph they came from -------------------------------------------------

def float_view(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """``model`` itself, or for ``torch.ao`` int8 models a float copy ONNX export can represent.

    Quantized Linear/Conv layers become float layers holding the dequantized weights (with
    ``kdgui_bits`` kept), quant/dequant stubs become identities. Returns the notes to show.
    """
    from kdgui.engine.metrics._modules import is_quantized_module, packed_tensors, quantized_bits

    if not any(is_quantized_module(m) or _is_quant_stub(m) for m in model.modules()):
        return model, []
    clone = copy.deepcopy(model).cpu()
    replaced: list[str] = []
    for name, module in list(clone.named_modules()):
        if not name:
            continue
        new: nn.Module | None = None
        if _is_quant_stub(module):
            new = nn.Identity()
        elif is_quantized_module(module):
            new = _float_twin(module, packed_tensors(module))
            if new is None:
                raise ExportError(
                    f"the int8 layer '{name}' ({type(module).__name__}) has no float "
                    "equivalent to draw",
                    "View the stage before quantization instead (it has the same graph).",
                )
            bits = getattr(module, "kdgui_bits", None) or quantized_bits(module)
            new.kdgui_bits = bits
            replaced.append(name)
        if new is not None:
            parent_name, _, child = name.rpartition(".")
            parent = clone.get_submodule(parent_name) if parent_name else clone
            setattr(parent, child, new)
    notes = []
    if replaced:
        notes.append(
            f"{len(replaced)} int8 layer(s) ({', '.join(replaced[:4])}"
            f"{', …' if len(replaced) > 4 else ''}) cannot be written to ONNX as torch runs "
            "them; the graph shows them as float layers with their bit width in the node "
            "properties (kdgui.bits)")
    return clone.eval(), notes


def _is_quant_stub(module: nn.Module) -> bool:
    name = type(module).__name__
    return type(module).__module__.startswith("torch.ao") and name in (
        "QuantStub", "DeQuantStub", "Quantize", "DeQuantize")


def _float_twin(module: nn.Module, tensors: list[torch.Tensor]) -> nn.Module | None:
    """A float Linear/Conv with the dequantized weights of a ``torch.ao`` quantized layer."""
    if not tensors:
        return None
    weight = tensors[0].float()
    bias = tensors[1].float() if len(tensors) > 1 else None
    kind = type(module).__name__
    new: nn.Module
    if "Linear" in kind and weight.dim() == 2:
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    elif "Conv" in kind and weight.dim() in (3, 4, 5):
        conv = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}[weight.dim()]
        groups = getattr(module, "groups", 1)
        new = conv(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                   stride=module.stride, padding=module.padding, dilation=module.dilation,
                   groups=groups, bias=bias is not None)
    else:
        return None
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


# -- export --------------------------------------------------------------------------------------

def export_onnx(target: nn.Module | torch.export.ExportedProgram, input_shape: Sequence[int],
                path: Path) -> None:
    """Write ``target`` (a module or a ``torch.export`` program) to one ONNX file at ``path``.

    The dynamo exporter first (it keeps module paths); the legacy exporter if that fails. The
    exporters' progress lines go nowhere: this runs behind a window or a CLI that prints its own.
    """
    example = torch.zeros(1, *[int(s) for s in input_shape])
    errors: list[str] = []
    for dynamo in (True, False):
        if not dynamo and isinstance(target, torch.export.ExportedProgram):
            break
        sink = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                    contextlib.redirect_stderr(sink), torch.no_grad():
                warnings.simplefilter("ignore")
                if dynamo:
                    program = torch.onnx.export(target, (example,), dynamo=True,
                                                external_data=False, verbose=False)
                    program.save(str(path))
                else:
                    torch.onnx.export(target, (example,), str(path), dynamo=False)
            return
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            errors.append(f"{type(exc).__name__}: {first}")
    raise ExportError(
        "the model cannot be written to ONNX for viewing (" + "; ".join(errors) + ")",
        "Open an earlier stage of the run, or export the model to ONNX yourself and open the "
        ".onnx file (Netron shows it without kdgui's annotations).",
    )


def export_annotated(
    model: nn.Module | torch.export.ExportedProgram,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    layers: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    notes: Iterable[str] = (),
    title: str = "",
) -> AnnotatedGraph:
    """Export ``model`` to ``path`` as ONNX with each layer's compression info on its nodes.

    ``layers`` is the engine's layer table; when omitted it is computed here with
    :func:`~kdgui.engine.metrics.layer_table` (so pass the *compressed* model, whose modules carry
    the ``kdgui_*`` attributes). A saved stage passes its ``metrics.json`` table and its
    ``torch.export`` program instead. ``extra`` adds container-level annotations (computed from
    the model when it is a module).
    """
    target_path = Path(path)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    notes = list(notes)
    prune_state = None
    if isinstance(model, nn.Module):
        prune_state = getattr(model, "kdgui_prune_state", None)
        if layers is None:
            from kdgui.engine.metrics import layer_table

            layers = layer_table(model, tuple(input_shape))
        extra = {**container_annotations(model), **(extra or {})}
        model, float_notes = float_view(model)
        notes.extend(float_notes)
    layers = list(layers or [])
    export_onnx(model, input_shape, target_path)
    proto = onnx.load(str(target_path))
    result = annotate_proto(proto, layers, extra=extra, notes=notes, title=title,
                            prune_state=prune_state)
    onnx.save(proto, str(target_path))
    return AnnotatedGraph(target_path, layers, result.nodes, result.notes, result.unmatched)


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """An ONNX file's model, or a :class:`ModelLoadError` when it is not one (protobuf's
    ``DecodeError`` is not a message for people)."""
    from kdgui.core.errors import ModelLoadError

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # DecodeError, OSError, a truncated external-data reference
        raise ModelLoadError(
            f"the file is not a readable ONNX model ({type(exc).__name__})",
            "Check that it is a complete .onnx file, e.g. export it again", source=str(path),
        ) from None
    if not proto.graph.node:
        raise ModelLoadError("the ONNX file holds no graph (no nodes)",
                             "Check that it is a complete .onnx file, e.g. export it again",
                             source=str(path))
    return proto


def annotate_file(onnx_path: str | Path, out_path: str | Path, layers: list[dict[str, Any]], *,
                  notes: Iterable[str] = (), title: str = "") -> AnnotatedGraph:
    """Annotate an existing ONNX file (e.g. an ONNX Runtime int8 stage) into ``out_path``."""
    proto = read_onnx(onnx_path)
    result = annotate_proto(proto, layers, notes=list(notes), title=title)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    return AnnotatedGraph(Path(out_path), list(layers), result.nodes, result.notes,
                          result.unmatched)


__all__ = [
    "AnnotatedGraph",
    "annotate_file",
    "annotate_proto",
    "container_annotations",
    "describe_layer",
    "export_annotated",
    "export_onnx",
    "float_view",
    "node_owners",
    "node_scopes",
    "read_annotations",
]
