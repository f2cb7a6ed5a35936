"""The Deep Compression staged table: pruning → weight sharing → Huffman coding, size and accuracy.

Each row measures what the paper's Fig. 1 counts at that stage, from the run itself:

* **float**: the model before compression, 32 bits per parameter;
* **pruning**: 32 bits per *non-zero* parameter (the paper's "9×-13×" is this parameter ratio);
* **sharing**: the coded layers at fixed width (index bits + codebook-index bits per entry,
  codebook in float32) plus the uncoded tensors raw (from the ``.kdc`` file's report); only
  when a weight-sharing step ran (``bit_plan``, its mixed-precision plan, rides along);
* **coding**: the ``.kdc`` file's size on disk (Huffman-coded streams, header included).

Accuracy is measured on the run's validation split after each step (the coded file decodes to the
shared weights exactly, which its export verified). Beside each row: Han et al.'s figures for
LeNet-300-100 (ICLR 2016, Table 1 and Fig. 1), and the zlib / lzma sizes of the same symbol
streams for comparison with a general-purpose compressor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Han et al. 2016, LeNet-300-100 on MNIST: ratio after each stage, top-1 error before/after.
PAPER_LENET300 = {"pruning": 12.0, "sharing": 32.0, "coding": 40.0,
                  "error_before": 1.64, "error_after": 1.58}


def _step_kinds(steps: list[Any]) -> list[str]:
    """Each step's role: prune, share (quantize:kmeans), or other."""
    roles = []
    for step in steps:
        kind, method = getattr(step, "kind", ""), getattr(step, "method", "")
        roles.append("share" if (kind, method) == ("quantize", "kmeans") else str(kind))
    return roles


def _last_stage(stages: list[dict[str, Any]], roles: list[str], role: str) -> dict | None:
    found = None
    for stage, r in zip(stages[1:], roles, strict=False):
        if r == role:
            found = stage
    return found


def staged_table(steps: list[Any], stages: list[dict[str, Any]],
                 exports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The table for ``summary.json['deep_compression']``, or None without a sharing step and a
    deepc export (the table would have nothing to say)."""
    roles = _step_kinds(steps)
    shared = _last_stage(stages, roles, "share")
    coded = next((e for e in exports if e.get("format") == "deepc" and e.get("ok")), None)
    if not stages or (shared is None and coded is None):
        return None
    base = stages[0]
    float_bytes = 4 * int(base["params"])
    rows = [_row("float", float_bytes, float_bytes, base.get("accuracy"),
                 "32 bits per parameter")]
    pruned = _last_stage(stages, roles, "prune")
    if pruned is not None:
        rows.append(_row("pruning", 4 * int(pruned["nonzero_params"]), float_bytes,
                         pruned.get("accuracy"), "32 bits per non-zero parameter"))
    report = _report(coded)
    last = stages[-1]
    general: dict[str, int] = {}
    if report is not None:
        # A sharing row only when a sharing step ran and the file codes layers (a deepc export
        # of a model that was only pruned, or rounded by fake-quant, did no weight sharing).
        if report["layers"] and shared is not None:
            fixed = sum(r["fixed_bytes"] for r in report["layers"]) + report["raw_bytes"]
            rows.append(_row("sharing", fixed, float_bytes, (shared or last).get("accuracy"),
                             "fixed-width index + codebook bits, other tensors raw"))
        rows.append(_row("coding", int(coded["size_bytes"]), float_bytes, last.get("accuracy"),
                         "the .kdc file (Huffman-coded), verified on reload"
                         if coded.get("verified") else "the .kdc file (Huffman-coded)"))
        general = {
            name: sum(r[f"{name}_bytes"] for r in report["layers"]) + report["raw_bytes"]
            for name in ("zlib", "lzma")}
    elif shared is not None:
        rows.append(_row("sharing", None, float_bytes, shared.get("accuracy"),
                         "export with deepc to measure the coded size"))
    for row in rows:
        row["paper_ratio"] = PAPER_LENET300.get(row["stage"], 1.0 if row["stage"] == "float"
                                                else None)
    table = {"rows": rows, "layers": report["layers"] if report else [],
             "general_purpose_bytes": general, "paper": "Han et al. 2016, LeNet-300-100",
             "paper_figures": dict(PAPER_LENET300)}
    if shared is not None and shared.get("bit_plan"):  # mixed precision by sensitivity
        table["bit_plan"] = shared["bit_plan"]
    return table


def _row(stage: str, size: int | None, float_bytes: int, accuracy: float | None, counts: str
         ) -> dict[str, Any]:
    return {"stage": stage, "size_bytes": size,
            "ratio": (float_bytes / size) if size else None,
            "accuracy": accuracy, "counts": counts}


def _report(coded: dict[str, Any] | None) -> dict[str, Any] | None:
    if coded is None or not Path(str(coded.get("path", ""))).is_file():
        return None
    from kdgui.core.errors import ExportError
    from kdgui.engine.export.deepc import read_report

    try:
        return read_report(coded["path"])
    except ExportError:  # a file changed since its export: the table says less, the run ends
        return None


__all__ = ["PAPER_LENET300", "staged_table"]
