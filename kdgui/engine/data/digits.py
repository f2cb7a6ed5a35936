"""scikit-learn's handwritten digits: 1,797 8×8 images shipped with the package, fully offline."""

from __future__ import annotations

import torch

from kdgui.engine.data.build import RawData


def load_digits_raw() -> RawData:
    """The digits as ``N×1×8×8`` floats in 0..16 (``scale`` 16 maps them to 0..1)."""
    from sklearn.datasets import load_digits

    ds = load_digits()
    images = torch.as_tensor(ds.images, dtype=torch.float32).unsqueeze(1)
    labels = torch.as_tensor(ds.target, dtype=torch.int64)
    return RawData(
        images=images,
        labels=labels,
        scale=16.0,
        class_names=[str(i) for i in range(10)],
        name="digits",
        source=f"scikit-learn digits ({len(labels):,} images, 8×8)",
    )
