"""Canonical Huffman coding of small-alphabet symbol streams (numpy), for the Deep Compression file.

Why our own: the streams are codebook indices and index gaps (alphabets of at most 257 symbols),
and the file must store its code tables compactly; a canonical code is fully described by the
code *length* of each symbol (one byte each), so that is all the file keeps. Encoding is
vectorised; decoding walks the stream with a lookup table indexed by the next ``max_length``
bits, one table read per symbol.

Lengths are capped at :data:`MAX_LENGTH` bits (a very skewed stream could otherwise need codes
longer than a lookup table can hold): if the optimal code is longer, the counts are halved
(keeping every used symbol at ≥ 1) and the code rebuilt, the usual zlib-style remedy, which
costs a fraction of a percent of size in such rare streams.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

MAX_LENGTH = 20


def code_lengths(counts: np.ndarray, max_length: int = MAX_LENGTH) -> np.ndarray:
    """Huffman code length of each symbol (0 for symbols that never occur).

    A stream with a single distinct symbol gets a 1-bit code (a code of length 0 would not tell
    the decoder how many symbols there are; the count is stored, but a 1-bit code keeps the
    decoder uniform).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any():
        raise ValueError("symbol counts must be non-negative")
    while True:
        lengths = _lengths_once(counts)
        if lengths.max(initial=0) <= max_length:
            return lengths
        counts = np.where(counts > 0, np.maximum(counts >> 1, 1), 0)


def _lengths_once(counts: np.ndarray) -> np.ndarray:
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used[0]] = 1
        return lengths
    # heap of (count, tie-breaker, symbols in the subtree): merging deepens each symbol by one
    heap = [(int(counts[s]), int(s), [int(s)]) for s in used]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, t1, s1 = heapq.heappop(heap)
        c2, t2, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, min(t1, t2), s1 + s2))
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each symbol from its length (symbols ordered by length, then value)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    order = sorted((int(n), int(s)) for s, n in enumerate(lengths) if n > 0)
    code, previous = 0, 0
    for n, s in order:
        code <<= n - previous
        codes[s] = code
        code += 1
        previous = n
    return codes


@dataclass(frozen=True)
class Coded:
    """A Huffman-coded stream: per-symbol code lengths, the symbol count and the packed bits."""

    lengths: np.ndarray  # uint8, one per alphabet symbol
    count: int
    bits: int
    payload: bytes

    @property
    def table_bytes(self) -> int:
        return int(self.lengths.size)


def encode(symbols: np.ndarray, alphabet: int) -> Coded:
    """Huffman-code ``symbols`` (integers in ``0..alphabet-1``)."""
    data = np.asarray(symbols, dtype=np.int64).ravel()
    if data.size and (data.min() < 0 or data.max() >= alphabet):
        raise ValueError(f"symbols must lie in 0..{alphabet - 1}")
    counts = np.bincount(data, minlength=alphabet)
    lengths = code_lengths(counts)
    codes = canonical_codes(lengths)
    sym_len = lengths[data]
    total = int(sym_len.sum())
    if total == 0:
        return Coded(lengths.astype(np.uint8), int(data.size), 0, b"")
    owner = np.repeat(np.arange(data.size), sym_len)
    starts = np.cumsum(sym_len) - sym_len
    offset = np.arange(total) - starts[owner]
    shift = sym_len[owner] - 1 - offset
    bits = (codes[data][owner] >> shift) & 1
    return Coded(lengths.astype(np.uint8), int(data.size), total,
                 np.packbits(bits.astype(np.uint8)).tobytes())


def decode(coded: Coded) -> np.ndarray:
    """The symbols of ``coded``; a corrupt stream raises ValueError."""
    lengths = np.asarray(coded.lengths, dtype=np.int64)
    if coded.count == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(lengths.max(initial=0))
    if width == 0:
        raise ValueError("the stream has symbols but no codes")
    codes = canonical_codes(lengths)
    # lookup: the next `width` bits -> (symbol, code length)
    table_sym = np.full(1 << width, -1, dtype=np.int64)
    table_len = np.zeros(1 << width, dtype=np.int64)
    for s in np.flatnonzero(lengths):
        n = int(lengths[s])
        lo = int(codes[s]) << (width - n)
        table_sym[lo:lo + (1 << (width - n))] = s
        table_len[lo:lo + (1 << (width - n))] = n
    bits = np.unpackbits(np.frombuffer(coded.payload, dtype=np.uint8))[:coded.bits]
    padded = np.concatenate([bits, np.zeros(width, dtype=np.uint8)]).astype(np.int64)
    windows = np.zeros(coded.bits, dtype=np.int64)
    for j in range(width):  # the width-bit window starting at every bit position
        windows = (windows << 1) | padded[j:j + coded.bits]
    win, tsym, tlen = windows.tolist(), table_sym.tolist(), table_len.tolist()
    out = [0] * coded.count
    pos = 0
    for i in range(coded.count):
        if pos >= coded.bits:
            raise ValueError("the coded stream ends before its last symbol")
        w = win[pos]
        if tsym[w] < 0:
            raise ValueError("the coded stream holds a bit pattern that is no code")
        out[i] = tsym[w]
        pos += tlen[w]
    if pos != coded.bits:
        raise ValueError("the coded stream is longer than its symbols")
    return np.asarray(out, dtype=np.int64)


def coded_bits(counts: np.ndarray) -> int:
    """Bits a Huffman code of these symbol counts takes (without its table), without encoding."""
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * code_lengths(counts)).sum())


__all__ = ["MAX_LENGTH", "Coded", "canonical_codes", "code_lengths", "coded_bits", "decode",
           "encode"]
