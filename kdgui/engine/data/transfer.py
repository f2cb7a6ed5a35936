"""The transfer set: which training samples the student sees, and which keep their labels.

Distillation trains the student on a *transfer set*, which need not be the teacher's training
set. Two of Hinton et al.'s (2015) observations become data options here:

* ``data.exclude_classes`` drops whole classes from the training split only (§3, "the missing
  digit"): the student never sees a 3, yet learns much about 3s from the soft targets of the
  other digits. Validation keeps every class, since it measures what was learnt.
* ``data.ignore_labels`` / ``data.labelled_count`` make the training split unlabelled (label
  ``-1``) except for a few kept labels: soft-target and feature losses need no labels, and the
  hard loss skips ``-1`` (:class:`kdgui.engine.distill.losses.HardLoss`).

Both act on indices and labels before any image is converted, so they cost nothing and behave
the same for every array-backed dataset (:func:`kdgui.engine.data.build.build_bundle`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError

#: The label of a training sample whose label is hidden (cross-entropy's ``ignore_index``).
UNLABELLED = -1


def check_excluded(cfg: DataConfig, num_classes: int, name: str) -> None:
    """Every excluded id must name a class of this dataset (the config cannot know how many)."""
    bad = [c for c in cfg.exclude_classes if c >= num_classes]
    if bad:
        raise DataError(
            f"class {bad[0]} is not a class of {name}, which has classes 0 to "
            f"{num_classes - 1}",
            f"Use class ids from 0 to {num_classes - 1}.",
            source="data.exclude_classes",
        )
    if len(cfg.exclude_classes) >= num_classes:
        raise DataError(
            f"removing {len(cfg.exclude_classes)} classes leaves none of {name}'s "
            f"{num_classes}",
            "Keep at least one class in the training set.",
            source="data.exclude_classes",
        )


def transfer_indices(train_idx: Tensor, labels: Tensor, cfg: DataConfig, num_classes: int,
                     name: str) -> Tensor:
    """``train_idx`` without the samples of ``cfg.exclude_classes`` (order kept)."""
    if not cfg.exclude_classes:
        return train_idx
    check_excluded(cfg, num_classes, name)
    excluded = torch.tensor(cfg.exclude_classes, dtype=labels.dtype)
    keep = ~torch.isin(labels[train_idx], excluded)
    kept = train_idx[keep]
    if len(kept) == 0:
        raise DataError(
            f"{name}: no training sample is left after removing classes {cfg.exclude_classes}",
            "Exclude fewer classes or use more data.",
            source="data.exclude_classes",
        )
    return kept


def masks_labels(cfg: DataConfig) -> bool:
    """Whether the training split loses (some of) its labels."""
    return cfg.ignore_labels or cfg.labelled_count is not None


def transfer_labels(train_labels: Tensor, cfg: DataConfig) -> Tensor:
    """The training labels with hidden ones set to :data:`UNLABELLED`.

    ``labelled_count`` samples keep their label, drawn with ``split_seed`` (reproducible, and
    independent of the global random state); without it, ``ignore_labels`` hides all of them.
    """
    if not masks_labels(cfg):
        return train_labels
    out = torch.full_like(train_labels, UNLABELLED)
    keep = min(cfg.labelled_count or 0, len(train_labels))
    if keep:
        gen = torch.Generator().manual_seed(cfg.split_seed + 1)
        chosen = torch.randperm(len(train_labels), generator=gen)[:keep]
        out[chosen] = train_labels[chosen]
    return out


def split_labelled(labels: Tensor, cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """Train/validation indices of a dataset whose samples may be unlabelled at the source
    (images lying directly in a ``folder:PATH``, label :data:`UNLABELLED`).

    Unlabelled images only teach, so they all go to training; validation is drawn from the
    labelled samples, by ``cfg``'s split, when there are at least two of them. With no labels
    at all, validation is a held-out part of the unlabelled images: there the student can only
    be compared with the teacher (agreement), and accuracy is not measured.
    """
    from kdgui.engine.data.split import split_indices

    unlabelled = labels == UNLABELLED
    if not bool(unlabelled.any()):
        return split_indices(len(labels), cfg)
    known = (~unlabelled).nonzero().flatten()
    loose = unlabelled.nonzero().flatten()
    if len(known) < 2:
        train, val = split_indices(len(loose), cfg)
        return torch.cat([known, loose[train]]), loose[val]
    train, val = split_indices(len(known), cfg)
    return torch.cat([known[train], loose]), known[val]


__all__ = ["UNLABELLED", "check_excluded", "masks_labels", "split_labelled", "transfer_indices",
           "transfer_labels"]
