"""Writing a layer table onto an ONNX graph's nodes, and reading it back (no torch needed).

Split from :mod:`kdgui.engine.netron_graph`, which makes the ONNX file from a torch model: this
module only matches nodes to layers and writes ``kdgui.*`` metadata and a readable
``doc_string`` on them, so an existing ONNX file (an ONNX Runtime int8 stage, a user's own
``.onnx``) is annotated without exporting anything. How nodes are matched to layers is described
in :mod:`kdgui.engine.netron_graph`.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

#: Prefix of every key this module writes into node and model metadata.
KEY = "kdgui"
#: Exporter metadata that only clutters the viewer (long, and full of local file paths).
_DROPPED_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")
#: Per-layer fields copied into the node metadata, in display order.
FIELDS = ("type", "sparsity", "removed_channels", "rank", "bits", "params", "nonzero", "macs",
          "out_shape")
#: Fields that say a layer was compressed (the others describe any layer).
COMPRESSION_FIELDS = ("removed_channels", "rank", "bits")


@dataclass
class AnnotatedGraph:
    """What :func:`~kdgui.engine.netron_graph.export_annotated` (or ``annotate_file``) wrote.

    ``nodes`` maps a layer name to the ONNX nodes annotated with it; ``unmatched`` lists layers
    with compression info that no node could be matched to (shown in the notes as well).
    """

    path: Path
    layers: list[dict[str, Any]]
    nodes: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


# -- mapping and writing -------------------------------------------------------------------------

@dataclass
class _Result:
    nodes: dict[str, list[str]]
    notes: list[str]
    unmatched: list[str]


def node_scopes(node: onnx.NodeProto) -> list[str]:
    """The module paths a node was exported from, outermost first (may be empty)."""
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = meta.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            parsed = ast.literal_eval(scopes)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list) and parsed:
            return [str(s) for s in parsed[:-1] if s]  # the last entry is the op itself
    namespace = meta.get("namespace")
    if namespace:
        parts = [p.split(":", 1)[0].strip() for p in namespace.split("/")]
        return [p for p in parts[:-1] if p]
    if node.name.startswith("/"):  # legacy exporter: /features/features.0/Conv
        return [p for p in node.name.split("/")[1:-1] if p]
    return []


def node_owners(node: onnx.NodeProto, initializers: set[str], known: set[str]) -> list[str]:
    """Layers that own ``node``, best first: those whose weights it reads, then its scopes."""
    owners: list[str] = []
    for name in node.input:
        if name not in initializers:
            continue
        owner = _initializer_owner(name, known)
        if owner and owner not in owners:
            owners.append(owner)
    for scope in reversed(node_scopes(node)):
        if scope in known and scope not in owners:
            owners.append(scope)
    return owners


def _initializer_owner(name: str, known: set[str]) -> str | None:
    """The longest known module path that ``name`` (``features.0.weight_quantized``) starts with."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in known:
            return prefix
    return None


def annotate_proto(
    proto: onnx.ModelProto,
    layers: list[dict[str, Any]],
    *,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    notes: list[str] | None = None,
    title: str = "",
    prune_state: str | None = None,
) -> _Result:
    """Write the layers' numbers onto ``proto``'s nodes (in place) and the notes on the model."""
    notes = list(notes or [])
    extra = dict(extra or {})
    rows = {str(r["name"]): r for r in layers if r.get("name")}
    known = set(rows) | set(extra)
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    nodes: dict[str, list[str]] = {}
    for index, node in enumerate(graph.node):
        _drop_metadata(node)
        owners = node_owners(node, initializers, known)
        primary = next((o for o in owners if o in rows and rows[o].get("params")), None)
        primary = primary or next((o for o in owners if o in rows), None)
        containers = [s for s in node_scopes(node) if s in extra]
        if primary is None and not containers:
            continue
        values: dict[str, Any] = {}
        if primary is not None:
            values.update({k: rows[primary].get(k) for k in FIELDS})
        for scope in containers:  # e.g. the rank of a factorised pair, on both of its halves
            values.update({k: v for k, v in extra[scope].items() if v is not None})
        layer = primary or containers[-1]
        if not node.name:
            node.name = f"{node.op_type}_{index}"
        _write_node(node, layer, values, containers)
        nodes.setdefault(layer, []).append(node.name)
        for scope in containers:
            if scope != layer:
                nodes.setdefault(scope, []).append(node.name)
    compressed = [n for n, r in rows.items() if any(r.get(k) is not None
                                                    for k in COMPRESSION_FIELDS)]
    compressed += [n for n in extra if n not in compressed]
    unmatched = [n for n in compressed if n not in nodes]
    if unmatched:
        notes.append(f"{len(unmatched)} compressed layer(s) have no node in the graph: "
                     + ", ".join(unmatched[:6]))
    _write_model(proto, notes, title, prune_state, len(nodes))
    return _Result(nodes, notes, unmatched)


def _drop_metadata(node: onnx.NodeProto) -> None:
    keep = [p for p in node.metadata_props if p.key not in _DROPPED_METADATA
            and not p.key.startswith(KEY + ".")]
    del node.metadata_props[:]
    node.metadata_props.extend(keep)


def _write_node(node: onnx.NodeProto, layer: str, values: Mapping[str, Any],
                containers: list[str]) -> None:
    entries = [(f"{KEY}.layer", layer)]
    blocks = [c for c in containers if c != layer]
    if blocks:
        entries.append((f"{KEY}.block", blocks[-1]))
    for key in FIELDS:
        value = values.get(key)
        if value is None:
            continue
        text = f"{value:.4f}" if key == "sparsity" else (
            json.dumps(value) if isinstance(value, (list, dict)) else str(value))
        entries.append((f"{KEY}.{key}", text))
    others = list(node.metadata_props)  # kdgui's keys first: Netron lists them in order
    del node.metadata_props[:]
    for key, value in entries:
        node.metadata_props.add(key=key, value=value)
    node.metadata_props.extend(others)
    node.doc_string = describe_layer(layer, values)


def describe_layer(layer: str, values: Mapping[str, Any]) -> str:
    """One readable line per fact, as Netron shows a node's description."""
    kind = values.get("type")
    lines = [f"kdgui layer {layer}" + (f" ({kind})" if kind else "")]
    sparsity = values.get("sparsity")
    if sparsity is not None:
        lines.append(f"sparsity: {100 * float(sparsity):.1f}% of weights are zero")
    removed = values.get("removed_channels")
    if removed is not None:
        count = len(removed) if isinstance(removed, list) else removed
        lines.append(f"removed channels: {count}")
    rank = values.get("rank")
    if rank is not None:
        lines.append(f"low-rank factorised, rank {rank}")
    bits = values.get("bits")
    if bits is not None:
        lines.append(f"weights quantized to {bits} bits")
    params, macs = values.get("params"), values.get("macs")
    if params is not None:
        lines.append(f"params: {int(params):,}" + (f", MACs: {int(macs):,}" if macs else ""))
    return "\n".join(lines)


def _write_model(proto: onnx.ModelProto, notes: list[str], title: str, prune_state: str | None,
                 count: int) -> None:
    meta = {p.key: p.value for p in proto.metadata_props if not p.key.startswith(KEY + ".")}
    meta[f"{KEY}.annotated_layers"] = str(count)
    meta[f"{KEY}.about"] = ("per-layer compression info is in each node's properties "
                            f"({KEY}.sparsity, {KEY}.removed_channels, {KEY}.rank, {KEY}.bits)")
    if prune_state:
        meta[f"{KEY}.prune_state"] = str(prune_state)
    if notes:
        meta[f"{KEY}.notes"] = "\n".join(notes)
    if title:
        meta[f"{KEY}.title"] = title
        proto.graph.doc_string = title
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)


#: Measured per-layer values (:mod:`kdgui.engine.netron_overlays`) and how a node describes them.
MEASURED = {"latency_ms": "latency: {:.3f} ms per batch", "quant_error":
            "quantization error: {:.4g} (relative L2 of the output vs the float layer)",
            "change": "change: {} (vs the model it is compared with)"}


def add_layer_values(path: str | Path, values: Mapping[str, Mapping[str, Any]], *,
                     about: str = "") -> int:
    """Add measured values (``{layer: {"latency_ms": ..}}``, keys of :data:`MEASURED`) to the
    nodes already annotated with each layer, in place; all earlier ones are replaced. Returns
    the number of nodes written."""
    proto = onnx.load(str(path))
    written = 0
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        layer = meta.get(f"{KEY}.layer")
        keys = {f"{KEY}.{k}" for k in MEASURED}
        kept = [p for p in node.metadata_props if p.key not in keys]
        lines = [line for line in node.doc_string.splitlines()
                 if not any(line.startswith(t.split(":")[0] + ":") for t in MEASURED.values())]
        found = dict(values.get(layer) or {}) if layer else {}
        del node.metadata_props[:]  # after kdgui's own keys, before the exporter's
        node.metadata_props.extend(p for p in kept if p.key.startswith(KEY + "."))
        for key, template in MEASURED.items():
            if key in found:
                value = found[key]
                text = f"{value:.6g}" if isinstance(value, float) else str(value)
                node.metadata_props.add(key=f"{KEY}.{key}", value=text)
                lines.append(template.format(found[key]))
        node.metadata_props.extend(p for p in kept if not p.key.startswith(KEY + "."))
        node.doc_string = "\n".join(lines)
        written += bool(found)
    meta = [p for p in proto.metadata_props if p.key != f"{KEY}.measured"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(meta)
    if about:
        proto.metadata_props.add(key=f"{KEY}.measured", value=about)
    onnx.save(proto, str(path))
    return written


def read_annotations(path: str | Path) -> dict[str, dict[str, str]]:
    """``{node name: {kdgui key: value}}`` of an annotated file (for tests and the CLI)."""
    proto = onnx.load(str(path))
    out: dict[str, dict[str, str]] = {}
    for node in proto.graph.node:
        found = {p.key[len(KEY) + 1:]: p.value for p in node.metadata_props
                 if p.key.startswith(KEY + ".")}
        if found:
            out[node.name] = found
    return out
