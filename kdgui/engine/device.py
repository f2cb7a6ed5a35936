"""Choosing where a run executes, and seeding it reproducibly."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kdgui.core.devices import gpu_index
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
    index = gpu_index(requested)
    if index is not None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            have = (f"{count} CUDA GPU{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})"
                    if count else "no CUDA GPU")
            fix = f"cuda:0 … cuda:{count - 1}, auto or cpu" if count else "auto or cpu"
            raise ConfigError(f"training.device = '{requested}' but this machine has {have}",
                              f"Use training.device: {fix}.")
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(
                "training.device = 'mps' but Apple MPS is not available",
                "Use training.device: auto or cpu.",
            )
    return torch.device(requested)


def available_devices() -> list[dict[str, Any]]:
    """This machine's devices: ``cpu``, each ``cuda:N`` with its name and memory, ``mps`` when
    available. Each is ``{"device", "label", "name", "memory_bytes"}``; ``label`` is what the
    window shows (``cuda:0 — NVIDIA H200 (139 GiB)``). A GPU that cannot be queried is left out."""
    found: list[dict[str, Any]] = [
        {"device": "cpu", "label": "cpu", "name": "CPU", "memory_bytes": None}]
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken driver: train on what is left
        count = 0
    for i in range(count):
        try:
            props = torch.cuda.get_device_properties(i)
        except Exception:
            continue
        gib = props.total_memory / 2**30
        found.append({"device": f"cuda:{i}", "label": f"cuda:{i} — {props.name} ({gib:.0f} GiB)",
                      "name": props.name, "memory_bytes": int(props.total_memory)})
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append({"device": "mps", "label": "mps — Apple GPU", "name": "Apple MPS",
                      "memory_bytes": None})
    return found


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so two runs with one config start from the same state."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op CPU thread for the body, the caller's count restored after. Small models on
    shared cores: a thread pool mostly measures its own wake-ups (per-layer timings of 30-120 ms
    against 0.1-0.2 ms on 2 loaded cores; lessons ran 20× slower), and one thread leaves the
    other core to the window."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
