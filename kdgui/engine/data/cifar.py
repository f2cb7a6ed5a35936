"""CIFAR-10 and CIFAR-100 read from torchvision's extracted "python version" batches.

We unpickle the batch files ourselves (as torchvision does) rather than going through
``torchvision.datasets.CIFAR10``, whose constructor checks the MD5 of *every* batch (slow) and
refuses a folder that holds only some of them. The root may be the folder that contains
``cifar-10-batches-py/`` or that folder itself. As for MNIST, the official training batches are
the data when present (split into train/val), else the test batch is.

Note: the batch files are Python pickles; only point this at files you obtained from the
official source (the same trust torchvision asks for).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data.build import RawData
from kdgui.engine.data.download import require_root, run_download


@dataclass(frozen=True)
class CifarLayout:
    """File names of one CIFAR variant, as torchvision extracts them."""

    kind: str
    title: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    meta_key: str
    label_key: str
    tv_class: str


LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        "cifar10",
        "CIFAR-10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "label_names",
        "labels",
        "CIFAR10",
    ),
    "cifar100": CifarLayout(
        "cifar100",
        "CIFAR-100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        ("train",),
        ("test",),
        "meta",
        "fine_label_names",
        "fine_labels",
        "CIFAR100",
    ),
}

_CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as exc:  # corrupted pickles raise many different types
        raise DataError(
            f"Cannot read {path}: {type(exc).__name__}: {exc}",
            "Replace the file with an intact copy (re-extract the archive or re-download).",
            source="data",
        ) from exc


def _folder_with(root: Path, layout: CifarLayout) -> tuple[Path, tuple[str, ...], str] | None:
    for folder in (root / layout.folder, root):
        for files, split in ((layout.train_files, "training"), (layout.test_files, "test")):
            if folder.is_dir() and all((folder / f).is_file() for f in files):
                return folder, files, split
    return None


def _missing_error(root: Path, layout: CifarLayout) -> DataError:
    expected = (
        f"{', '.join(layout.train_files)} (training split) and/or "
        f"{', '.join(layout.test_files)} (test split)"
    )
    archive_hint = ""
    for place in (root, root.parent):
        if (place / layout.archive).is_file():
            archive_hint = f" ({place / layout.archive} exists: extract it there)"
    return DataError(
        f"No {layout.title} files in {root} (looked in {layout.folder}/ and the folder itself): "
        f"expected {expected}{archive_hint}",
        f"Pass --download (needs network) or point to a folder containing "
        f"{layout.folder}/{layout.test_files[0]} (or the training batches).",
        source="data.spec",
    )


def load_cifar(kind: str, path: str | None, cfg: DataConfig) -> RawData:
    """Load CIFAR-10/100 from ``path`` (downloading only if ``cfg.download``)."""
    layout = LAYOUTS[kind]
    root = require_root(kind, path, cfg.download)
    found = _folder_with(root, layout)
    if found is None:
        if not cfg.download:
            raise _missing_error(root, layout)
        target = root.parent if root.name == layout.folder else root

        def fetch() -> None:
            import torchvision.datasets as tvd

            getattr(tvd, layout.tv_class)(str(target), train=True, download=True)

        run_download(layout.title, target, fetch)
        found = _folder_with(root, layout)
        if found is None:
            raise _missing_error(root, layout)
    folder, files, split = found

    chunks, labels = [], []
    for name in files:
        entry = _unpickle(folder / name)
        chunks.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry[layout.label_key])
    images = np.concatenate(chunks).reshape(-1, 3, 32, 32)

    meta_path = folder / layout.meta_file
    if meta_path.is_file():
        class_names = [str(c) for c in _unpickle(meta_path)[layout.meta_key]]
    elif kind == "cifar10":
        class_names = list(_CIFAR10_NAMES)
    else:
        class_names = [str(i) for i in range(100)]
    return RawData(
        images=torch.from_numpy(images),
        labels=torch.as_tensor(labels, dtype=torch.int64),
        scale=255.0,
        class_names=class_names,
        name=kind,
        source=f"{layout.title} {split} split ({len(labels):,} images, 32×32) from {folder}",
        natural=True,
    )
