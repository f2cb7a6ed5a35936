"""Contrastive representation distillation (CRD; Tian, Krishnan & Isola, ICLR 2020).

The student learns representations from which the teacher's representation *of the same sample*
can be told apart from the teacher's representations of other samples: a lower bound on the
mutual information between the two (the paper's eq. 18, a noise-contrastive estimate). As in the
authors' code (RepDistiller), with their defaults:

* **Heads.** A learned linear map and L2 normalisation embed each side into ``feat_dim`` (128)
  dimensions; the features are the paired layers' outputs, average-pooled to one vector per
  sample (``pool``, the penultimate feature the paper distils) or flattened. Both heads train
  with the student (the teacher's head too, as in the authors' code: only the teacher's own
  layers are frozen); they are this loss's ``adapters`` and are saved in the checkpoints with it.
* **Memory bank.** Two buffers of one embedding per training sample (student and teacher),
  initialised uniformly in ``±1/sqrt(feat_dim/3)`` and updated after each step for the batch's
  samples: ``m ← normalize(nce_m·m + (1 − nce_m)·v)``. It is state, not parameters: no
  optimizer sees it, checkpoints keep it (a resumed run continues with it).
* **Contrast.** For each sample, the positive is its own index and ``K = min(nce_k, N − 1)``
  negatives are drawn: from samples of another class (the authors' ``exact`` mode; a sample's
  class is learned the first time its index is seen, and unseen or unlabelled samples count as
  another class; after four redraws a rare same-class pick is kept), or uniformly. With
  ``P = exp(<v, m>/t) / Z`` (``Z = N · mean exp(<v, m>/t)`` of the first batch, then fixed) and
  noise ``K/N``, each side's loss is ``−Σ_batch [log h(pos) + Σ_k log(1 − h(neg_k))] / B`` with
  ``h = P / (P + K/N)`` (a logistic loss on ``log P − log(K/N)``); the student's embedding is
  contrasted with the teacher's bank and the teacher's embedding with the student's bank, and
  the two are added.

Computed in float32 in log space (``log h = log σ(log P − log(K/N))``), so no temperature
overflows ``exp``; the authors' ``eps = 1e-7`` guard is then unnecessary (their value
differs from this one by less than 1e-6 relative). Autocast is off inside this loss: a head under
fp16 overflows on large features before it normalises them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgui.core.components.distill import CRDParams
from kdgui.core.errors import ConfigError
from kdgui.engine.distill.pairing import TermSetup
from kdgui.engine.distill.relation_methods import embed
from kdgui.engine.distill.taps import Shape

#: Redraws of a negative that fell in its anchor's class (``other_class`` negatives).
REDRAWS = 4


def feature_size(shape: Shape, pool: bool) -> int:
    """Size of one sample's embedding input: C for a pooled (C, H, W) map, else all values."""
    if pool and len(shape) == 3:
        return int(shape[0])
    return int(math.prod(shape))


class Head(nn.Module):
    """Linear map then L2 normalisation (the authors' ``Embed``), in float32."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.linear(x.float()), dim=1)


class ContrastBank(nn.Module):
    """One pair's memory bank (both sides' embeddings of every sample) and its NCE loss."""

    def __init__(self, feat_dim: int, num_samples: int, params: CRDParams) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.k = max(1, min(int(params.nce_k), num_samples - 1))
        self.t = float(params.nce_t)
        self.momentum = float(params.nce_m)
        self.other_class = params.negatives == "other_class"
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        for side in ("student", "teacher"):
            self.register_buffer(f"memory_{side}",
                                 torch.rand(num_samples, feat_dim).mul_(2 * stdv).sub_(stdv))
        self.register_buffer("labels", torch.full((num_samples,), -1, dtype=torch.long))
        #: log Z of the student's and the teacher's contrast; NaN until the first batch sets it.
        self.register_buffer("log_z", torch.full((2,), float("nan")))

    def draw(self, index: Tensor, labels: Tensor | None) -> Tensor:
        """(B, K + 1) bank rows: each sample's own index, then K negatives."""
        b, n = index.shape[0], self.num_samples
        neg = torch.randint(0, n, (b, self.k), device=index.device)
        if self.other_class and labels is not None:
            anchor = labels.view(-1)
            rows, cols = ((self.labels[neg] == anchor.view(-1, 1))
                          & (anchor >= 0).view(-1, 1)).nonzero(as_tuple=True)
            for _ in range(REDRAWS):  # only the picks that fell in their anchor's class
                if rows.numel() == 0:
                    break
                fresh = torch.randint(0, n, (rows.numel(),), device=index.device)
                neg[rows, cols] = fresh
                again = self.labels[fresh] == anchor[rows]
                rows, cols = rows[again], cols[again]
        return torch.cat([index.view(-1, 1), neg], dim=1)

    @staticmethod
    def scores(memory: Tensor, rows: Tensor, v: Tensor) -> Tensor:
        """``<v_i, memory[rows[i, j]]>``. Gathering the rows copies B·(K + 1) embeddings (with
        the authors' K = 16384 and batch 64, 0.5 GB per side and step); when that is more than
        the whole bank, one product with the bank is cheaper. The bank is read through a copy
        (the gather is one; the product's operand is cloned): the backward pass needs it after
        the bank was updated in place."""
        if rows.numel() >= memory.shape[0]:
            return (v @ memory.t().clone()).gather(1, rows)
        return torch.bmm(memory[rows], v.unsqueeze(2)).squeeze(2)

    def _nce(self, scores: Tensor, slot: int) -> Tensor:
        """The NCE loss of one side from its ``<v, m>`` scores (column 0 is the positive).

        With ``d = log P − log(K/N)``: ``log h = log σ(d)`` and ``log(1 − h) = log σ(−d)``, the
        paper's eq. (18) as one logistic loss, stable for any temperature."""
        logits = scores / self.t
        if torch.isnan(self.log_z[slot]):  # the first batch fixes Z = N · mean exp(<v, m>/t)
            with torch.no_grad():
                self.log_z[slot] = (torch.logsumexp(logits.flatten(), 0)
                                    - math.log(logits.numel()) + math.log(self.num_samples))
        d = logits - (self.log_z[slot] + math.log(self.k / self.num_samples))
        signed = torch.cat([d[:, :1], -d[:, 1:]], dim=1)
        return -F.logsigmoid(signed).sum() / scores.shape[0]

    def forward(self, v_s: Tensor, v_t: Tensor, index: Tensor, labels: Tensor | None) -> Tensor:
        with torch.no_grad():
            rows = self.draw(index, labels)
        loss = (self._nce(self.scores(self.memory_teacher, rows, v_s), 0)
                + self._nce(self.scores(self.memory_student, rows, v_t), 1))
        with torch.no_grad():  # after the contrast, as in the authors' code
            for memory, v in ((self.memory_student, v_s), (self.memory_teacher, v_t)):
                memory[index] = F.normalize(memory[index] * self.momentum
                                            + v.detach() * (1 - self.momentum), dim=1)
            if labels is not None:
                self.labels[index] = labels
        return loss


class CRDLoss(nn.Module):
    """CRD over the layer pairs (by default one: the deepest stage ends), averaged over pairs.

    ``forward(student_feats, teacher_feats, index, labels)``; ``index`` is each sample's index in
    the training set of ``num_samples`` samples.
    """

    def __init__(self, params: CRDParams, dims: Sequence[tuple[int, int]],
                 num_samples: int) -> None:
        super().__init__()
        if num_samples < 2:
            raise ConfigError(
                f"CRD needs a training set of at least 2 samples (its memory bank holds one "
                f"entry per sample), got {num_samples}",
                "Give the run more training samples, or remove the crd term.")
        self.params = params
        self.num_samples = num_samples
        heads: list[nn.Module] = []
        for d_s, d_t in dims:
            heads += [Head(d_s, params.feat_dim), Head(d_t, params.feat_dim)]
        #: Student and teacher heads, alternating; what the run trains, saves and reports.
        self.adapters = nn.ModuleList(heads)
        self.banks = nn.ModuleList(ContrastBank(params.feat_dim, num_samples, params)
                                   for _ in dims)
        self.pairs: list[tuple[str, str]] = []

    @classmethod
    def build(cls, params: CRDParams, setup: TermSetup) -> CRDLoss:
        """Heads sized from the probed layers; without pairs, the deepest stage ends only."""
        if setup.num_samples is None:
            raise ConfigError(
                "the crd term needs the training set's size (its memory bank holds one "
                "embedding per sample)",
                "Build the distiller with num_samples=len(training set).")
        pairs, t_shapes, s_shapes = setup.resolve("any", deepest_only=True)
        dims = [(feature_size(s_shapes[s], params.pool), feature_size(t_shapes[t], params.pool))
                for t, s in pairs]
        loss = cls(params, dims, int(setup.num_samples))
        loss.pairs = list(pairs)
        return loss

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
                index: Tensor, labels: Tensor | None = None) -> Tensor:
        if len(student_feats) != len(teacher_feats) or len(student_feats) != len(self.banks):
            raise ValueError(f"CRDLoss was built for {len(self.banks)} layer pair(s), got "
                             f"{len(student_feats)} student and {len(teacher_feats)} teacher "
                             "features")
        device = student_feats[0].device
        index = index.to(device).long().view(-1)
        labels = labels.to(device).long().view(-1) if labels is not None else None
        total = torch.zeros((), device=device)
        with torch.autocast(device.type, enabled=False):
            for i, (s, t) in enumerate(zip(student_feats, teacher_feats, strict=True)):
                v_s = self.adapters[2 * i](embed(s, self.params.pool))
                v_t = self.adapters[2 * i + 1](embed(t.detach(), self.params.pool))
                total = total + self.banks[i](v_s, v_t, index, labels)
        return total / len(self.banks)


__all__ = ["CRDLoss", "ContrastBank", "Head", "feature_size"]
