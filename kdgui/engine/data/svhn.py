"""SVHN (street-view house numbers, cropped digits) from torchvision's ``.mat`` files.

Read with ``scipy.io.loadmat`` directly: ``torchvision.datasets.SVHN`` would MD5 the whole file
first. The training file is the data when present (split into train/val), else the test file;
the large ``extra`` split is not used. Label 10 means digit 0, as in torchvision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data.build import RawData
from kdgui.engine.data.download import require_root, run_download

_FILES = {"training": "train_32x32.mat", "test": "test_32x32.mat"}


def _locate(root: Path) -> tuple[Path, str] | None:
    for folder in (root, root / "svhn", root / "SVHN"):
        for split, name in _FILES.items():
            if (folder / name).is_file():
                return folder / name, split
    return None


def load_svhn(path: str | None, cfg: DataConfig) -> RawData:
    """Load SVHN from ``path`` (downloading both splits only if ``cfg.download``)."""
    root = require_root("svhn", path, cfg.download)
    found = _locate(root)
    if found is None:
        if not cfg.download:
            raise DataError(
                f"No SVHN files in {root}: expected train_32x32.mat and/or test_32x32.mat",
                "Pass --download (needs network) or point to a folder containing "
                "train_32x32.mat (and test_32x32.mat).",
                source="data.spec",
            )

        def fetch() -> None:
            import torchvision.datasets as tvd

            tvd.SVHN(str(root), split="train", download=True)
            tvd.SVHN(str(root), split="test", download=True)

        run_download("SVHN", root, fetch)
        found = _locate(root)
        if found is None:
            raise DataError(
                f"The SVHN download into {root} produced no train_32x32.mat",
                "Download the file by hand and copy it into the folder.",
                source="data.download",
            )
    file, split = found

    from scipy.io import loadmat

    try:
        mat = loadmat(str(file))
        images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
        labels = mat["y"].astype(np.int64).reshape(-1)
    except Exception as exc:  # scipy raises ValueError/KeyError/OSError on bad files
        raise DataError(
            f"Cannot read {file}: {type(exc).__name__}: {exc}",
            "Replace it with an intact copy of the SVHN file.",
            source="data",
        ) from exc
    labels[labels == 10] = 0
    return RawData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        scale=255.0,
        class_names=[str(i) for i in range(10)],
        name="svhn",
        source=f"SVHN {split} split ({len(labels):,} images, 32×32) from {file.parent}",
    )
