"""The :class:`DataBundle`: everything the rest of the engine needs to know about a dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset


@dataclass
class DataBundle:
    """Train and validation splits plus the facts models are checked against.

    ``train`` and ``val`` yield ``(x, y)`` with ``x`` a float tensor ``C×H×W`` (normalized with
    ``mean``/``std`` when ``normalized``) and ``y`` the class index. Whenever the data fit in
    memory they are :class:`~torch.utils.data.TensorDataset` objects, so the trainer can slice
    whole batches out of ``.tensors`` instead of calling ``__getitem__`` per sample.

    ``augment`` works on whole *batches* (``N×C×H×W``, already normalized, on any device), so
    it keeps the fast path: the trainer slices a batch and augments it in one call.
    """

    train: Dataset
    val: Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    source: str
    augment: Callable[[Tensor], Tensor] | None = None
    #: Whether ``x`` was normalized; :func:`sample_grid` needs it to undo the normalization.
    normalized: bool = True

    def describe(self) -> dict[str, Any]:
        """Plain JSON-able facts for run folders, reports and the window."""
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "n_train": len(self.train),  # type: ignore[arg-type]
            "n_val": len(self.val),  # type: ignore[arg-type]
            "n_unlabelled": _unlabelled(self.train),
            "mean": [float(m) for m in self.mean],
            "std": [float(s) for s in self.std],
        }


def _unlabelled(ds: Dataset) -> int:
    """Training samples without a label (-1): hidden by the config or unlabelled at the source."""
    tensors = getattr(ds, "tensors", None)
    if tensors is not None and len(tensors) > 1:
        return int((tensors[1] < 0).sum())
    labels = getattr(ds, "labels", None)
    if labels is not None:
        return sum(1 for y in labels if int(y) < 0)
    return 0
