"""Relation-based feature distillation: RKD, PKT and similarity-preserving KD.

These losses compare how the *samples of a batch* relate to each other in the teacher's and the
student's feature spaces, never the features themselves, so teacher and student features may
have any sizes and no adapter is learned (pair rule ``any``). Each paired layer's output is one
embedding per sample: a (N, C, H, W) map is global-average-pooled to (N, C) when ``pool`` is on
(the pooled penultimate feature is what the authors' CIFAR code distils), otherwise flattened.
Losses are averaged over the layer pairs, like the other feature losses here. The teacher's side
is detached; everything is computed in float32.

* **RKD** (Park et al. 2019): distance-wise ``ψ_D = ‖e_i − e_j‖ / μ`` (μ the mean distance
  over pairs i ≠ j) and angle-wise ``ψ_A = cos ∠(e_i − e_j, e_k − e_j)``, each compared with the
  Huber (smooth-L1) loss, averaged over all entries as in the authors' code.
* **PKT** (Passalis & Tefas 2018): cosine similarities mapped to [0, 1], ``(cos + 1) / 2``,
  normalised per row into conditional distributions ``p(j | i)``, and ``KL(p_t ‖ p_s)`` summed
  over j and averaged over i (the paper's sum; the authors' code averages over all N² entries,
  i.e. this divided by N, and weights it by 30000).
* **SP** (Tung & Mori 2019): ``G = normalize_rows(E Eᵀ)`` for each network and
  ``‖G_t − G_s‖_F² / N²``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgui.core.components.distill import PKTParams, RKDParams, SPParams

#: Guards as in the authors' code: RKD's squared distances are clamped at this before the root,
#: PKT adds it to norms and probabilities.
RKD_EPS = 1e-12
PKT_EPS = 1e-7


def embed(x: Tensor, pool: bool) -> Tensor:
    """One float32 vector per sample: a 4-D map average-pooled (or flattened), others flattened."""
    x = x.float()
    if pool and x.dim() == 4:
        return x.mean(dim=(2, 3))
    return x.flatten(1)


def _check(name: str, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> None:
    if len(student) != len(teacher) or not student:
        raise ValueError(f"{name} needs as many student features ({len(student)}) as teacher "
                         f"features ({len(teacher)}), at least one")


def pairwise_distances(e: Tensor) -> Tensor:
    """(N, N) Euclidean distances with an exact zero diagonal."""
    sq = e.pow(2).sum(dim=1)
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * e @ e.t()).clamp(min=RKD_EPS)
    d = d2.sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def rkd_distance(s: Tensor, t: Tensor) -> Tensor:
    """Huber loss between the two networks' distance matrices, each over its mean distance."""
    with torch.no_grad():
        d_t = pairwise_distances(t)
        d_t = d_t / d_t[d_t > 0].mean()
    d_s = pairwise_distances(s)
    d_s = d_s / d_s[d_s > 0].mean()
    return F.smooth_l1_loss(d_s, d_t)


def angles(e: Tensor) -> Tensor:
    """All ``cos ∠(e_i − e_j, e_k − e_j)``, flattened (N³ values)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


def rkd_angle(s: Tensor, t: Tensor) -> Tensor:
    with torch.no_grad():
        a_t = angles(t)
    return F.smooth_l1_loss(angles(s), a_t)


class _RelationLoss(nn.Module):
    """A relation loss between the student's and the teacher's batch of embeddings, averaged
    over the layer pairs: subclasses give ``pair_loss(e_s, e_t)``; the pair check, the
    embedding (``params.pool``), the teacher's detach and the average live here once."""

    pair_rule = "any"

    def __init__(self, params: Any) -> None:
        super().__init__()
        self.params = params

    def pair_loss(self, e_s: Tensor, e_t: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        _check(type(self).__name__, student_feats, teacher_feats)
        total = torch.zeros((), device=student_feats[0].device)
        for s, t in zip(student_feats, teacher_feats, strict=True):
            total = total + self.pair_loss(embed(s, self.params.pool),
                                           embed(t.detach(), self.params.pool))
        return total / len(student_feats)


class RKDLoss(_RelationLoss):
    """``w_d · distance + w_a · angle``, averaged over the layer pairs."""

    def __init__(self, params: RKDParams | None = None) -> None:
        super().__init__(params or RKDParams())

    def pair_loss(self, e_s: Tensor, e_t: Tensor) -> Tensor:
        p = self.params
        loss = torch.zeros((), device=e_s.device)
        if p.distance_weight > 0:
            loss = loss + p.distance_weight * rkd_distance(e_s, e_t)
        if p.angle_weight > 0:
            loss = loss + p.angle_weight * rkd_angle(e_s, e_t)
        return loss


def pkt_conditional(e: Tensor) -> Tensor:
    """Rows ``p(j | i)`` from cosine similarities mapped to [0, 1]."""
    e = e / (e.norm(dim=1, keepdim=True) + PKT_EPS)
    sim = (e @ e.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


class PKTLoss(_RelationLoss):
    """``mean_i Σ_j p_t(j|i) log(p_t(j|i) / p_s(j|i))``, averaged over the layer pairs."""

    def __init__(self, params: PKTParams | None = None) -> None:
        super().__init__(params or PKTParams())

    def pair_loss(self, e_s: Tensor, e_t: Tensor) -> Tensor:
        p_s, p_t = pkt_conditional(e_s), pkt_conditional(e_t)
        return (p_t * torch.log((p_t + PKT_EPS) / (p_s + PKT_EPS))).sum(dim=1).mean()


def similarity(e: Tensor) -> Tensor:
    """``normalize_rows(E Eᵀ)``: the (N, N) batch similarity of SP."""
    return F.normalize(e @ e.t(), p=2, dim=1)


class SPLoss(_RelationLoss):
    """``‖G_t − G_s‖_F² / N²``, averaged over the layer pairs."""

    def __init__(self, params: SPParams | None = None) -> None:
        super().__init__(params or SPParams())

    def pair_loss(self, e_s: Tensor, e_t: Tensor) -> Tensor:
        g_s, g_t = similarity(e_s), similarity(e_t)
        n = g_s.shape[0]
        return (g_t - g_s).pow(2).sum() / (n * n)
