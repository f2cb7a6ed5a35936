"""scikit-learn's handwritten digits: 1,797 8×8 images shipped with the package, fully offline."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from kdgui.engine.data.build import RawData


def load_digits_raw() -> RawData:
    """The digits as ``N×1×8×8`` floats in 0..16 (``scale`` 16 maps them to 0..1)."""
    table = _digits_table()
    images = torch.as_tensor(table[:, :-1], dtype=torch.float32).reshape(-1, 1, 8, 8)
    labels = torch.as_tensor(table[:, -1], dtype=torch.int64)
    return RawData(
        images=images,
        labels=labels,
        scale=16.0,
        class_names=[str(i) for i in range(10)],
        name="digits",
        source=f"scikit-learn digits ({len(labels):,} images, 8×8)",
    )


def _digits_table() -> np.ndarray:
    """scikit-learn's ``digits.csv.gz`` (64 pixels and the label per row), read from the
    installed package without importing it: importing sklearn (which imports scipy.stats) took
    most of the demo's time before step 1 (1-2 s idle, 13 s on a busy machine), for 1,797
    rows. Falls back to ``sklearn.datasets.load_digits`` where the file is not found."""
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                return np.loadtxt(f, delimiter=",", dtype=np.float32)
    from sklearn.datasets import load_digits

    ds = load_digits()
    return np.concatenate([ds.data, ds.target[:, None]], axis=1).astype(np.float32)
