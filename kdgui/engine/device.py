"""Choosing where a run executes, and seeding it reproducibly."""

from __future__ import annotations

import random

import numpy as np
import torch

from kdgui.core.errors import ConfigError


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' → CUDA, then Apple MPS, then CPU; an unavailable explicit choice is a user error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "training.device = 'cuda' but no CUDA GPU is available",
            "Use training.device: auto or cpu.",
        )
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(
                "training.device = 'mps' but Apple MPS is not available",
                "Use training.device: auto or cpu.",
            )
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so two runs with one config start from the same state."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
