"""Two models side by side for Netron: both graphs annotated, their layer-by-layer diff, and which
nodes of each graph belong to a changed layer (so a viewer can colour them).

The diff is :func:`kdgui.engine.model_diff.diff_layers` on the two prepared layer tables (one
owner for what "changed" means, and :func:`~kdgui.engine.model_diff.change_kind` for how:
pruned, quantized, shared, decomposed, removed, added). The node names are those Netron gives
its node elements (``node-name-<ONNX node name>``), read back from the annotated files.

A side is named like ``kdgui diff`` names it, ``RUN:MODEL`` (``teacher``, ``student``, a stage
by name or index), or like ``kdgui netron`` does (a model file, run folder or stage folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdgui.core.errors import ConfigError
from kdgui.engine.model_diff import diff_layers
from kdgui.engine.netron_annotate import read_annotations
from kdgui.engine.netron_overlays import LayerOverlays, measure, write_overlays
from kdgui.engine.netron_sources import (
    ModelSource,
    PreparedModel,
    prepare,
    run_sources,
    source_for_path,
)


def layer_nodes(onnx_path: str | Path) -> dict[str, list[str]]:
    """``{layer: [ONNX node names]}`` of an annotated file."""
    out: dict[str, list[str]] = {}
    for node, keys in read_annotations(onnx_path).items():
        if keys.get("layer"):
            out.setdefault(keys["layer"], []).append(node)
    return out


@dataclass
class Measured:
    """One prepared model, its graph's nodes per layer, and its overlays (if measured)."""

    prepared: PreparedModel
    nodes: dict[str, list[str]]
    overlays: LayerOverlays | None = None

    @property
    def node_layer(self) -> dict[str, str]:
        return {node: layer for layer, nodes in self.nodes.items() for node in nodes}


@dataclass
class Comparison:
    """Two sides (A, B), the diff rows (one per layer name) and notes for the viewer."""

    a: Measured
    b: Measured
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def side(self, index: int) -> Measured:
        return self.a if index == 0 else self.b

    def highlights(self, index: int) -> dict[str, str]:
        """``{node name: change kind}`` of side ``index`` for every layer that is not the same."""
        side = self.side(index)
        return {node: row["kind"] for row in self.rows if row["kind"] != "same"
                for node in side.nodes.get(row["name"], [])}

    @property
    def params(self) -> tuple[int, int]:
        return (sum(int(r.get("params") or 0) for r in self.a.prepared.layers),
                sum(int(r.get("params") or 0) for r in self.b.prepared.layers))


def resolve_source(text: str | Path, **kwargs: Any) -> ModelSource:
    """``RUN:MODEL`` (teacher, student, a stage's name or index) or anything ``kdgui netron``
    opens (model file, run folder, stage folder)."""
    raw = str(text)
    folder, sep, name = raw.rpartition(":")
    if sep and folder and Path(folder).is_dir() and not Path(raw).exists():
        sources = run_sources(folder)
        for source in sources:
            if name in _names(source):
                return source
        names = [_names(s)[0] for s in sources]
        raise ConfigError(f"{folder} has no model named '{name}'",
                          f"Use one of: {', '.join(names) or 'none (the run holds no model)'}.")
    return source_for_path(raw, **kwargs)


def _names(source: ModelSource) -> list[str]:
    """What ``RUN:NAME`` may say for ``source``: ``teacher``, ``student``, or a stage's name
    (``prune:magnitude``), its method-less name (``prune``) or its index (``1``)."""
    if source.kind != "stage":
        return [source.kind]
    index, _, name = source.label.removeprefix("stage ").partition(": ")
    return [name, name.split(":")[0], index]


def prepare_measured(source: ModelSource, out_dir: str | Path, *, overlays: bool = False,
                     reference: PreparedModel | None = None) -> Measured:
    """Prepare ``source`` for Netron and, with ``overlays``, measure each layer's latency and
    quantization error and write them on its nodes (see :mod:`kdgui.engine.netron_overlays`)."""
    prepared = prepare(source, out_dir)
    measured = Measured(prepared, layer_nodes(prepared.onnx_path))
    if overlays:
        measured.overlays = measure(prepared, reference=reference)
        write_overlays(prepared.onnx_path, measured.overlays)
        prepared.notes.extend(measured.overlays.notes)
    return measured


def compare(a: ModelSource, b: ModelSource, out_dir: str | Path, *,
            overlays: bool = False) -> Comparison:
    """Prepare both sides (in ``out_dir/a`` and ``out_dir/b``) and diff their layer tables.

    With ``overlays``, both are measured; B's quantization error is taken against A when B is
    quantized and A is not (before vs after a quantization stage).
    """
    out = Path(out_dir)
    side_a = prepare_measured(a, out / "a", overlays=overlays)
    side_b = prepare_measured(b, out / "b", overlays=overlays, reference=side_a.prepared)
    notes = []
    for side in (side_a, side_b):
        if not side.prepared.layers:
            notes.append(f"{side.prepared.source.label} has no layer table (an ONNX or compiled "
                         "model): its layers are not compared")
    rows = diff_layers(side_a.prepared.layers, side_b.prepared.layers)
    changes = {r["name"]: r["kind"] for r in rows if r["kind"] != "same"}
    for side in (side_a, side_b):  # kdgui.change on the nodes, for a browser without colours
        write_overlays(side.prepared.onnx_path, side.overlays, changes)
    return Comparison(side_a, side_b, rows, notes)


__all__ = ["Comparison", "Measured", "compare", "layer_nodes", "prepare_measured",
           "resolve_source"]
