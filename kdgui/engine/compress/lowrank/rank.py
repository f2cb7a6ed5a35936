"""Choosing the rank of a factorization and checking it against the layer's limit."""

from __future__ import annotations

import torch

from kdgui.core.errors import CompressionError


def check_rank(rank: int, limit: int, layer: str) -> None:
    """A CompressionError naming ``layer`` and its limit when ``rank`` is 0 or above it."""
    if not isinstance(rank, int) or rank < 1 or rank > limit:
        raise CompressionError(
            f"rank {rank!r} for layer '{layer}' is outside 1..{limit} (its limit: "
            f"min(out, in) = {limit})",
            f"Choose a rank between 1 and {limit} for '{layer}', or use rank_fraction / energy.",
        )


def choose_rank(singular: torch.Tensor, params: object, limit: int, layer: str) -> int:
    """The rank from ``params``: explicit rank, else energy kept, else fraction of ``limit``."""
    if params.rank is not None:
        rank = params.rank
    elif params.energy is not None:
        energy = singular.double() ** 2
        cumulative = torch.cumsum(energy, 0) / energy.sum().clamp_min(1e-30)
        rank = int(torch.searchsorted(cumulative, torch.tensor(params.energy - 1e-12,
                                                               dtype=cumulative.dtype))) + 1
    else:
        rank = max(1, round(params.rank_fraction * limit))
    rank = min(rank, limit) if params.rank is None else rank
    check_rank(rank, limit, layer)
    return rank
