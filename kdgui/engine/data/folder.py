"""Image folders: ``ROOT/<class name>/<image files>``, the torchvision ``ImageFolder`` layout.

Images lying directly in ``ROOT`` have no class: they are an unlabelled transfer set (label -1:
the teacher's outputs teach, the hard loss skips them), and the class subfolders, when there
are any, are the small labelled set for the hard loss and for validation. A folder of images
only is all unlabelled; the number of classes then comes from the teacher.

Class names are the subfolder names (sorted); file order is class by class, then by path, and
is the order ``split: ordered`` and ``limit`` refer to (so ``limit`` may keep only the first
classes: it is meant for quick trials). Images are converted to one mode: grayscale (1
channel) when every image is grayscale, else RGB (3 channels); and resized to ``image_size`` or
else to the most common size. RGB folders are treated as natural images (horizontal flips on
when augmenting); grayscale ones are not, since they are often characters or digits.

Folders that fit in memory as float32 become ``TensorDataset`` splits like every other
dataset; larger ones decode lazily, with mean/std estimated on a sample of the training split.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data import build
from kdgui.engine.data.build import RawData, build_bundle, make_augment
from kdgui.engine.data.bundle import DataBundle
from kdgui.engine.data.lazy import LazyImageFolderDataset, read_image
from kdgui.engine.data.transfer import UNLABELLED, split_labelled

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".pgm",
    ".pbm",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)
_GRAY_MODES = {"1", "L", "LA"}
#: Training images decoded to estimate mean/std when a folder is too large to hold.
FOLDER_STATS_SAMPLE = 1000
_FIX_LAYOUT = "Arrange the images as PATH/<class name>/<image>, one subfolder per class."


def _fail(what: str, fix: str = _FIX_LAYOUT) -> DataError:
    return DataError(what, fix, source="data.spec")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def scan(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names, image paths and labels in file order; layout problems raise DataError.

    Images lying directly in ``root`` come last, with label -1 (unlabelled)."""
    if not root.exists():
        raise _fail(
            f"The image folder {root} does not exist",
            "Check the path in 'folder:PATH' (one subfolder per class inside it).",
        )
    if not root.is_dir():
        raise _fail(f"{root} is a file, not a folder")
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise _fail(f"The image folder {root} is empty")
    class_dirs = sorted((p for p in entries if p.is_dir()), key=lambda p: p.name)
    loose = sorted(p for p in entries if _is_image(p))
    if not class_dirs and not loose:
        raise _fail(f"The image folder {root} has no images and no class subfolders",
                    "Put images in it: directly (unlabelled: only the teacher teaches) or in "
                    "one subfolder per class (labelled).")

    class_names, paths, labels = [], [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if _is_image(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            raise _fail(
                f"The class folder {class_dir} contains no images "
                f"(extensions: {', '.join(IMAGE_EXTENSIONS)})",
                "Add images to it or remove the folder.",
            )
        class_names.append(class_dir.name)
        paths += files
        labels += [label] * len(files)
    # Images directly in the folder have no class: an unlabelled transfer set (label -1), with
    # the class subfolders, if any, as the small labelled set (hard loss and validation).
    paths += loose
    labels += [UNLABELLED] * len(loose)
    return class_names, paths, labels


def probe(paths: list[Path]) -> tuple[str, Counter]:
    """The common mode ("L" or "RGB") and the size histogram, reading headers only."""
    from PIL import Image, UnidentifiedImageError

    gray = True
    sizes: Counter = Counter()
    for path in paths:
        try:
            with Image.open(path) as img:
                sizes[img.size] += 1
                gray = gray and img.mode in _GRAY_MODES
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise _fail(
                f"Cannot read image {path}: {exc}",
                "Remove or replace the file (it is damaged or not an image).",
            ) from exc
    return ("L" if gray else "RGB"), sizes


def _sampled_stats(
    ds: LazyImageFolderDataset, picks: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std over the picked images, one image in memory at a time."""
    total = squares = None
    count = 0
    for i in picks:
        arr = ds.raw(int(i))
        pixels = arr.reshape(-1, arr.shape[-1]).astype(np.float64) / 255.0
        total = pixels.sum(0) if total is None else total + pixels.sum(0)
        squares = (pixels**2).sum(0) if squares is None else squares + (pixels**2).sum(0)
        count += len(pixels)
    assert total is not None and squares is not None
    mean = total / count
    std = np.sqrt(np.clip(squares / count - mean**2, 0.0, None))
    return tuple(float(m) for m in mean), tuple(float(s) if s > 1e-6 else 1.0 for s in std)


def load_folder(path: str | None, cfg: DataConfig) -> DataBundle:
    """Load ``folder:PATH`` with the config's limit, size, split and normalization."""
    if not path:
        raise _fail("'folder' needs a path: write 'folder:PATH'", _FIX_LAYOUT)
    root = Path(path).expanduser()
    class_names, paths, labels = scan(root)
    if cfg.limit is not None:
        paths, labels = paths[: cfg.limit], labels[: cfg.limit]
    mode, sizes = probe(paths)
    if cfg.image_size:
        size_wh = (cfg.image_size, cfg.image_size)
    else:
        size_wh = sizes.most_common(1)[0][0]
    channels = 1 if mode == "L" else 3
    width, height = size_wh
    natural = channels == 3
    resized = "" if len(sizes) == 1 and size_wh in sizes else f", resized to {width}×{height}"
    unlabelled = labels.count(UNLABELLED)
    what = (f"{len(paths):,} images, {len(class_names)} classes" if not unlabelled else
            f"unlabelled: {unlabelled:,} images" + (
                f", labelled: {len(paths) - unlabelled:,} in {len(class_names)} classes"
                if class_names else ""))
    source = f"image folder {root} ({what}, {'grayscale' if channels == 1 else 'RGB'}{resized})"

    if len(paths) * channels * width * height * 4 <= build.MAX_IN_MEMORY_BYTES:
        images = np.stack([read_image(p, mode, size_wh) for p in paths])
        raw = RawData(
            images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            labels=torch.as_tensor(labels, dtype=torch.int64),
            scale=255.0,
            class_names=class_names,
            name=root.name or str(root),
            source=source,
            natural=natural,
        )
        return build_bundle(raw, cfg)

    train_idx, val_idx = split_labelled(torch.as_tensor(labels, dtype=torch.int64), cfg)
    train_paths = [paths[i] for i in train_idx.tolist()]
    train = LazyImageFolderDataset(
        train_paths, [labels[i] for i in train_idx.tolist()], mode, size_wh
    )
    val = LazyImageFolderDataset(
        [paths[i] for i in val_idx.tolist()], [labels[i] for i in val_idx.tolist()], mode, size_wh
    )
    pick = np.linspace(0, len(train_paths) - 1, min(FOLDER_STATS_SAMPLE, len(train_paths)))
    mean, std = _sampled_stats(train, pick)
    if cfg.normalize:
        train.set_normalization(mean, std)
        val.set_normalization(mean, std)
    return DataBundle(
        train=train,
        val=val,
        input_shape=(channels, height, width),
        num_classes=len(class_names),
        class_names=class_names,
        mean=mean,
        std=std,
        name=root.name or str(root),
        source=source,
        augment=make_augment(cfg, height, natural, mean, std),
        normalized=cfg.normalize,
    )
