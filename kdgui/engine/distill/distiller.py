"""One knowledge-distillation step: the student, its adapters and the weighted losses.

The teacher is frozen and deliberately *not* a registered submodule: it is put in eval mode with
``requires_grad`` off, run under ``no_grad``, and kept out of ``.parameters()``,
``.state_dict()`` and ``.train()``, so no optimizer, checkpoint or mode switch can touch it.
Only ``.to()``/``.cuda()``/``.half()`` reach it (see :meth:`Distiller._apply`), so that moving
the distiller moves both networks.

The step is kept lean because it runs millions of times: terms whose weight is 0 are neither
built nor computed (their entries are a shared 0-d zero), hooks are registered only for the
layers a feature or attention loss reads, and with cached teacher logits and no feature losses
the teacher does not run at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from kdgui.core.config import DistillConfig
from kdgui.core.errors import CompatibilityError, ConfigError
from kdgui.core.registry import losses
from kdgui.engine.distill.losses import (
    AttentionTransferLoss,
    FeatureHintLoss,
    HardLoss,
    SoftTargetLoss,
    hint_adapter,
)
from kdgui.engine.distill.pairing import Pair, resolve_pairs
from kdgui.engine.distill.taps import FeatureTap, check_hookable

#: Weights at or below this are treated as 0 (``1 - 0.7 - 0.2 - 0.1`` is not exactly 0).
_EPS = 1e-9

TERMS = ("hard", "soft", "feature", "attention")


def as_logits(output: Any) -> Tensor:
    """The logits of a model's output: a tensor, the first item of a tuple, or ``["logits"]``."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def _build(name: str, params: Any, *args: Any) -> Any:
    """Instantiate the registered loss ``name`` from its validated parameter model.

    Going through the registry (not the classes imported above) means a plugin that replaces a
    built-in loss's implementation is honoured here too.
    """
    component = losses.get(name)
    if not isinstance(params, component.params):
        params = component.validate(params, where=f"distill ({name} loss)")
    return component.load()(params, *args)


class Distiller(nn.Module):
    """Holds student + adapters + losses; the teacher is frozen (eval, requires_grad False, kept
    out of ``.parameters()``).

    ``forward(x, y, teacher_logits=None)`` returns ``({"hard", "soft", "feature", "attention",
    "total"}, student_logits)``; every entry is a 0-d tensor, and only ``total`` needs to be
    back-propagated. Pass ``teacher_logits`` (from :meth:`teacher_logits`, cached per sample) to
    skip the teacher's forward pass when no feature or attention loss needs its feature maps.
    """

    pairs: dict[str, list[tuple[str, str]]]
    needs_teacher_features: bool

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        cfg: DistillConfig,
        input_shape: tuple[int, int, int],
        device: torch.device | str = "cpu",
    ) -> None:
        """Build the losses (weight-0 terms are not built), pair layers, add adapters and taps.

        ``teacher`` is changed in place: moved to ``device``, set to eval mode and given
        ``requires_grad=False``. ``input_shape`` is one sample's ``(C, H, W)``, used for one probe
        forward pass that finds the layers' output shapes when a feature or attention loss is on.
        """
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        teacher = teacher.to(self.device).eval().requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: see module docstring
        self.student = student.to(self.device)

        self.weights = {
            "hard": cfg.hard_weight,
            "soft": cfg.alpha,
            "feature": cfg.beta,
            "attention": cfg.gamma,
        }
        self.active = {k: w > _EPS for k, w in self.weights.items()}
        self.needs_teacher_features = self.active["feature"] or self.active["attention"]
        if self.needs_teacher_features:  # before any probe or training: name the formats
            check_hookable(teacher, "teacher")
            check_hookable(self.student, "student")
        self.register_buffer("_zero", torch.zeros((), device=self.device), persistent=False)

        self.hard: HardLoss | None = None
        self.soft: SoftTargetLoss | None = None
        self.feature: FeatureHintLoss | None = None
        self.attention: AttentionTransferLoss | None = None
        if self.active["hard"]:
            self.hard = _build("hard", {"label_smoothing": cfg.label_smoothing})
        if self.active["soft"]:
            self.soft = _build("soft", {"temperature": cfg.temperature})

        self.pairs = {"feature": [], "attention": []}
        if self.active["feature"]:
            pairs, t_shapes, s_shapes = resolve_pairs(
                teacher, self.student, input_shape, "feature", cfg.feature.pairs, self.device
            )
            self.pairs["feature"] = pairs
            adapters = [hint_adapter(s_shapes[s], t_shapes[t]) for t, s in pairs]
            self.feature = _build("feature", cfg.feature, adapters).to(self.device)
        if self.active["attention"]:
            pairs, _, _ = resolve_pairs(
                teacher, self.student, input_shape, "attention", cfg.attention.pairs, self.device
            )
            self.pairs["attention"] = pairs
            self.attention = _build("attention", cfg.attention)

        t_layers = [t for kind in ("feature", "attention") for t, _ in self.pairs[kind]]
        s_layers = [s for kind in ("feature", "attention") for _, s in self.pairs[kind]]
        self._t_tap = FeatureTap(teacher, t_layers) if t_layers else None
        self._s_tap = FeatureTap(self.student, s_layers) if s_layers else None
        # Plain Python lists on the hot path: no dict/list rebuilding per step.
        self._terms = [k for k in TERMS if self.active[k]]

    # -- the frozen teacher ------------------------------------------------------------------

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a submodule of this distiller)."""
        return self._teacher  # type: ignore[no-any-return]

    def _apply(self, fn: Any, recurse: bool = True) -> Distiller:  # type: ignore[override]
        """Move/cast the teacher along with the distiller (``.to``, ``.cuda``, ``.half``)."""
        super()._apply(fn, recurse)
        self._teacher._apply(fn, recurse)
        return self

    def teacher_logits(self, x: Tensor) -> Tensor:
        """The teacher's logits for ``x``, without a graph (for caching per sample)."""
        with torch.no_grad():
            out = as_logits(self._teacher(x))
        if self._t_tap is not None:
            self._t_tap.clear()
        return out

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The student's parameters, then the feature adapters' (the teacher has none here)."""
        yield from self.student.parameters()
        if self.feature is not None:
            yield from self.feature.parameters()

    # -- the step ----------------------------------------------------------------------------

    def forward(
        self, x: Tensor, y: Tensor | None, teacher_logits: Tensor | None = None
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Weighted loss terms and the student's logits for one batch."""
        needs_logits = self.soft is not None
        if self.needs_teacher_features or (needs_logits and teacher_logits is None):
            # The teacher runs anyway: its fresh logits are used (cached ones would be equal).
            with torch.no_grad():
                teacher_logits = as_logits(self._teacher(x))
        student_logits = as_logits(self.student(x))

        zero = self._zero
        terms = {"hard": zero, "soft": zero, "feature": zero, "attention": zero}
        if self.hard is not None:
            if y is None:
                raise ConfigError(
                    "the hard-label loss needs labels, but the batch has none",
                    "Provide labels, or set alpha + beta + gamma to 1.",
                )
            terms["hard"] = self.hard(student_logits, y)
        if self.soft is not None:
            assert teacher_logits is not None
            terms["soft"] = self.soft(student_logits, teacher_logits)
        if self.needs_teacher_features:
            self._feature_terms(terms)

        w = self.weights
        total: Tensor | None = None
        for k in self._terms:
            part = terms[k] * w[k]
            total = part if total is None else total + part
        terms["total"] = total if total is not None else zero
        return terms, student_logits

    def _feature_terms(self, terms: dict[str, Tensor]) -> None:
        assert self._t_tap is not None and self._s_tap is not None
        t_out, s_out = self._t_tap.outputs, self._s_tap.outputs
        missing = [n for n in self._t_tap.layer_names if n not in t_out] + [
            n for n in self._s_tap.layer_names if n not in s_out
        ]
        if missing:
            self._t_tap.clear()
            self._s_tap.clear()
            raise CompatibilityError(
                f"layer '{missing[0]}' produced no output in this forward pass",
                "Pair layers that run on every forward pass (see distill.feature.pairs and "
                "distill.attention.pairs).",
            )
        try:
            if self.feature is not None:
                pairs = self.pairs["feature"]
                terms["feature"] = self.feature(
                    [s_out[s] for _, s in pairs], [t_out[t] for t, _ in pairs]
                )
            if self.attention is not None:
                pairs = self.pairs["attention"]
                terms["attention"] = self.attention(
                    [s_out[s] for _, s in pairs], [t_out[t] for t, _ in pairs]
                )
        finally:
            # Drop the batch's activations now rather than at the next step.
            self._t_tap.clear()
            self._s_tap.clear()

    def describe(self) -> dict[str, Any]:
        """Plain data for the run summary: weights, layer pairs and adapters."""
        adapters = [] if self.feature is None else [repr(a) for a in self.feature.adapters]
        return {
            "weights": dict(self.weights),
            "temperature": self.cfg.temperature,
            "pairs": {k: [list(p) for p in v] for k, v in self.pairs.items()},
            "adapters": adapters,
            "adapter_parameters": 0
            if self.feature is None
            else sum(p.numel() for p in self.feature.parameters()),
        }

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={w:g}" for k, w in self.weights.items())
        return f"weights({weights}), teacher={type(self._teacher).__name__} (frozen)"

    def close(self) -> None:
        """Remove the forward hooks from both models (they stay usable on their own)."""
        for tap in (self._t_tap, self._s_tap):
            if tap is not None:
                tap.remove()


__all__ = ["TERMS", "Distiller", "Pair", "as_logits"]
