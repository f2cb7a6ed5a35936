"""The canonical Huffman coder of the Deep Compression file: round trips, optimality, damage."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from kdgui.engine.export.deepc_huffman import (
    Coded,
    canonical_codes,
    code_lengths,
    coded_bits,
    decode,
    encode,
)


@pytest.mark.parametrize("alphabet", [2, 3, 17, 33, 257])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_streams_round_trip(alphabet: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(alphabet, 0.3))
    symbols = rng.choice(alphabet, size=5000, p=probs)
    coded = encode(symbols, alphabet)
    np.testing.assert_array_equal(decode(coded), symbols)
    assert coded.bits == coded_bits(np.bincount(symbols, minlength=alphabet))
    assert len(coded.payload) == (coded.bits + 7) // 8


def test_a_one_symbol_stream_takes_one_bit_per_symbol() -> None:
    coded = encode(np.full(37, 4), 8)
    assert coded.bits == 37
    np.testing.assert_array_equal(decode(coded), np.full(37, 4))


def test_an_empty_stream_round_trips() -> None:
    coded = encode(np.zeros(0, dtype=np.int64), 5)
    assert coded.count == 0 and decode(coded).size == 0


def _optimal_cost(counts: list[int]) -> int:
    """Huffman's cost by the textbook merge (sum of merged weights)."""
    heap = [c for c in counts if c > 0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def test_lengths_are_optimal_and_the_code_is_prefix_free() -> None:
    counts = np.array([45, 13, 12, 16, 9, 5, 0, 1])
    lengths = code_lengths(counts)
    assert int((counts * lengths).sum()) == _optimal_cost(list(counts))
    assert lengths[6] == 0
    codes = canonical_codes(lengths)
    words = [format(int(codes[s]), f"0{int(lengths[s])}b") for s in np.flatnonzero(lengths)]
    for a in words:
        for b in words:
            assert a == b or not b.startswith(a)
    assert sum(2.0 ** -len(w) for w in words) == pytest.approx(1.0)  # complete (Kraft)


def test_lengths_are_capped_for_very_skewed_streams() -> None:
    counts = np.array([2 ** i for i in range(40)], dtype=np.int64)  # Fibonacci-like skew
    lengths = code_lengths(counts, max_length=12)
    assert lengths.max() <= 12 and (lengths > 0).all()
    symbols = np.repeat(np.arange(40), np.minimum(counts, 50))
    np.testing.assert_array_equal(decode(encode(symbols, 40)), symbols)


def test_out_of_range_symbols_and_damaged_streams_are_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.3"):
        encode(np.array([0, 4]), 4)
    coded = encode(np.array([0, 1, 2, 3, 3, 3]), 4)
    short = Coded(coded.lengths, coded.count + 5, coded.bits, coded.payload)
    with pytest.raises(ValueError):
        decode(short)
