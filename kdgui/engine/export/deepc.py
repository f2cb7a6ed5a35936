"""The ``deepc`` exporter: a weight-shared (and pruned) model as a Deep Compression ``.kdc`` file.

The file (:mod:`.deepc_format`) holds weights only, like safetensors: loading rebuilds the model
from the recipe in its metadata (or the ``model`` given) and fills it with the decoded float
weights, which equal the exported ones bit for bit, so verification compares at float tolerance.

:func:`read_report` gives the sizes per coded layer: parameters, non-zeros, bits per weight
(fixed-width and Huffman), chosen index bits, and what zlib and lzma make of the same symbol
streams, the comparison the issue asks for. It is computed from the file itself, so it cannot
disagree with what the file holds; the staged table of ``summary.json``
(:mod:`kdgui.engine.compress.share.table`) is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdgui.core.errors import ExportError
from kdgui.engine.compress.prune.unstructured import PRUNABLE
from kdgui.engine.export.base import (
    Exporter,
    LoadedModel,
    rebuild_from_metadata,
    rebuild_with_weights,
)
from kdgui.engine.export.deepc_format import (
    best_fixed_width_bits,
    coded_entry,
    encode_weight,
    general_purpose_bytes,
    pack,
    raw_entry,
    read_header,
    shared_codebook,
    unpack,
)

#: Metadata keys the coded file leaves to the run folder (see ``write``).
_LEFT_OUT = ("kdgui_config",)


def _layer_weights(model: nn.Module) -> dict[str, str]:
    """state_dict key of each Linear/Conv weight -> the layer's name."""
    return {f"{n}.weight" if n else "weight": n for n, m in model.named_modules()
            if isinstance(m, PRUNABLE)}


class DeepcExporter(Exporter):
    name = "deepc"

    def write(
        self, model: nn.Module, path: Path, example: torch.Tensor, metadata: dict[str, Any]
    ) -> list[str]:
        state = model.state_dict()
        if any(not isinstance(v, torch.Tensor) or v.is_quantized for v in state.values()):
            raise ExportError("deepc holds float models only; this one has int8 (torch.ao) layers",
                              "Share weights with quantize:kmeans instead of an int8 method, or "
                              "export the int8 model as torchscript or state_dict.")
        layers = _layer_weights(model)
        entries, blobs, warnings = [], [], []
        for key, value in state.items():
            array = value.detach().cpu().numpy()
            codebook = shared_codebook(array) if key in layers and value.is_floating_point() \
                else None
            if codebook is None or codebook.size == 0:
                if key in layers:
                    warnings.append(
                        f"layer {layers[key]} is not weight-shared "
                        f"({len(np.unique(array))} distinct values, at most 256 are coded): "
                        "stored as float")
                entry, blob = raw_entry(key, array)
            else:
                item = encode_weight(array, codebook, self.params.index_bits)
                entry, blob = coded_entry(key, array.shape, array.dtype.str, item)
                entry["layer"] = layers[key]
            entries.append(entry)
            blobs.append(blob)
        # What reloading needs stays (rebuild recipe, shapes, classes, normalisation); the run's
        # whole config is in its run folder and would be ~5% of a LeNet-300-100 file.
        meta = {k: v for k, v in metadata.items() if k not in _LEFT_OUT}
        path.write_bytes(pack(entries, blobs, {"version": 1, "meta": meta}))
        if not any(e["kind"] == "coded" for e in entries):
            warnings.append("no layer is weight-shared: add a quantize:kmeans step before a "
                            "deepc export to get its compression")
        return warnings

    @classmethod
    def load(cls, path: Path, model: nn.Module | None = None) -> LoadedModel:
        header, arrays = _read(path)
        state = {k: torch.from_numpy(v) for k, v in arrays.items()}
        meta = header.get("meta", {})
        if model is None:
            net = rebuild_from_metadata(path, state, meta, "deepc")
        else:
            net = rebuild_with_weights(model, state, path)
        return LoadedModel(cls.name, path, net.eval(), net, meta)

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, Any]:
        return dict(_read(path, header_only=True)[0].get("meta", {}))


def _read(path: Path, header_only: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        data = Path(path).read_bytes()
        if header_only:
            return read_header(data)[0], {}
        return unpack(data)
    except (ValueError, OSError, KeyError, IndexError, TypeError) as exc:
        raise ExportError(f"{path} is not a readable Deep Compression (.kdc) file: {exc}",
                          "Export it again with --export deepc.") from None


def read_report(path: str | Path) -> dict[str, Any]:
    """Sizes of a .kdc file: a row per coded layer (bits per weight at fixed width and
    Huffman-coded, index bits, zlib and lzma on the same streams), raw bytes, file bytes.

    Computed from the file itself (decoded), so the report cannot disagree with what it holds.
    """
    header, arrays = _read(Path(path))
    rows = [_report_row(e, arrays[e["name"]]) for e in header["tensors"] if e["kind"] == "coded"]
    raw = sum(e["length"] for e in header["tensors"] if e["kind"] == "raw")
    return {"layers": rows, "raw_bytes": raw, "file_bytes": Path(path).stat().st_size,
            "params": int(sum(a.size for a in arrays.values()))}


def _report_row(entry: dict[str, Any], array: np.ndarray) -> dict[str, Any]:
    params = int(array.size)
    flat = np.ravel(array).astype(np.float32)
    item = encode_weight(flat, shared_codebook(flat), entry["index_bits"])
    fixed, fixed_index_bits = best_fixed_width_bits(flat, item.codebook)
    coded_bytes = int(entry["length"])
    return {
        "layer": entry.get("layer", entry["name"].removesuffix(".weight")),
        "params": params,
        "nonzero": int(np.count_nonzero(array)),
        "density": float(np.count_nonzero(array) / max(params, 1)),
        "weight_bits": int(np.ceil(np.log2(max(item.codebook.size, 2)))),
        "codebook": int(item.codebook.size),
        "index_bits": item.index_bits,
        "entries": item.entries,
        "fillers": item.fillers,
        "fixed_bytes": int(np.ceil(fixed / 8)),
        "fixed_index_bits": fixed_index_bits,
        "huffman_bytes": coded_bytes,
        "bits_per_weight_fixed": fixed / max(params, 1),
        "bits_per_weight": 8 * coded_bytes / max(params, 1),
        "huffman_bits_per_entry": (item.gaps.bits + item.codes.bits) / max(item.entries, 1),
        **general_purpose_bytes(item, flat),
    }


__all__ = ["DeepcExporter", "read_report"]
