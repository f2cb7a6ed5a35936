"""The classic distillation losses, each an ``nn.Module`` built from its declared parameters.

The run's loss is a weighted sum of terms (``distill.terms``, or the shorthand
``L = (1 - a - b - g) L_hard + a L_soft + b L_feat + g L_att``; see
:mod:`kdgui.core.distill_terms`); :class:`kdgui.engine.distill.distiller.Distiller` combines
them. Newer logit methods (DKD, DIST) live in :mod:`kdgui.engine.distill.logit_methods`. Every loss takes the student's output first and the teacher's second, and
never back-propagates into the teacher's side (its tensors are detached).

Choices this module makes, where the papers leave room:

* **Soft targets** (Hinton et al. 2015): ``T² · KL(p_t ‖ p_s)`` with ``p = softmax(z / T)``,
  summed over classes and averaged over the batch (``batchmean``, the true KL per sample). The
  ``T²`` factor keeps the gradient's size independent of ``T``, so ``alpha`` means the same at
  every temperature. Computed in float32 even under mixed precision.
* **Feature hints** (FitNets, Romero et al. 2015): the student's map goes through a learned
  adapter (a 1×1 convolution, or a linear layer for vectors; the identity when the channel counts
  already agree) and is then brought to the *teacher's* spatial size: adaptive average pooling
  when the student's map is larger, bilinear interpolation when it is smaller. Both resizes are
  linear and preserve constants, so they commute with the 1×1 adapter; the cheaper order is
  used. The distance (``mse``/``l1``/``smooth_l1``) is averaged over elements, then over pairs.
* **Attention transfer** (Zagoruyko & Komodakis 2017): ``Q = mean_c |A_c|^p`` flattened and
  L2-normalised per sample; when the two maps differ in size the larger is adaptively
  average-pooled to the smaller. The distance is the paper's equation (2), the *unsquared*
  ``‖Q_s/‖Q_s‖ − Q_t/‖Q_t‖‖₂`` per sample, averaged over the batch and then over pairs. (The
  authors' code uses the squared difference averaged over positions, which shrinks with the map
  size and needs a weight of about 1000; the unsquared per-sample norm lies in [0, 2] whatever
  the map size, so ``gamma`` is on the same scale as the other weights.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgui.core.components.distill import AttentionParams, FeatureParams, HardParams, SoftParams
from kdgui.core.errors import ConfigError

Shape = tuple[int, ...]


def softmax_at_temperature(logits: np.ndarray, T: float, axis: int = -1) -> np.ndarray:
    """``softmax(logits / T)`` along ``axis`` in float64, stable for any logit size.

    Used by the window's soft-target explorer, which needs no torch for a slider's redraw.
    """
    if not T > 0:
        raise ConfigError(f"temperature T = {T!r} must be > 0", "Use a temperature above 0.")
    z = np.asarray(logits, dtype=np.float64) / float(T)
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


class HardLoss(nn.Module):
    """Cross-entropy of the student's logits against the true labels (with label smoothing)."""

    def __init__(self, params: HardParams | None = None) -> None:
        super().__init__()
        self.params = params or HardParams()
        self.label_smoothing = float(self.params.label_smoothing)

    def forward(self, student_logits: Tensor, targets: Tensor) -> Tensor:
        """Mean over the *labelled* samples: label -1 marks an unlabelled one (a transfer set
        without labels, :mod:`kdgui.engine.data.transfer`), which only the teacher teaches. A
        batch with no label at all contributes 0 (cross-entropy would return 0/0 = NaN)."""
        if bool((targets == -1).all()):
            return student_logits.sum() * 0.0  # keeps the graph, so backward() still works
        return F.cross_entropy(student_logits, targets, ignore_index=-1,
                               label_smoothing=self.label_smoothing)


#: Added to the standard deviation in logit standardization, as in the authors' code.
STANDARDIZE_EPS = 1e-7


def standardize_logits(logits: Tensor) -> Tensor:
    """Logit standardization (Sun et al. 2024): each row z-scored, ``(z - mean) / (std + 1e-7)``.

    ``std`` is the sample standard deviation (Bessel-corrected, torch's default), as in the
    authors' code. A student then matches the teacher's logit *relations* rather than their
    range, which a smaller student may not be able to reach. Computed in float32.
    """
    z = logits.float()
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + STANDARDIZE_EPS)


def prepare_logits(student: Tensor, teacher: Tensor, standardize: bool) -> tuple[Tensor, Tensor]:
    """Both sides in float32, the teacher's detached, z-scored when ``standardize`` is on."""
    s, t = student.float(), teacher.detach().float()
    if standardize:
        s, t = standardize_logits(s), standardize_logits(t)
    return s, t


class SoftTargetLoss(nn.Module):
    """``T² · KL(softmax(z_t/T) ‖ softmax(z_s/T))``, batch mean (Hinton et al. 2015); with
    ``standardize`` the logits are z-scored first (Sun et al. 2024)."""

    def __init__(self, params: SoftParams | None = None) -> None:
        super().__init__()
        self.params = params or SoftParams()
        self.temperature = float(self.params.temperature)
        self.standardize = bool(self.params.standardize)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        t = self.temperature
        z_s, z_t = prepare_logits(student_logits, teacher_logits, self.standardize)
        log_p_s = F.log_softmax(z_s / t, dim=1)
        log_p_t = F.log_softmax(z_t / t, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return kl * (t * t)


def hint_adapter(student_shape: Shape, teacher_shape: Shape) -> nn.Module:
    """The learned map from a student feature to the teacher's channel count.

    ``(C, H, W)`` shapes get a 1×1 convolution, ``(C,)`` shapes a linear layer; equal channel
    counts get the identity (nothing to learn, nothing to slow the step down).
    """
    if len(student_shape) != len(teacher_shape) or len(student_shape) not in (1, 3):
        raise ConfigError(
            f"cannot map a student feature of shape {tuple(student_shape)} onto a teacher "
            f"feature of shape {tuple(teacher_shape)}",
            "Pair two feature maps (C, H, W) or two feature vectors (C,).",
        )
    c_s, c_t = int(student_shape[0]), int(teacher_shape[0])
    if c_s == c_t:
        return nn.Identity()
    if len(student_shape) == 3:
        return nn.Conv2d(c_s, c_t, kernel_size=1)
    return nn.Linear(c_s, c_t)


def resize_map(x: Tensor, size: Sequence[int]) -> Tensor:
    """``x`` (N, C, H, W) at spatial ``size``: average-pooled down, bilinearly interpolated up."""
    h, w = int(size[0]), int(size[1])
    if x.shape[-2] == h and x.shape[-1] == w:
        return x
    if x.shape[-2] >= h and x.shape[-1] >= w:
        return F.adaptive_avg_pool2d(x, (h, w))
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


_DISTANCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "smooth_l1": F.smooth_l1_loss,
}


class FeatureHintLoss(nn.Module):
    """FitNets hints: ``mean_pairs distance(resize(r(F_s)), F_t)`` with learned adapters ``r``.

    ``adapters[i]`` adapts the i-th student feature; missing adapters are the identity. The
    adapters are this module's only parameters, so they train with the student.
    """

    #: How the distiller checks this loss's layer pairs (see :mod:`.pairing`).
    pair_rule = "feature"

    def __init__(
        self, params: FeatureParams | None = None, adapters: Iterable[nn.Module] | None = None
    ) -> None:
        super().__init__()
        self.params = params or FeatureParams()
        self.adapters = nn.ModuleList(list(adapters or []))
        self._distance = _DISTANCES[self.params.distance]

    @classmethod
    def for_shapes(
        cls, params: FeatureParams | None, shape_pairs: Iterable[tuple[Shape, Shape]]
    ) -> FeatureHintLoss:
        """A loss with one adapter per ``(student_shape, teacher_shape)`` pair (no batch dim)."""
        return cls(params, [hint_adapter(s, t) for s, t in shape_pairs])

    def _adapt(self, i: int, s: Tensor, t: Tensor) -> Tensor:
        adapter = self.adapters[i] if i < len(self.adapters) else None
        if s.dim() != 4:
            return adapter(s) if adapter is not None else s
        shrink = s.shape[-2] * s.shape[-1] >= t.shape[-2] * t.shape[-1]
        if shrink:
            s = resize_map(s, t.shape[-2:])
        if adapter is not None:
            s = adapter(s)
        return s if shrink else resize_map(s, t.shape[-2:])

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        if len(student_feats) != len(teacher_feats) or not student_feats:
            raise ValueError(
                f"FeatureHintLoss needs as many student features ({len(student_feats)}) as "
                f"teacher features ({len(teacher_feats)}), at least one"
            )
        total: Tensor | None = None
        for i, (s, t) in enumerate(zip(student_feats, teacher_feats, strict=True)):
            t = t.detach()
            term = self._distance(self._adapt(i, s, t).float(), t.float())
            total = term if total is None else total + term
        assert total is not None
        return total / len(student_feats)


def attention_map(feature: Tensor, p: float = 2.0) -> Tensor:
    """``mean_c |A_c|^p`` of a (N, C, H, W) map: (N, H, W), in float32, not yet normalised."""
    a = feature.float()
    a = a.pow(2) if p == 2.0 else a.abs().pow(p)
    return a.mean(dim=1)


class AttentionTransferLoss(nn.Module):
    """Attention transfer: ``mean_pairs mean_batch ‖Q_s/‖Q_s‖ − Q_t/‖Q_t‖‖₂`` (unsquared)."""

    pair_rule = "attention"

    def __init__(self, params: AttentionParams | None = None) -> None:
        super().__init__()
        self.params = params or AttentionParams()
        self.p = float(self.params.p)

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        if len(student_feats) != len(teacher_feats) or not student_feats:
            raise ValueError(
                f"AttentionTransferLoss needs as many student features ({len(student_feats)}) "
                f"as teacher features ({len(teacher_feats)}), at least one"
            )
        total: Tensor | None = None
        for s, t in zip(student_feats, teacher_feats, strict=True):
            q_s = attention_map(s, self.p)
            q_t = attention_map(t.detach(), self.p)
            if q_s.shape[-2:] != q_t.shape[-2:]:
                size = (min(q_s.shape[-2], q_t.shape[-2]), min(q_s.shape[-1], q_t.shape[-1]))
                q_s = F.adaptive_avg_pool2d(q_s.unsqueeze(1), size).squeeze(1)
                q_t = F.adaptive_avg_pool2d(q_t.unsqueeze(1), size).squeeze(1)
            q_s = F.normalize(q_s.flatten(1), dim=1)
            q_t = F.normalize(q_t.flatten(1), dim=1)
            term = torch.linalg.vector_norm(q_s - q_t, dim=1).mean()
            total = term if total is None else total + term
        assert total is not None
        return total / len(student_feats)


__all__ = [
    "AttentionTransferLoss",
    "FeatureHintLoss",
    "HardLoss",
    "SoftTargetLoss",
    "attention_map",
    "hint_adapter",
    "prepare_logits",
    "resize_map",
    "softmax_at_temperature",
    "standardize_logits",
]
