"""Logit distillation methods beyond Hinton's KD: DKD and DIST, each from its paper.

Both read the student's and the teacher's logits (DKD also the labels), compute in float32 from
the teacher's detached logits, and take ``standardize`` (logit standardization, Sun et al. 2024:
z-scored logits before the temperature, see :func:`~kdgui.engine.distill.losses.standardize_logits`).

* **DKD** (Zhao et al. 2022, eq. 6–7): KD = TCKD + (1 − p_t^target) NCKD; DKD weights the two
  parts freely, ``α TCKD + β NCKD``. TCKD is the KL between the binary distributions
  ``b = (p_target, 1 − p_target)``; NCKD the KL between the softmaxes over the non-target classes
  only. Both are multiplied by ``T²`` and averaged over the batch; the whole loss is scaled by
  ``min(epoch / warmup, 1)`` (epochs counted from 1). The authors' code removes the target class
  by subtracting 1000 from its logit; here its column is dropped instead and ``1 − p_target`` is a
  log-sum-exp over the other classes, which is the same value but stays exact when logits are
  ±1e4 (where ``z − 1000`` would not remove anything).
* **DIST** (Huang et al. 2022, eq. 5–8): with ``p = softmax(z / T)``,
  ``T² [β (1 − mean_i ρ(p_s[i,:], p_t[i,:])) + γ (1 − mean_c ρ(p_s[:,c], p_t[:,c]))]`` where ρ is
  the Pearson correlation (written, as in the authors' code, as the cosine of the centred
  vectors with 1e-8 added to the product of the norms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgui.core.components.distill import DISTParams, DKDParams
from kdgui.engine.distill.losses import prepare_logits

#: Added to the norms' product in the Pearson correlation, as in DIST's reference code.
PEARSON_EPS = 1e-8


def _kl_rows(log_p_t: Tensor, log_p_s: Tensor) -> Tensor:
    """``sum_k p_t (log p_t − log p_s)`` per row, from log-probabilities (0 log 0 = 0)."""
    p_t = log_p_t.exp()
    return torch.where(p_t > 0, p_t * (log_p_t - log_p_s), torch.zeros_like(p_t)).sum(dim=1)


def dkd_parts(student: Tensor, teacher: Tensor, target: Tensor, temperature: float
              ) -> tuple[Tensor, Tensor]:
    """``(TCKD, NCKD)`` for float32 logits, each ``T² ·`` batch mean (no α, β, warm-up)."""
    t = temperature
    z_s, z_t = student / t, teacher / t
    n, c = z_s.shape
    gt = F.one_hot(target.long(), c).bool()
    # Non-target logits, (N, C-1): the target's column removed row by row.
    other_s, other_t = z_s[~gt].view(n, c - 1), z_t[~gt].view(n, c - 1)
    lse_s, lse_t = torch.logsumexp(z_s, dim=1), torch.logsumexp(z_t, dim=1)
    # Binary log-probabilities (target, not target), each (N, 2).
    bin_s = torch.stack([z_s[gt] - lse_s, torch.logsumexp(other_s, dim=1) - lse_s], dim=1)
    bin_t = torch.stack([z_t[gt] - lse_t, torch.logsumexp(other_t, dim=1) - lse_t], dim=1)
    tckd = _kl_rows(bin_t, bin_s).mean() * (t * t)
    nckd = _kl_rows(F.log_softmax(other_t, dim=1), F.log_softmax(other_s, dim=1)).mean() * (t * t)
    return tckd, nckd


class DKDLoss(nn.Module):
    """Decoupled KD: ``min(e/warmup, 1) · (α TCKD + β NCKD)``; called as ``(z_s, z_t, y)``.

    A label of -1 (an unlabelled sample of a transfer set) takes the teacher's top class as its
    target: the split needs a class, and the teacher's is the one it teaches.

    :meth:`set_epoch` (the distiller calls it at each epoch's start, with epochs from 0) drives
    the warm-up; a loss that was never told an epoch applies no warm-up (factor 1).
    """

    def __init__(self, params: DKDParams | None = None) -> None:
        super().__init__()
        self.params = params or DKDParams()
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """The training epoch about to start, counted from 0."""
        self.epoch = int(epoch)

    def warmup_factor(self) -> float:
        warm = self.params.warmup_epochs
        if warm <= 0 or self.epoch is None:
            return 1.0
        return min((self.epoch + 1) / warm, 1.0)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> Tensor:
        p = self.params
        z_s, z_t = prepare_logits(student_logits, teacher_logits, p.standardize)
        # An unlabelled sample (label -1, a transfer set) is split at the teacher's own class.
        targets = torch.where(targets < 0, z_t.argmax(dim=1), targets)
        tckd, nckd = dkd_parts(z_s, z_t, targets, p.temperature)
        return self.warmup_factor() * (p.alpha * tckd + p.beta * nckd)


def pearson_rows(a: Tensor, b: Tensor, eps: float = PEARSON_EPS) -> Tensor:
    """The Pearson correlation of each row of ``a`` with the same row of ``b``.

    Computed in float64 where the device has it (not MPS): the loss is ``1 − ρ`` with ρ near 1
    once the student is good, and float32 loses the difference's leading digits. The tensors
    are (N, C) probabilities, so the cost is nothing next to the networks'.
    """
    wide = torch.float32 if a.device.type == "mps" else torch.float64
    a, b = a.to(wide), b.to(wide)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


class DISTLoss(nn.Module):
    """DIST: ``T² (β inter + γ intra)`` with Pearson relations; called as ``(z_s, z_t)``."""

    def __init__(self, params: DISTParams | None = None) -> None:
        super().__init__()
        self.params = params or DISTParams()

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        p = self.params
        t = float(p.temperature)
        z_s, z_t = prepare_logits(student_logits, teacher_logits, p.standardize)
        wide = torch.float32 if z_s.device.type == "mps" else torch.float64
        y_s = F.softmax(z_s.to(wide) / t, dim=1)
        y_t = F.softmax(z_t.to(wide) / t, dim=1)
        inter = 1.0 - pearson_rows(y_s, y_t).mean()
        intra = 1.0 - pearson_rows(y_s.t(), y_t.t()).mean()
        return ((t * t) * (p.beta * inter + p.gamma * intra)).float()


__all__ = ["DISTLoss", "DKDLoss", "dkd_parts", "pearson_rows"]
