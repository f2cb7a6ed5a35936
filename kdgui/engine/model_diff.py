"""Two models side by side, layer by layer (issue 17.3): teacher vs student, or a model before
vs after a compression stage.

Every run records each model it measured — the teacher, the student, the model after each
compression stage — as a stage event in ``metrics.jsonl`` with its per-layer table (name, type,
output shape, params, non-zeros, sparsity, rank, bits; :func:`kdgui.engine.metrics.layer_table`).
The diff reads those tables, so it needs no model file, no trust and no data: ``RUN`` (the last
model measured), ``RUN:student`` or ``RUN:prune`` name one. Layers are matched by module name,
which is exact for before/after a stage (compression keeps names; a low-rank layer's two
factors appear as new layers) and positional-by-name for teacher vs student.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdgui.core.errors import ConfigError
from kdgui.core.run_folders import read_event_dicts

#: What makes a layer "changed" between the two sides.
COMPARED = ("type", "out_shape", "params", "nonzero", "removed_channels", "rank", "bits")


def measured_models(run: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``{model name: layer rows}`` of every model a run measured, in measuring order (a name
    measured twice, e.g. after a resume, keeps its last table)."""
    events, _ = read_event_dicts(run)
    models: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event.get("event") == "stage" and event.get("layers"):
            models.pop(str(event["name"]), None)
            models[str(event["name"])] = list(event["layers"])
    return models


def model_layers(source: str) -> tuple[str, list[dict[str, Any]]]:
    """The label and layer rows of ``RUN`` or ``RUN:MODEL``."""
    folder, _, name = source.rpartition(":") if ":" in source else (source, "", "")
    if folder and not Path(folder).is_dir() and Path(source).is_dir():
        folder, name = source, ""  # a folder whose own name has a colon
    if not Path(folder).is_dir():
        raise ConfigError(f"'{folder}' is not a run folder",
                          "Give a run folder, optionally with :MODEL (e.g. runs/x:student).")
    models = measured_models(folder)
    if not models:
        raise ConfigError(f"{folder} has no measured models (no stage events in metrics.jsonl)",
                          "Diff runs that finished measuring at least one model.")
    if not name:
        name = list(models)[-1]
    if name not in models:
        raise ConfigError(f"{folder} has no model named '{name}'",
                          f"Use one of: {', '.join(models)}.")
    return f"{folder}:{name}", models[name]


#: Output key and layer-table key of each column the diff shows.
_SHOWN = (("type", "type"), ("shape", "out_shape"), ("params", "params"), ("nonzero", "nonzero"),
          ("sparsity", "sparsity"), ("bits", "bits"), ("rank", "rank"),
          ("removed_channels", "removed_channels"))


def _get(row: dict[str, Any] | None, key: str) -> Any:
    return None if row is None else row.get(key)


#: What happened to a layer, as the compare view colours it (``same`` is not highlighted).
KINDS = ("removed", "added", "decomposed", "quantized", "shared", "pruned", "changed", "same")


def change_kind(row: dict[str, Any]) -> str:
    """What a :func:`diff_layers` row says happened to its layer, from A to B.

    ``removed``/``added`` (one side only), ``decomposed`` (a rank appeared), ``quantized`` (bits
    appeared and the layer type changed, e.g. ``Linear`` → ``DynamicQuantizedLinear``),
    ``shared`` (bits appeared on the same float type: weight sharing to 2^bits values),
    ``pruned`` (channels removed by structured pruning, or as many parameters with fewer
    non-zeros), ``changed`` (anything else that differs, e.g. another type or a narrower layer
    in a student: fewer parameters alone do not say the layer was pruned), ``same``.
    """
    if row["status"] in ("only A", "only B"):
        return "removed" if row["status"] == "only A" else "added"
    changed = set(row["changed"])
    if not changed:
        return "same"
    if "rank" in changed and row["rank"][1] is not None:
        return "decomposed"
    if "bits" in changed and row["bits"][1] is not None:
        return "quantized" if "type" in changed else "shared"
    (pa, pb), (na, nb) = row["params"], row.get("nonzero") or [None, None]
    if "type" in changed:
        return "changed"
    if ("removed_channels" in changed and row["removed_channels"][1]) or (
            pa == pb and na is not None and nb is not None and nb < na):
        return "pruned"
    return "changed"


def diff_layers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One plain row per layer name, A's order first, then layers only B has.

    Keys: ``name``, ``status`` (``same``, ``changed``, ``only A``, ``only B``), ``changed``
    (the compared keys that differ), ``kind`` (:func:`change_kind`), and ``type``, ``shape``,
    ``params``, ``nonzero``, ``sparsity``, ``bits``, ``rank``, ``removed_channels`` as
    ``[A value, B value]`` pairs
    (None on the missing side).
    """
    by_b = {row["name"]: row for row in b}
    names = [row["name"] for row in a] + [n for n in by_b if n not in {r["name"] for r in a}]
    by_a = {row["name"]: row for row in a}
    rows = []
    for name in names:
        ra, rb = by_a.get(name), by_b.get(name)
        if ra is None or rb is None:
            status, changed = ("only B" if ra is None else "only A"), []
        else:
            changed = [k for k in COMPARED if ra.get(k) != rb.get(k)]
            status = "changed" if changed else "same"
        row = {"name": name, "status": status, "changed": changed,
               **{out: [_get(ra, key), _get(rb, key)] for out, key in _SHOWN}}
        row["kind"] = change_kind(row)
        rows.append(row)
    # A factorised layer is replaced by its factors (``fc`` -> ``fc.0``, ``fc.1``, with a rank):
    # both the layer that went and the factors that came are "decomposed".
    factors = [r for r in rows if r["kind"] == "added" and r["rank"][1] is not None]
    for row in rows:
        if row["kind"] == "removed" and any(f["name"].startswith(row["name"] + ".")
                                            for f in factors):
            row["kind"] = "decomposed"
            for factor in factors:
                if factor["name"].startswith(row["name"] + "."):
                    factor["kind"] = "decomposed"
    return rows


def diff_models(a: str, b: str) -> dict[str, Any]:
    """The diff of two measured models (``RUN[:MODEL]`` each) as plain data."""
    label_a, rows_a = model_layers(a)
    label_b, rows_b = model_layers(b)
    rows = diff_layers(rows_a, rows_b)
    return {"a": label_a, "b": label_b, "rows": rows,
            "params": [sum(r["params"] for r in rows_a), sum(r["params"] for r in rows_b)],
            "changed": sum(r["status"] != "same" for r in rows)}


__all__ = ["COMPARED", "KINDS", "change_kind", "diff_layers", "diff_models", "measured_models", "model_layers"]
