"""Accuracy on a dataset, and agreement between two models' predictions.

Agreement (the fraction of samples on which student and teacher predict the same class) is the
number distillation optimises most directly; it also reveals a student that is accurate for
different reasons than its teacher.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from kdgui.core.errors import DataError
from kdgui.engine.metrics._modules import eval_mode, on_device


def _logits(output: Any) -> torch.Tensor:
    """The class scores of a model output: a tensor, the first item of a tuple, or ``.logits``."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (list, tuple)) and output:
        return _logits(output[0])
    if isinstance(output, dict) and "logits" in output:
        return output["logits"]
    raise TypeError(f"cannot find class scores in a model output of type {type(output).__name__}")


def _tensor_batches(
    tensors: Sequence[torch.Tensor], indices: torch.Tensor | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Slice a TensorDataset directly: no per-sample ``__getitem__`` and no collation."""
    xs, ys = tensors[0], tensors[1]
    n = len(indices) if indices is not None else len(xs)
    for start in range(0, n, batch_size):
        if indices is None:
            yield xs[start : start + batch_size], ys[start : start + batch_size]
        else:
            idx = indices[start : start + batch_size]
            yield xs[idx], ys[idx]


def _batches(data: Any, batch_size: int) -> Iterable[Any]:
    if hasattr(data, "tensors"):
        return _tensor_batches(data.tensors, None, batch_size)
    if isinstance(data, Subset) and hasattr(data.dataset, "tensors"):
        return _tensor_batches(
            data.dataset.tensors, torch.as_tensor(list(data.indices), dtype=torch.long), batch_size
        )
    if isinstance(data, DataLoader) or (
        isinstance(data, Iterable) and not isinstance(data, Dataset)
    ):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)


def evaluate(
    model: nn.Module,
    dataset_or_loader: Any,
    device: str = "cpu",
    batch_size: int = 512,
    teacher_preds: np.ndarray | Sequence[int] | None = None,
) -> dict[str, Any]:
    """Top-1 (and top-5) accuracy and the predicted classes of ``model`` on the data.

    Accepts a TensorDataset (or a Subset of one; sliced directly, the fast path), any map-style
    Dataset, a DataLoader or any iterable of ``(inputs, labels, ...)`` batches. Returns
    ``accuracy`` (0–1), ``top5`` (None with 5 classes or fewer, where it is always 1),
    ``predictions`` (int64 array in data order), ``n`` and ``agreement`` with ``teacher_preds``
    (None when not given). The model is evaluated in eval mode and left unchanged.
    """
    target = torch.device(device)
    net = on_device(model, target)
    preds: list[torch.Tensor] = []
    correct = correct5 = total = labelled = 0
    num_classes = 0
    with eval_mode(net), torch.inference_mode():
        for batch in _batches(dataset_or_loader, batch_size):
            x, y = batch[0], batch[1]
            x = x.to(target, non_blocking=True)
            y = torch.as_tensor(y).to(target)
            logits = _logits(net(x))
            num_classes = logits.shape[-1]
            top1 = logits.argmax(dim=-1)
            correct += int((top1 == y).sum())  # label -1 (unlabelled) never matches
            if num_classes > 5:
                top = logits.topk(5, dim=-1).indices
                correct5 += int((top == y.unsqueeze(-1)).any(dim=-1).sum())
            total += int(y.numel())
            labelled += int((y >= 0).sum())
            preds.append(top1.cpu())
    if total == 0:
        raise DataError(
            "the evaluation data is empty (0 samples)",
            "Check the dataset path and the 'limit' and 'val_fraction' settings.",
        )
    predictions = torch.cat(preds).numpy().astype(np.int64)
    # Accuracy over the labelled samples only; NaN when none has a label (a folder of
    # unlabelled images): there only the agreement with the teacher says anything.
    return {
        "accuracy": correct / labelled if labelled else float("nan"),
        "top5": (correct5 / labelled if labelled else float("nan")) if num_classes > 5 else None,
        "predictions": predictions,
        "n": total,
        "agreement": agreement(predictions, teacher_preds) if teacher_preds is not None else None,
    }


def agreement(preds_a: Any, preds_b: Any) -> float:
    """Fraction of samples on which two prediction vectors name the same class."""
    a = np.asarray(preds_a.cpu() if isinstance(preds_a, torch.Tensor) else preds_a).reshape(-1)
    b = np.asarray(preds_b.cpu() if isinstance(preds_b, torch.Tensor) else preds_b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"prediction vectors differ in length: {a.size} vs {b.size}")
    if a.size == 0:
        return float("nan")
    return float(np.mean(a == b))
