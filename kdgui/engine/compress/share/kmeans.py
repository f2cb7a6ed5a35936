"""One-dimensional k-means on a layer's non-zero weights, as Deep Compression clusters them.

Why our own and not scikit-learn's: the data is one-dimensional, so assignment is a binary search
of each weight among the midpoints between sorted centroids (O(n log k), no n×k distance matrix),
and the paper's *linear* initialisation (centroids evenly spaced between the smallest and the
largest weight) is not one of scikit-learn's choices. Han et al. compared linear, density
(quantile) and random (Forgy) initialisation and found linear best, because it keeps a few
centroids on the rare large weights that matter most; all three are offered.

Pruned weights (exact zeros) are left out of the clustering and stay zero: the returned index of
a pruned weight is -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Init = Literal["linear", "density", "random"]

#: Weights per layer at most 2^8 clusters: the codebook index of the coded file is a byte.
MAX_BITS = 8
MIN_BITS = 1


@dataclass(frozen=True)
class Clustering:
    """A layer's codebook and the cluster of each weight (-1 where the weight is pruned)."""

    centroids: np.ndarray  # float32, sorted ascending, k values
    index: np.ndarray  # int64, the weight's shape, -1 for a pruned weight

    @property
    def clusters(self) -> int:
        return int(self.centroids.size)

    def weights(self) -> np.ndarray:
        """The shared weights: ``centroids[index]``, zero where pruned."""
        table = np.concatenate([[0.0], self.centroids]).astype(np.float32)
        return table[self.index + 1]


def cluster_count(bits: int, distinct: int) -> int:
    """Clusters for ``bits``: 2^bits, but never more than the distinct values to cluster."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits = {bits} is outside {MIN_BITS}..{MAX_BITS}")
    return max(1, min(2 ** bits, distinct))


def initial_centroids(values: np.ndarray, k: int, init: Init, seed: int = 0) -> np.ndarray:
    """Starting centroids: evenly spaced in [min, max], at quantiles, or k random weights."""
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    if init == "density":
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    if init == "random":
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(values, size=k, replace=False))
    raise ValueError(f"unknown k-means initialisation {init!r}; use linear, density or random")


def _assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (centroids sorted ascending)."""
    mids = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mids, values, side="left")


def kmeans_1d(
    values: np.ndarray, k: int, *, init: Init = "linear", iterations: int = 50, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means in one dimension: ``(sorted centroids, assignment)``.

    An empty cluster keeps its previous centroid (with linear initialisation the sparse tails
    may hold no weight at first); iteration stops when no assignment changes.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    distinct = np.unique(data)
    if distinct.size <= k:  # every value its own centroid: exact, nothing to iterate
        return distinct.astype(np.float32), np.searchsorted(distinct, data).astype(np.int64)
    centroids = np.sort(initial_centroids(data, k, init, seed).astype(np.float64))
    assign = _assign(data, centroids)
    for _ in range(iterations):
        sums = np.bincount(assign, weights=data, minlength=k)
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0
        centroids = centroids.copy()
        centroids[filled] = sums[filled] / counts[filled]
        order = np.argsort(centroids, kind="stable")
        centroids = centroids[order]
        new = _assign(data, centroids)
        if np.array_equal(new, assign):
            break
        assign = new
    # drop clusters no weight uses: the codebook holds only used values
    used = np.unique(assign)
    remap = np.full(k, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return centroids[used].astype(np.float32), remap[assign]


def cluster_weights(
    weight: np.ndarray, bits: int, *, init: Init = "linear", iterations: int = 50, seed: int = 0
) -> Clustering:
    """Cluster the non-zero entries of ``weight`` into at most 2^bits shared values."""
    w = np.asarray(weight, dtype=np.float32)
    nonzero = w != 0
    values = w[nonzero]
    k = cluster_count(bits, int(np.unique(values).size) if values.size else 1)
    centroids, assign = kmeans_1d(values, k, init=init, iterations=iterations, seed=seed)
    index = np.full(w.shape, -1, dtype=np.int64)
    index[nonzero] = assign
    return Clustering(centroids=centroids, index=index)


__all__ = ["Clustering", "cluster_count", "cluster_weights", "initial_centroids", "kmeans_1d"]
