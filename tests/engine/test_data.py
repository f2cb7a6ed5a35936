"""The data layer: specs, splits, normalization, real MNIST, folders, errors, previews."""

from __future__ import annotations

import gzip
import json
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError
from kdgui.engine.data import (
    KNOWN_KINDS,
    BatchAugment,
    load_data,
    parse_data_spec,
    sample_grid,
)
from kdgui.engine.data import build as data_build

SHARED = Path("/work/shared/data")
MNIST_RAW = SHARED / "MNIST" / "raw"
needs_mnist = pytest.mark.skipif(
    not (MNIST_RAW / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="the shared MNIST test set is not on this machine",
)


# ---------------------------------------------------------------- helpers


def read_idx_gz(path: Path) -> np.ndarray:
    """An independent IDX reader (struct, not the code under test)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_idx_split(
    folder: Path, split: str, n: int, seed: int, sep: str = "-", compress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    ext = ".gz" if compress else ""
    write_idx(folder / f"{split}-images{sep}idx3-ubyte{ext}", images, compress)
    write_idx(folder / f"{split}-labels{sep}idx1-ubyte{ext}", labels, compress)
    return images, labels


def save_image(path: Path, mode: str, size: tuple[int, int], color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every DNS lookup and connection fail, recording the attempts."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise socket.gaierror(-3, "Temporary failure in name resolution (blocked by test)")

    def refuse_connect(self, address):
        attempts.append(repr(address))
        raise OSError(101, "Network is unreachable (blocked by test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


# ---------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("digits", ("digits", None)),
        ("mnist:ROOT", ("mnist", "ROOT")),
        ("  MNIST:/data/x ", ("mnist", "/data/x")),
        ("folder:C:\\data\\imgs", ("folder", "C:\\data\\imgs")),
        ("fashion-mnist:d", ("fashionmnist", "d")),
        ("cifar10:", ("cifar10", None)),
    ],
)
def test_parse_data_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_data_spec(spec) == expected


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(DataError) as err:
        parse_data_spec("imagenet:/data")
    assert "imagenet" in err.value.what
    for kind in KNOWN_KINDS:
        assert kind in err.value.fix
    assert "mnist:ROOT" in err.value.fix and "folder:PATH" in err.value.fix
    with pytest.raises(ValidationError, match="imagenet"):  # the config refuses it first
        DataConfig(spec="imagenet:/data")


def test_bare_directory_spec_suggests_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        parse_data_spec(str(tmp_path))
    assert f"folder:{tmp_path}" in err.value.fix


def test_kind_without_root_or_digits_with_path() -> None:
    with pytest.raises(DataError, match="mnist:ROOT"):
        load_data(DataConfig(spec="mnist"))
    with pytest.raises(DataError, match="takes no path"):
        load_data(DataConfig(spec="digits:/x"))


# ---------------------------------------------------------------- digits


def test_digits_shapes_classes_and_normalization() -> None:
    b = load_data(DataConfig(spec="digits"))
    assert b.input_shape == (1, 8, 8)
    assert b.num_classes == 10 and b.class_names == [str(i) for i in range(10)]
    assert (len(b.train), len(b.val)) == (1438, 359)
    assert hasattr(b.train, "tensors") and hasattr(b.val, "tensors")
    x, y = b.train.tensors
    assert x.dtype == torch.float32 and x.shape == (1438, 1, 8, 8)
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(correction=0)) - 1) < 1e-3
    assert b.augment is None
    desc = json.loads(json.dumps(b.describe()))
    assert desc["n_train"] == 1438 and desc["input_shape"] == [1, 8, 8]
    assert desc["source"] == "scikit-learn digits (1,797 images, 8×8)"


def test_digits_unnormalized_scaled_to_unit_range() -> None:
    from sklearn.datasets import load_digits

    b = load_data(DataConfig(spec="digits", normalize=False, split="ordered"))
    x = b.train.tensors[0]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    expected = torch.as_tensor(load_digits().images[0] / 16.0, dtype=torch.float32)
    torch.testing.assert_close(x[0, 0], expected)


def test_digits_random_split_is_deterministic_per_seed() -> None:
    a = load_data(DataConfig(spec="digits", split_seed=3))
    b = load_data(DataConfig(spec="digits", split_seed=3))
    c = load_data(DataConfig(spec="digits", split_seed=4))
    for part in ("train", "val"):
        for ta, tb in zip(getattr(a, part).tensors, getattr(b, part).tensors, strict=True):
            assert torch.equal(ta, tb)
    assert not torch.equal(a.val.tensors[1], c.val.tensors[1])
    # The split must not depend on (or disturb) the global RNG.
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    load_data(DataConfig(spec="digits", split_seed=3))
    assert torch.equal(torch.rand(1), before)


def test_limit_and_image_size() -> None:
    b = load_data(DataConfig(spec="digits", limit=100, image_size=16, val_fraction=0.25))
    assert (len(b.train), len(b.val)) == (75, 25)
    assert b.input_shape == (1, 16, 16) and b.train.tensors[0].shape[1:] == (1, 16, 16)


def test_lazy_path_matches_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DataConfig(spec="digits", limit=200, image_size=12)
    eager = load_data(cfg)
    monkeypatch.setattr(data_build, "MAX_IN_MEMORY_BYTES", 0)
    lazy = load_data(cfg)
    assert not hasattr(lazy.train, "tensors")
    assert len(lazy.train) == len(eager.train) and lazy.input_shape == eager.input_shape
    for i in (0, 7, len(eager.val) - 1):
        x_lazy, y_lazy = lazy.val[i]
        x_eager, y_eager = eager.val[i]
        assert y_lazy == int(y_eager)
        torch.testing.assert_close(x_lazy, x_eager, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- MNIST (real files)


@needs_mnist
def test_mnist_ordered_split_first_8000_train_last_2000_val() -> None:
    b = load_data(DataConfig(spec=f"mnist:{SHARED}", split="ordered", val_fraction=0.2))
    assert (len(b.train), len(b.val)) == (8000, 2000)
    assert b.input_shape == (1, 28, 28) and b.num_classes == 10
    assert hasattr(b.train, "tensors")
    images = read_idx_gz(MNIST_RAW / "t10k-images-idx3-ubyte.gz")
    labels = read_idx_gz(MNIST_RAW / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    assert b.train.tensors[1][:20].tolist() == labels[:20].tolist()
    assert torch.equal(b.train.tensors[1], torch.from_numpy(labels[:8000]))
    assert torch.equal(b.val.tensors[1], torch.from_numpy(labels[8000:]))
    # Undoing the normalization gives back the file's pixels.
    mean, std = b.mean[0], b.std[0]
    pixels = b.val.tensors[0][0, 0] * std + mean
    torch.testing.assert_close(
        pixels, torch.from_numpy(images[8000] / 255.0).float(), atol=1e-5, rtol=0
    )
    assert mean == pytest.approx(images[:8000].mean() / 255.0, rel=1e-4)
    assert "test split" in b.source and "10,000" in b.source


@needs_mnist
@pytest.mark.parametrize("root", [SHARED, SHARED / "MNIST", MNIST_RAW])
def test_mnist_root_can_be_parent_dataset_or_raw_folder(root: Path) -> None:
    b = load_data(DataConfig(spec=f"mnist:{root}", limit=500))
    assert len(b.train) + len(b.val) == 500


@needs_mnist
def test_fashionmnist_refuses_an_mnist_folder() -> None:
    with pytest.raises(DataError, match="looks like MNIST"):
        load_data(DataConfig(spec=f"fashionmnist:{SHARED / 'MNIST'}"))
    with pytest.raises(DataError, match="No Fashion-MNIST files"):
        load_data(DataConfig(spec=f"fashionmnist:{SHARED}"))


def test_idx_family_prefers_the_training_split(tmp_path: Path) -> None:
    raw = tmp_path / "KMNIST" / "raw"
    _, train_labels = write_idx_split(raw, "train", 30, seed=1)
    write_idx_split(raw, "t10k", 20, seed=2)
    b = load_data(DataConfig(spec=f"kmnist:{tmp_path}", split="ordered", val_fraction=0.2))
    assert (len(b.train), len(b.val)) == (24, 6)
    assert b.train.tensors[1].tolist() == train_labels[:24].tolist()
    assert "training split" in b.source and b.class_names[0] == "o"


def test_idx_family_forgiving_names(tmp_path: Path) -> None:
    # Lower-case folder, uncompressed files, Kaggle-style '.idx3' names, test split only.
    images, _ = write_idx_split(
        tmp_path / "fashionmnist" / "raw", "t10k", 12, seed=3, sep=".", compress=False
    )
    b = load_data(DataConfig(spec=f"fashionmnist:{tmp_path}", split="ordered", normalize=False))
    assert len(b.train) + len(b.val) == 12
    expected = torch.from_numpy(images[0] / 255.0).float()
    torch.testing.assert_close(b.train.tensors[0][0, 0], expected)
    assert b.class_names[-1] == "Ankle boot"


def test_truncated_idx_file(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_idx_split(raw, "t10k", 10, seed=4)
    path = raw / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:500]))
    with pytest.raises(DataError, match="truncated") as err:
        load_data(DataConfig(spec=f"mnist:{tmp_path}"))
    assert str(path) in err.value.what


def test_missing_root_names_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        load_data(DataConfig(spec=f"mnist:{missing}"))
    assert str(missing) in err.value.what and "--download" in err.value.fix


def test_missing_files_name_root_and_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data(DataConfig(spec=f"mnist:{tmp_path}"))
    e = err.value
    assert str(tmp_path) in e.what
    assert "t10k-images-idx3-ubyte" in e.what and "train-labels-idx1-ubyte" in e.what
    assert e.fix.startswith("Pass --download (needs network) or point to a folder containing")
    assert "MNIST/raw/t10k-images-idx3-ubyte.gz" in e.fix


def test_offline_download_is_reported(tmp_path: Path, no_network: list[str]) -> None:
    # torchvision's real download code runs; the blocked sockets make it fail as offline.
    with pytest.raises(DataError) as err:
        load_data(DataConfig(spec=f"mnist:{tmp_path / 'data'}", download=True))
    assert no_network, "the download never tried the network: the test proves nothing"
    assert "offline" in err.value.what and "unreachable" in err.value.what
    assert str(tmp_path / "data") in err.value.what
    assert err.value.source == "data.download"


def test_offline_download_cifar_and_svhn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision.datasets as tvd

    calls: list[str] = []

    def offline(self, *args, **kwargs):
        calls.append(type(self).__name__)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvd.CIFAR10, "download", offline)
    monkeypatch.setattr(tvd.SVHN, "download", offline)
    for spec in (f"cifar10:{tmp_path}", f"cifar100:{tmp_path}", f"svhn:{tmp_path}"):
        with pytest.raises(DataError, match="offline or the server is unreachable"):
            load_data(DataConfig(spec=spec, download=True))
    assert calls == ["CIFAR10", "CIFAR100", "SVHN"]


def test_download_false_never_calls_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets as tvd

    def forbidden(self, *args, **kwargs):
        raise AssertionError("downloaded although download=False")

    monkeypatch.setattr(tvd.MNIST, "download", forbidden)
    monkeypatch.setattr(tvd.CIFAR10, "download", forbidden)
    for spec in (f"mnist:{tmp_path}", f"cifar10:{tmp_path}", f"svhn:{tmp_path}"):
        with pytest.raises(DataError, match="--download"):
            load_data(DataConfig(spec=spec))


# ---------------------------------------------------------------- CIFAR / SVHN (tiny fakes)


def test_cifar10_test_batch_only(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (20, 3 * 32 * 32), dtype=np.uint8)
    labels = [i % 10 for i in range(20)]
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f)
    b = load_data(
        DataConfig(spec=f"cifar10:{folder}", split="ordered", normalize=False, augment=True)
    )
    assert b.input_shape == (3, 32, 32) and b.num_classes == 10
    assert b.class_names[0] == "airplane" and "test split" in b.source
    assert b.train.tensors[1].tolist() == labels[:16]
    expected = torch.from_numpy(data[0].reshape(3, 32, 32) / 255.0).float()
    torch.testing.assert_close(b.train.tensors[0][0], expected)
    assert isinstance(b.augment, BatchAugment) and b.augment.hflip  # natural images flip


def test_svhn_maps_label_10_to_0(tmp_path: Path) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 3, 10), dtype=np.uint8)
    y = np.array([[10], [1], [2], [3], [4], [5], [6], [7], [8], [9]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    b = load_data(
        DataConfig(spec=f"svhn:{tmp_path}", split="ordered", normalize=False, augment=True)
    )
    assert b.train.tensors[1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    torch.testing.assert_close(
        b.train.tensors[0][0, 1], torch.from_numpy(x[:, :, 1, 0] / 255.0).float()
    )
    assert b.augment is not None and not b.augment.hflip  # digits must not be mirrored


# ---------------------------------------------------------------- image folders


def test_folder_grayscale(tmp_path: Path) -> None:
    for i in range(6):
        save_image(tmp_path / "zebra" / f"{i}.png", "L", (10, 10), 200)
        save_image(tmp_path / "ant" / f"{i}.png", "L", (10, 10), 50)
    save_image(tmp_path / "ant" / "odd.png", "L", (12, 14), 50)  # resized to the common size
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    b = load_data(
        DataConfig(spec=f"folder:{tmp_path}", split="ordered", normalize=False, val_fraction=0.25)
    )
    assert b.class_names == ["ant", "zebra"] and b.num_classes == 2
    assert b.input_shape == (1, 10, 10)
    assert len(b.train) + len(b.val) == 13 and hasattr(b.train, "tensors")
    x, y = b.train.tensors
    assert y[0] == 0 and torch.allclose(x[0], torch.full((1, 10, 10), 50 / 255))
    assert b.val.tensors[1].tolist() == [1, 1, 1]
    assert torch.allclose(b.val.tensors[0], torch.full((3, 1, 10, 10), 200 / 255))
    assert b.augment is None


def test_folder_mixed_modes_become_rgb_and_resize(tmp_path: Path) -> None:
    for i in range(4):
        save_image(tmp_path / "red" / f"{i}.jpg", "RGB", (20, 12), (255, 0, 0))
        save_image(tmp_path / "gray" / f"{i}.png", "L", (20, 12), 128)
    b = load_data(DataConfig(spec=f"folder:{tmp_path}", image_size=16, augment=True))
    assert b.input_shape == (3, 16, 16) and len(b.mean) == 3
    assert b.train.tensors[0].shape[1:] == (3, 16, 16)
    assert isinstance(b.augment, BatchAugment) and b.augment.hflip
    grid, labels = sample_grid(b, n=4, split="train")
    assert grid.shape == (4, 16, 16, 3) and grid.dtype == np.uint8
    for img, label in zip(grid, labels, strict=True):
        expected = [128, 128, 128] if b.class_names[label] == "gray" else [255, 0, 0]
        assert np.abs(img[8, 8].astype(int) - expected).max() <= 3


def test_folder_lazy_when_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        save_image(tmp_path / "a" / f"{i}.png", "RGB", (8, 8), (10, 20, 30))
        save_image(tmp_path / "b" / f"{i}.png", "RGB", (8, 8), (200, 100, 0))
    monkeypatch.setattr(data_build, "MAX_IN_MEMORY_BYTES", 0)
    b = load_data(DataConfig(spec=f"folder:{tmp_path}", split="ordered"))
    assert not hasattr(b.train, "tensors")
    x, y = b.val[len(b.val) - 1]
    assert x.shape == (3, 8, 8) and y == 1
    # Train = 5 of class a and 3 of class b (ordered split, 2 for validation).
    expected_mean = [
        (5 * a + 3 * bb) / 8 / 255 for a, bb in zip((10, 20, 30), (200, 100, 0), strict=True)
    ]
    assert b.mean == pytest.approx(expected_mean, abs=1e-6)
    grid, _ = sample_grid(b, n=2, split="val")
    assert grid[-1, 0, 0].tolist() == [200, 100, 0]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("no_images", "no images and no class subfolders"),  # loose images: unlabelled
        ("empty_class", "contains no images"),
        ("broken", "Cannot read image"),
    ],
)
def test_folder_errors(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "imgs"
    culprit = root
    if layout != "missing":
        root.mkdir()
    if layout == "no_images":
        (root / "readme.txt").write_text("the images are elsewhere")
    if layout in ("empty_class", "broken"):
        save_image(root / "cats" / "a.png", "L", (4, 4), 0)
        culprit = root / "dogs"
        culprit.mkdir()
    if layout == "broken":
        culprit = root / "dogs" / "b.png"
        culprit.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=message) as err:
        load_data(DataConfig(spec=f"folder:{root}"))
    assert str(culprit) in err.value.what and err.value.fix


# ---------------------------------------------------------------- augmentation and preview


def test_batch_augment_crops_are_shifted_copies() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    x = x.repeat(16, 1, 1, 1)
    aug = BatchAugment(padding=2, hflip=False)
    out = aug(x, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert matches, f"sample {i} is not a crop of its padded input"
        shifts.add(matches[0])
    assert len(shifts) > 1


def test_batch_augment_flip_and_fill() -> None:
    x = torch.randn(64, 3, 5, 5)
    out = BatchAugment(padding=0, hflip=True)(x, generator=torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)
    # Padding is raw black, i.e. -mean/std per channel once normalized.
    aug = BatchAugment(padding=3, hflip=False, mean=(0.5, 0.2, 0.1), std=(0.25, 0.5, 1.0))
    corners = aug(torch.full((200, 3, 4, 4), 7.0))[:, :, 0, 0]
    fills = {tuple(round(v, 4) for v in row.tolist()) for row in corners}
    assert (-2.0, -0.4, -0.1) in fills


def test_sample_grid_shapes_and_denormalization() -> None:
    norm = load_data(DataConfig(spec="digits", split_seed=5))
    plain = load_data(DataConfig(spec="digits", split_seed=5, normalize=False))
    grid, labels = sample_grid(norm)
    assert grid.shape == (16, 8, 8, 1) and grid.dtype == np.uint8 and len(labels) == 16
    grid_plain, labels_plain = sample_grid(plain)
    assert labels == labels_plain
    assert np.abs(grid.astype(int) - grid_plain.astype(int)).max() <= 1
    assert grid.max() == 255  # digits use the full range once de-normalized
    small = load_data(DataConfig(spec="digits", limit=20))
    few, few_labels = sample_grid(small, n=16, split="val")
    assert few.shape == (4, 8, 8, 1) and len(few_labels) == 4
