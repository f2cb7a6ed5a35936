"""MNIST, Fashion-MNIST and KMNIST read straight from their IDX files.

We read the files ourselves instead of through ``torchvision.datasets.MNIST`` because that class
refuses a root holding only the test split (it checks for all four files) and wants the files
uncompressed in ``ROOT/MNIST/raw``. Here a root may be the folder that contains ``MNIST/``, the
``MNIST`` folder itself, or its ``raw`` folder; files may be gzipped or not, and named with
either ``-idx3-`` or ``.idx3-`` (both circulate).

Which split is used: when the official training files are present they are the data (split
into train/val by ``val_fraction``), and the official test files are left untouched, so model
selection never peeks at them. When only the ``t10k`` files are present (such as the shared
10,000-image test set), they are the data and are split the same way.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data.build import RawData
from kdgui.engine.data.download import require_root, run_download


@dataclass(frozen=True)
class IdxFamily:
    """One member of the MNIST family: its torchvision class/folder name and its classes."""

    kind: str
    folder: str  # torchvision's folder and class name
    title: str
    class_names: tuple[str, ...]


FAMILIES: dict[str, IdxFamily] = {
    "mnist": IdxFamily("mnist", "MNIST", "MNIST", tuple(str(i) for i in range(10))),
    "fashionmnist": IdxFamily(
        "fashionmnist",
        "FashionMNIST",
        "Fashion-MNIST",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "kmnist": IdxFamily(
        "kmnist", "KMNIST", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    ),
}

_SPLITS = {"train": "training", "t10k": "test"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its declared shape."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(
            f"Cannot read {path}: {exc}", "Replace the file with an intact copy.", source="data"
        ) from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path} is not an IDX file (bad header)",
            "Replace it with the original MNIST-format file.",
            source="data",
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">i4"))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(shape)) if shape else 0
    if len(data) - header < count * dtype.itemsize:
        raise DataError(
            f"{path} is truncated: its header declares shape {shape}",
            "Replace it with a complete copy (the download was probably interrupted).",
            source="data",
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)


def _find_file(folder: Path, split: str, what: str, rank: int) -> Path | None:
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            candidate = folder / f"{split}-{what}{sep}idx{rank}-ubyte{ext}"
            if candidate.is_file():
                return candidate
    return None


def _splits_in(folder: Path) -> dict[str, tuple[Path, Path]]:
    """The complete (images, labels) pairs found in ``folder``, keyed ``train``/``t10k``."""
    found = {}
    for split in _SPLITS:
        images = _find_file(folder, split, "images", 3)
        labels = _find_file(folder, split, "labels", 1)
        if images is not None and labels is not None:
            found[split] = (images, labels)
    return found


def candidate_folders(root: Path, family: IdxFamily) -> list[Path]:
    """Where the files may be, most conventional first: ROOT/MNIST/raw, ROOT/raw, ROOT, …"""
    folders = [root / family.folder / "raw", root / "raw", root, root / family.folder]
    if root.is_dir():  # tolerate other capitalisations, e.g. root/mnist/raw
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.lower() == family.folder.lower():
                folders += [child / "raw", child]
    unique: list[Path] = []
    for f in folders:
        if f not in unique:
            unique.append(f)
    return unique


def _check_family(folder: Path, family: IdxFamily) -> None:
    """Refuse e.g. ``fashionmnist:data/MNIST``: IDX files do not say which dataset they are."""
    named = folder.parent if folder.name.lower() == "raw" else folder
    for other in FAMILIES.values():
        if other is not family and named.name.lower() == other.folder.lower():
            raise DataError(
                f"{folder} looks like {other.title} (folder '{named.name}'), but the spec asks "
                f"for {family.title}",
                f"Write '{other.kind}:{named.parent}' or point '{family.kind}:ROOT' to the "
                f"{family.folder} folder.",
                source="data.spec",
            )


def download_root(root: Path, family: IdxFamily) -> Path:
    """The folder to hand torchvision, which appends ``MNIST/raw`` itself."""
    if root.name.lower() == "raw" and root.parent.name.lower() == family.folder.lower():
        return root.parent.parent
    if root.name.lower() == family.folder.lower():
        return root.parent
    return root


def _missing_error(root: Path, family: IdxFamily) -> DataError:
    test = "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
    train = "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz"
    return DataError(
        f"No {family.title} files in {root} (looked in {family.folder}/raw, raw and the folder "
        f"itself): expected {train} (training split) and/or {test} (test split), gzipped or not",
        f"Pass --download (needs network) or point to a folder containing "
        f"{family.folder}/raw/{test.split(' and ')[0]} and its label file.",
        source="data.spec",
    )


def locate(root: Path, family: IdxFamily) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """The first candidate folder holding at least one complete split, and its splits."""
    for folder in candidate_folders(root, family):
        splits = _splits_in(folder) if folder.is_dir() else {}
        if splits:
            _check_family(folder, family)
            return folder, splits
    raise _missing_error(root, family)


def load_idx_family(kind: str, path: str | None, cfg: DataConfig) -> RawData:
    """Load MNIST, Fashion-MNIST or KMNIST from ``path`` (downloading only if ``cfg.download``)."""
    family = FAMILIES[kind]
    root = require_root(kind, path, cfg.download)
    try:
        folder, splits = locate(root, family)
    except DataError:
        if not cfg.download:
            raise
        target = download_root(root, family)

        def fetch() -> None:
            import torchvision.datasets as tvd

            getattr(tvd, family.folder)(str(target), train=True, download=True)

        run_download(family.title, target, fetch)
        folder, splits = locate(root, family)

    split = "train" if "train" in splits else "t10k"
    images_path, labels_path = splits[split]
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {images.shape} and {labels_path} holds {labels.shape}: "
            "expected N×H×W images and N labels",
            "Replace the files with matching image and label files.",
            source="data",
        )
    n, h, w = images.shape
    return RawData(
        images=torch.from_numpy(images.astype(np.uint8, copy=True)).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        scale=255.0,
        class_names=list(family.class_names),
        name=kind,
        source=f"{family.title} {_SPLITS[split]} split ({n:,} images, {h}×{w}) from {folder}",
    )
