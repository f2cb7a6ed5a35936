"""The Deep Compression file (``.kdc``): sparse relative indices and codebook indices, Huffman-coded.

Layout (all integers little-endian)::

    b"KDC1" | uint32 n | n bytes: zlib(JSON header) | payload

The header lists every state_dict entry with its byte range in the payload, the metadata every
export carries (architecture, rebuild recipe, input shape) and the size report. A weight of a
Linear/convolution layer holding at most 256 distinct non-zero values (a weight-shared layer) is
*coded*, as in Han et al. §4 and their Fig. 3: walking the flattened weight, each non-zero entry
is stored as (gap to the previous non-zero − 1, codebook index + 1); a gap longer than
2^index_bits is bridged by *filler* entries (gap 2^index_bits, code 0 = the value zero). The gap
stream and the code stream are each Huffman-coded (:mod:`.deepc_huffman`); the codebook is float32.
The index bits are chosen per layer as the width with the smallest coded size (the paper fixes 5
for fc and 8 for conv layers; the choice here is recorded per layer in the report). Every other
entry (biases, norms, a layer with more than 256 values) is stored raw in its dtype.
"""

from __future__ import annotations

import json
import lzma
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from kdgui.engine.export.deepc_huffman import Coded, coded_bits, decode, encode

MAGIC = b"KDC1"
MAX_CODEBOOK = 256
INDEX_BITS = range(1, 9)


@dataclass
class CodedTensor:
    """One coded weight: its codebook and the two Huffman-coded streams."""

    codebook: np.ndarray  # float32, K values
    index_bits: int
    entries: int
    fillers: int
    gaps: Coded
    codes: Coded


def _entries(flat: np.ndarray, codebook: np.ndarray, index_bits: int
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """(gap symbols, code symbols, fillers) of a flattened shared weight at ``index_bits``."""
    positions = np.flatnonzero(flat)
    codes = np.searchsorted(codebook, flat[positions]) + 1
    gaps = np.diff(np.concatenate([[-1], positions]))
    span = 1 << index_bits
    fillers = (gaps - 1) // span
    last = gaps - fillers * span
    n = int(fillers.sum()) + positions.size
    gap_syms = np.full(n, span - 1, dtype=np.int64)
    code_syms = np.zeros(n, dtype=np.int64)
    ends = np.cumsum(fillers + 1) - 1  # where each non-zero's own entry sits
    gap_syms[ends] = last - 1
    code_syms[ends] = codes
    return gap_syms, code_syms, int(fillers.sum())


def coded_size_bits(flat: np.ndarray, codebook: np.ndarray, index_bits: int) -> int:
    """Huffman payload + tables of a weight at ``index_bits`` (to choose the width)."""
    gaps, codes, _ = _entries(flat, codebook, index_bits)
    table = 2 * ((1 << index_bits) + codebook.size + 1)  # ≈ zlib-compressed length tables
    return (coded_bits(np.bincount(gaps, minlength=1 << index_bits))
            + coded_bits(np.bincount(codes, minlength=codebook.size + 1)) + table)


def shared_codebook(weight: np.ndarray) -> np.ndarray | None:
    """The sorted distinct non-zero values of a weight, or None when there are too many."""
    values = np.unique(weight[weight != 0])
    return values.astype(np.float32) if values.size <= MAX_CODEBOOK else None


def encode_weight(weight: np.ndarray, codebook: np.ndarray, index_bits: int | None
                  ) -> CodedTensor:
    """Code a weight-shared tensor; ``index_bits`` None: the width with the smallest size."""
    flat = np.ascontiguousarray(weight, dtype=np.float32).ravel()
    if index_bits is None:
        index_bits = min(INDEX_BITS, key=lambda b: coded_size_bits(flat, codebook, b))
    gaps, codes, fillers = _entries(flat, codebook, index_bits)
    return CodedTensor(codebook, index_bits, int(gaps.size), fillers,
                       encode(gaps, 1 << index_bits), encode(codes, codebook.size + 1))


def decode_weight(item: CodedTensor, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 weight of a coded tensor."""
    gaps, codes = decode(item.gaps), decode(item.codes)
    size = math.prod(shape)
    positions = np.cumsum(gaps + 1) - 1
    keep = codes > 0
    if positions.size and (positions[-1] >= size or codes.max() > item.codebook.size):
        raise ValueError("the coded weight does not fit its shape or codebook")
    flat = np.zeros(size, dtype=np.float32)
    flat[positions[keep]] = item.codebook[codes[keep] - 1]
    return flat.reshape(shape)


def best_fixed_width_bits(flat: np.ndarray, codebook: np.ndarray) -> tuple[int, int]:
    """``(bits, index_bits)`` of the smallest fixed-width storage over index widths 1..8:
    what pruning + sharing alone would take, before Huffman coding (the paper's middle stage)."""
    symbols_with_filler = codebook.size + 1
    best = None
    for b in INDEX_BITS:
        gaps, _, fillers = _entries(flat, codebook, b)
        symbols = symbols_with_filler if fillers else codebook.size
        code_bits = max(1, math.ceil(math.log2(max(symbols, 2))))
        bits = gaps.size * (b + code_bits) + 32 * codebook.size
        if best is None or bits < best[0]:
            best = (bits, b)
    assert best is not None
    return best


def general_purpose_bytes(item: CodedTensor, weight: np.ndarray) -> dict[str, int]:
    """zlib and lzma of the same streams (one byte per symbol), for the report's comparison."""
    gaps, codes, _ = _entries(np.ravel(weight).astype(np.float32), item.codebook, item.index_bits)
    streams = gaps.astype(np.uint8).tobytes() + codes.astype(np.uint8).tobytes()
    book = item.codebook.tobytes()
    return {"zlib_bytes": len(zlib.compress(streams, 9)) + len(book),
            "lzma_bytes": len(lzma.compress(streams, preset=9)) + len(book)}


def _coded_parts(item: CodedTensor) -> list[bytes]:
    return [item.codebook.astype("<f4").tobytes(), item.gaps.payload, item.codes.payload]


def pack(entries: list[dict[str, Any]], blobs: list[bytes], header: dict[str, Any]) -> bytes:
    """The file's bytes: magic, compressed header (with each entry's byte range), payload."""
    offset = 0
    for entry, blob in zip(entries, blobs, strict=True):
        entry["offset"], entry["length"] = offset, len(blob)
        offset += len(blob)
    text = zlib.compress(json.dumps({**header, "tensors": entries}, sort_keys=True,
                                    default=str).encode("utf-8"), 9)
    return MAGIC + struct.pack("<I", len(text)) + text + b"".join(blobs)


def coded_entry(name: str, shape: tuple[int, ...], dtype: str, item: CodedTensor
                ) -> tuple[dict[str, Any], bytes]:
    parts = _coded_parts(item)
    entry = {"name": name, "kind": "coded", "shape": list(shape), "dtype": dtype,
             "index_bits": item.index_bits, "codebook": int(item.codebook.size),
             "entries": item.entries, "fillers": item.fillers,
             "gap_bits": item.gaps.bits, "code_bits": item.codes.bits,
             # code tables: one length per symbol, in the zlib-compressed header (they are
             # mostly runs of equal small numbers, which zlib shrinks to a few bytes)
             "gap_lengths": item.gaps.lengths.tolist(),
             "code_lengths": item.codes.lengths.tolist(),
             "parts": [len(p) for p in parts]}
    return entry, b"".join(parts)


def raw_entry(name: str, array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    data = np.ascontiguousarray(array)
    return ({"name": name, "kind": "raw", "shape": list(data.shape), "dtype": data.dtype.str},
            data.tobytes())


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """``(header, payload offset)``; ValueError when the bytes are not a .kdc file."""
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("it does not start with the Deep Compression file signature KDC1")
    (n,) = struct.unpack("<I", data[4:8])
    try:
        header = json.loads(zlib.decompress(data[8:8 + n]).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"its header is damaged ({type(exc).__name__})") from None
    return header, 8 + n


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, name -> array)`` of a file's bytes; ValueError when it is not a .kdc file."""
    header, start = read_header(data)
    payload = memoryview(data)[start:]
    arrays: dict[str, np.ndarray] = {}
    for entry in header["tensors"]:
        blob = bytes(payload[entry["offset"]:entry["offset"] + entry["length"]])
        if len(blob) != entry["length"]:
            raise ValueError(f"the file ends inside the entry {entry['name']!r}")
        shape = tuple(entry["shape"])
        if entry["kind"] == "raw":
            arrays[entry["name"]] = np.frombuffer(blob, dtype=np.dtype(entry["dtype"])
                                                  ).reshape(shape).copy()
            continue
        sizes = np.cumsum([0, *entry["parts"]])
        book, gbits, cbits = (blob[sizes[i]:sizes[i + 1]] for i in range(3))
        k, span = entry["codebook"], 1 << entry["index_bits"]
        item = CodedTensor(
            np.frombuffer(book, dtype="<f4").astype(np.float32), entry["index_bits"],
            entry["entries"], entry["fillers"],
            Coded(np.asarray(entry["gap_lengths"], dtype=np.uint8)[:span], entry["entries"],
                  entry["gap_bits"], gbits),
            Coded(np.asarray(entry["code_lengths"], dtype=np.uint8)[:k + 1], entry["entries"],
                  entry["code_bits"], cbits))
        arrays[entry["name"]] = decode_weight(item, shape).astype(np.dtype(entry["dtype"]))
    return header, arrays


__all__ = [
    "MAGIC",
    "CodedTensor",
    "best_fixed_width_bits",
    "coded_entry",
    "decode_weight",
    "encode_weight",
    "general_purpose_bytes",
    "pack",
    "raw_entry",
    "read_header",
    "shared_codebook",
    "unpack",
]
