"""One knowledge-distillation step: the student, its adapters and the weighted losses.

The teacher is frozen and deliberately *not* a registered submodule: it is put in eval mode with
``requires_grad`` off, run under ``no_grad``, and kept out of ``.parameters()``,
``.state_dict()`` and ``.train()``, so no optimizer, checkpoint or mode switch can touch it.
Only ``.to()``/``.cuda()``/``.half()`` reach it (see :meth:`Distiller._apply`), so that moving
the distiller moves both networks.

The loss is a list of weighted terms, each a registered loss (``distill.terms``, or the four
terms of the alpha/beta/gamma shorthand); what a term is called with comes from its declared
``inputs`` (labels, teacher logits, or paired feature maps), so a new method needs no change
here. The step is kept lean because it runs millions of times: terms whose weight is 0 are
neither built nor computed (their entries are a shared 0-d zero), hooks are registered only for
the layers a feature loss reads, and with cached teacher logits and no feature losses the
teacher does not run at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kdgui.core.config import DistillConfig
from kdgui.core.errors import CompatibilityError, ConfigError
from kdgui.core.registry import losses
from kdgui.engine.distill.pairing import Pair, TermSetup, resolve_pairs
from kdgui.engine.distill.taps import FeatureTap, check_hookable

#: Weights at or below this are treated as 0 (``1 - 0.7 - 0.2 - 0.1`` is not exactly 0).
_EPS = 1e-9

#: The shorthand's four terms, in the order the old fixed loss reported them.
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


@dataclass
class _Term:
    """One active term on the hot path: its key, weight, loss and what it is called with."""

    key: str
    weight: float
    loss: nn.Module
    inputs: tuple[str, ...]
    pairs: list[Pair]


class Distiller(nn.Module):
    """Holds student + adapters + the loss terms; the teacher is frozen (eval, requires_grad
    False, kept out of ``.parameters()``).

    The terms are ``cfg.resolved_terms()``: the config's ``distill.terms`` list, or the four
    terms its alpha/beta/gamma shorthand means. ``forward(x, y, teacher_logits=None)`` returns
    ``({key of every term..., "total"}, student_logits)``; every entry is a 0-d tensor (terms of
    weight 0 are a shared zero), and only ``total`` needs to be back-propagated. Pass
    ``teacher_logits`` (from :meth:`teacher_logits`, cached per sample) to skip the teacher's
    forward pass when no term needs its feature maps.
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
        *,
        num_samples: int | None = None,
    ) -> None:
        """Build the losses (weight-0 terms are not built), pair layers, add adapters and taps.

        ``teacher`` is changed in place: moved to ``device``, set to eval mode and given
        ``requires_grad=False``. ``input_shape`` is one sample's ``(C, H, W)``, used for one probe
        forward pass that finds the layers' output shapes when a term reads feature maps.
        ``num_samples`` is the training set's size, which a loss that reads sample indices (CRD's
        memory bank) is built for.
        """
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        teacher = teacher.to(self.device).eval().requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: see module docstring
        self.student = student.to(self.device)

        specs = cfg.resolved_terms()
        self.keys = [t.key for t in specs]
        self.weights = {t.key: t.weight for t in specs}
        self.active = {k: w > _EPS for k, w in self.weights.items()}
        components = {t.key: losses.get(t.name) for t in specs}
        inputs = {k: tuple(getattr(c.params, "inputs", ("logits",)))
                  for k, c in components.items()}
        feature_keys = [t.key for t in specs if "features" in inputs[t.key]]
        self.needs_teacher_features = any(self.active[k] for k in feature_keys)
        self.needs_teacher_logits = any(self.active[k] and "logits" in inputs[k] for k in inputs)
        if self.needs_teacher_features:  # before any probe or training: name the formats
            check_hookable(teacher, "teacher")
            check_hookable(self.student, "student")
        self.register_buffer("_zero", torch.zeros((), device=self.device), persistent=False)

        self.pairs = {k: [] for k in feature_keys}
        self._active_terms: list[_Term] = []
        for i, spec in enumerate(specs):
            key = spec.key
            module_name = _module_name(self, key, i)
            if not self.active[key]:
                self.add_module(module_name, None)  # d.soft is None: a term that is off
                continue
            params = spec.validated_params()
            component = components[key]
            pairs: list[Pair] = []
            impl = component.load()
            field = (f"distill.{spec.name}.pairs" if cfg.terms is None
                     else f"distill.terms[{i}].pairs")
            if hasattr(impl, "build"):  # a loss that finds its layers and sizes itself (CRD, ViT)
                loss = impl.build(params, TermSetup(teacher, self.student, input_shape, spec.pairs,
                                                    self.device, field, num_samples))
                pairs = list(getattr(loss, "pairs", []))
                self.pairs[key] = pairs
            elif key in self.pairs:
                rule = getattr(impl, "pair_rule", "any")
                pairs, t_shapes, s_shapes = resolve_pairs(
                    teacher, self.student, input_shape, rule, spec.pairs, self.device, field
                )
                self.pairs[key] = pairs
                if hasattr(impl, "for_shapes"):  # a loss with learned adapters (FitNets)
                    loss = impl.for_shapes(params, [(s_shapes[s], t_shapes[t]) for t, s in pairs])
                else:
                    loss = impl(params)
            else:
                loss = _build(spec.name, params)
            loss = loss.to(self.device)
            self.add_module(module_name, loss)
            # What the taps collect for the term: its layer pairs, or other outputs of them (a
            # ViT term also reads its blocks' attention maps, 'block@attention').
            taps = list(getattr(loss, "tap_pairs", pairs))
            self._active_terms.append(_Term(key, spec.weight, loss, inputs[key], taps))
        self.needs_labels = any("labels" in t.inputs for t in self._active_terms)
        self.needs_index = [t.key for t in self._active_terms if "index" in t.inputs]

        feature_pairs = [p for t in self._active_terms if "features" in t.inputs
                         for p in t.pairs]
        t_layers = list(dict.fromkeys(t for t, _ in feature_pairs))
        s_layers = list(dict.fromkeys(s for _, s in feature_pairs))
        self._t_tap = FeatureTap(teacher, t_layers) if t_layers else None
        self._s_tap = FeatureTap(self.student, s_layers) if s_layers else None

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
        """The student's parameters, then the terms' own (adapters; the teacher has none here)."""
        yield from self.student.parameters()
        for term in self._active_terms:
            yield from term.loss.parameters()

    def route(self, wrapper: nn.Module | None) -> None:
        """Run the student through ``wrapper`` (DistributedDataParallel over the student and
        the adapters, see :mod:`kdgui.engine.distributed`); None: the student itself again.
        The wrapper is not a submodule, so parameters and checkpoints are unchanged."""
        object.__setattr__(self, "_route", wrapper)

    def set_epoch(self, epoch: int) -> None:
        """Tell the terms the epoch about to start (from 0): DKD's warm-up reads it."""
        for term in self._active_terms:
            set_epoch = getattr(term.loss, "set_epoch", None)
            if set_epoch is not None:
                set_epoch(epoch)

    # -- the step ----------------------------------------------------------------------------

    def forward(
        self, x: Tensor, y: Tensor | None, teacher_logits: Tensor | None = None,
        index: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Weighted loss terms and the student's logits for one batch; ``index`` holds each
        sample's index in the training set (read by terms that declare the ``index`` input)."""
        if self.needs_teacher_features or (self.needs_teacher_logits and teacher_logits is None):
            # The teacher runs anyway: its fresh logits are used (cached ones would be equal).
            with torch.no_grad():
                teacher_logits = as_logits(self._teacher(x))
        runner = self.__dict__.get("_route")  # the student under DDP in a distributed run
        student_logits = as_logits((runner if runner is not None else self.student)(x))
        if self.needs_labels and y is None:
            raise ConfigError(
                "a loss term reads labels (hard, dkd, ...), but the batch has none",
                "Provide labels, or remove the terms that read them (with the shorthand, set "
                "alpha + beta + gamma to 1).",
            )
        if self.needs_index and index is None:
            raise ConfigError(
                f"loss term '{self.needs_index[0]}' reads each sample's index in the training "
                "set, but the batches carry none (a DataLoader given directly)",
                "Give the training data as a Dataset (kdgui then indexes it), or remove the "
                "term.",
            )
        zero = self._zero
        terms = dict.fromkeys(self.keys, zero)
        feats = self._features() if self.needs_teacher_features else None
        total: Tensor | None = None
        given = {"logits": teacher_logits, "labels": y, "index": index}
        for term in self._active_terms:
            args = [given[i] for i in term.inputs if i != "features"]
            if "features" in term.inputs:
                assert feats is not None
                s_out, t_out = feats
                value = term.loss([s_out[s] for _, s in term.pairs],
                                  [t_out[t] for t, _ in term.pairs], *args)
            else:
                value = term.loss(student_logits, *args)
            terms[term.key] = value
            part = value * term.weight
            total = part if total is None else total + part
        terms["total"] = total if total is not None else zero
        return terms, student_logits

    def _features(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """This pass's (student, teacher) layer outputs; the taps are emptied at once."""
        assert self._t_tap is not None and self._s_tap is not None
        t_out, s_out = dict(self._t_tap.outputs), dict(self._s_tap.outputs)
        missing = [n for n in self._t_tap.layer_names if n not in t_out] + [
            n for n in self._s_tap.layer_names if n not in s_out
        ]
        # Drop the batch's activations now rather than at the next step.
        self._t_tap.clear()
        self._s_tap.clear()
        if missing:
            raise CompatibilityError(
                f"layer '{missing[0]}' produced no output in this forward pass",
                "Pair layers that run on every forward pass (see the pairs of the distillation "
                "terms, e.g. distill.feature.pairs).",
            )
        return s_out, t_out

    def describe(self) -> dict[str, Any]:
        """Plain data for the run summary: weights, layer pairs and adapters."""
        adapters = [repr(a) for t in self._active_terms
                    for a in getattr(t.loss, "adapters", [])]
        return {
            "weights": dict(self.weights),
            "temperature": self.cfg.temperature,
            "terms": [t.model_dump(mode="json") for t in self.cfg.resolved_terms()],
            "pairs": {k: [list(p) for p in v] for k, v in self.pairs.items()},
            "adapters": adapters,
            "adapter_parameters": sum(p.numel() for t in self._active_terms
                                      for p in t.loss.parameters()),
        }

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={w:g}" for k, w in self.weights.items())
        return f"weights({weights}), teacher={type(self._teacher).__name__} (frozen)"

    def close(self) -> None:
        """Remove the forward hooks from both models (they stay usable on their own)."""
        for tap in (self._t_tap, self._s_tap):
            if tap is not None:
                tap.remove()


def _module_name(distiller: nn.Module, key: str, index: int) -> str:
    """The submodule name of a term: its key (so ``d.soft`` and checkpoints' ``feature.…``
    keys read as before) unless that is not a plain name or is taken, then ``term<i>``."""
    if key.isidentifier() and not hasattr(distiller, key):
        return key
    return f"term{index}"


__all__ = ["TERMS", "Distiller", "Pair", "as_logits"]
