"""The distillation loss as data: a list of weighted terms, each a registered loss.

``distill.terms: [{name, weight, params, pairs, label}]`` is the general form (the
torchdistill ``WeightedSumLoss`` habit): any number of terms, each naming a loss of
:data:`kdgui.core.registry.losses` with parameters validated against that loss's declared model.
The window's term list, the CLI's ``--term`` flags, the loss plot's curves and the run's
``losses`` events all follow this list, so a new method touches none of them.

The older ``alpha``/``beta``/``gamma``/``temperature`` fields stay as a *shorthand* for four
terms (see :func:`shorthand_terms`): ``(1 - a - b - g) hard + a soft + b feature + g attention``,
so every schema-1 config still means exactly what it meant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field, ValidationError, model_serializer, model_validator

from kdgui.core.components.distill import (
    AttentionParams,
    FeatureParams,
    Input,
    Temperature,
    reads,
)
from kdgui.core.params import Params, describe, param
from kdgui.core.registry import losses

#: Weights at or below this are off (``1 - 0.7 - 0.2 - 0.1`` is not exactly 0).
EPS = 1e-9
#: Highest term weight: the authors' weights of relation losses reach a few thousand (SP 3000,
#: PKT 30000 with their per-entry mean); 1e5 leaves room for those.
MAX_WEIGHT = 1e5


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


class TermConfig(Params):
    """One weighted term of the distillation loss."""

    name: str = param("soft", "The registered loss (see 'kdgui methods').")
    # No slider step: the range spans decades, so the window's slider is logarithmic.
    weight: float = param(1.0, "Weight of this term in the total loss.", ge=0.0, le=MAX_WEIGHT)
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="The loss's parameters (see 'kdgui methods').")
    pairs: list[tuple[str, str]] | None = Field(
        None, description="(teacher layer, student layer) pairs for a loss that reads feature "
        "maps; empty means automatic pairing by stage.")
    label: str | None = param(
        None, "Name of the term in the loss plot and reports (default: the loss's name); "
        "needed when one loss is used twice.", max_length=40)

    @model_validator(mode="after")
    def _known_loss_and_params(self) -> TermConfig:
        """The loss exists, its parameters are valid, and ``pairs`` only where features are read,
        checked when the config is read rather than when training reaches the term."""
        if self.name not in losses:
            raise ValueError(f"unknown loss '{self.name}' (known: {_known(losses.names())})")
        model = losses.get(self.name).params
        if "pairs" in self.params:
            raise ValueError(f"give the layer pairs of loss '{self.name}' as the term's 'pairs', "
                             "not inside its params")
        try:
            model.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(param_error(exc, self.name, model)) from None
        if self.pairs is not None and not reads(model, "features"):
            raise ValueError(f"loss '{self.name}' reads no feature maps, so it takes no 'pairs'")
        return self

    @property
    def key(self) -> str:
        """The term's name in loss events, plots and reports."""
        return self.label or self.name

    def validated_params(self) -> Params:
        """The loss's parameter model, with this term's pairs where the model has them."""
        model = losses.get(self.name).params
        values = dict(self.params)
        if "pairs" in model.model_fields and self.pairs is not None:
            values["pairs"] = self.pairs
        return model.model_validate(values)  # type: ignore[return-value]


def param_error(exc: ValidationError, name: str, model: type[Params]) -> str:
    """One sentence naming the bad parameter of a loss, with what is allowed."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    where = f"loss '{name}'"
    if err.get("type") == "extra_forbidden":
        known = [n for n in model.model_fields if n != "pairs"]
        return f"unknown parameter '{loc}' of {where} (known: {_known(known)})"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    spec = next((s for s in describe(model) if s.name == loc), None)
    allowed = f" (allowed: {spec.range_text()})" if spec is not None and spec.range_text() else ""
    value = repr(err.get("input"))[:60]
    return f"parameter '{loc}' of {where} = {value} is invalid: {msg}{allowed}"


def check_term_list(terms: list[TermConfig]) -> None:
    """A list is non-empty and its keys are unique (each is one curve and one event entry)."""
    if not terms:
        raise ValueError("distill.terms is empty: give at least one term, e.g. "
                         "{name: hard, weight: 1}")
    seen: set[str] = set()
    for term in terms:
        if term.key in seen:
            raise ValueError(f"two terms are called '{term.key}'; give one of them a 'label'")
        seen.add(term.key)


def shorthand_terms(cfg: Any) -> list[TermConfig]:
    """The four terms that the ``alpha``/``beta``/``gamma``/``temperature`` shorthand means.

    Weight-0 terms are kept (they are neither built nor computed, and their entries stay 0),
    so a shorthand run reports the same four entries it always did.
    """
    feature = cfg.feature.model_dump(exclude={"pairs"})
    attention = cfg.attention.model_dump(exclude={"pairs"})
    return [
        TermConfig(name="hard", weight=hard_weight(cfg),
                   params={"label_smoothing": cfg.label_smoothing}),
        TermConfig(name="soft", weight=cfg.alpha, params={"temperature": cfg.temperature}),
        TermConfig(name="feature", weight=cfg.beta, params=feature, pairs=cfg.feature.pairs),
        TermConfig(name="attention", weight=cfg.gamma, params=attention,
                   pairs=cfg.attention.pairs),
    ]


def hard_weight(cfg: Any) -> float:
    """The hard-label weight of the shorthand: ``1 - alpha - beta - gamma`` (never below 0)."""
    return max(0.0, 1.0 - cfg.alpha - cfg.beta - cfg.gamma)


def term_text(term: TermConfig, *, html: bool = False) -> str:
    """``0.30·hard`` (or with an HTML subscript), for formulas written from a list."""
    name = f"L<sub>{term.key}</sub>" if html else f"L_{term.key}"
    return f"{term.weight:.2f}·{name}"


def formula(terms: Iterable[TermConfig], *, html: bool = False) -> str:
    """``L = 0.30·L_hard + 0.70·L_soft``: the weighted sum of the terms that are on."""
    shown = [term_text(t, html=html) for t in terms if t.weight > EPS] or ["0"]
    return "L = " + " + ".join(shown)


def pairs_text(pairs: Iterable[Iterable[str]] | None) -> str:
    """Layer pairs as typed in the window: ``layer2>features.4 + layer3>features.7``."""
    return " + ".join(">".join(pair) for pair in pairs or ())


def pairs_from_text(text: str) -> list[list[str]] | None:
    """The pairs of :func:`pairs_text` (``TEACHER>STUDENT`` joined by ``+``); empty text is
    ``None`` (automatic pairing). A malformed pair is a ValueError saying how to write it."""
    pairs = []
    for item in (p.strip() for p in text.split("+") if p.strip()):
        teacher, sep, student = (part.strip() for part in item.partition(">"))
        if not sep or not teacher or not student:
            raise ValueError(f"'{item}' is not a pair: write TEACHER>STUDENT, pairs joined by "
                             "'+' (e.g. layer2>features.4 + layer3>features.7)")
        pairs.append([teacher, student])
    return pairs or None


def describe_terms(terms: Iterable[TermConfig]) -> str:
    """One line per the terms that are on, with their parameters, for ``config --check``."""
    parts = []
    for t in terms:
        if t.weight <= EPS:
            continue
        values = ", ".join(f"{k}={v}" for k, v in t.params.items())
        pairs = f", pairs={[list(p) for p in t.pairs]}" if t.pairs else ""
        parts.append(f"{t.key} (weight {t.weight:g}{': ' + values if values else ''}{pairs})")
    return " + ".join(parts) or "no term with a weight above 0"


def migration_note(data: dict[str, Any]) -> str | None:
    """What a schema-1 config's loss now means, or None for a current config.

    Schema 2 added ``distill.terms``; a schema-1 file's ``alpha``/``beta``/``gamma`` are read as
    the shorthand, unchanged, and this says which terms that is.
    """
    if data.get("schema_version", 1) != 1:
        return None
    section = data.get("distill") or {}
    cfg = DistillConfig.model_validate(section if isinstance(section, dict) else {})
    return ("schema_version 1 → 2: distill alpha/beta/gamma/temperature are now a shorthand "
            f"for distill.terms; this file's loss is {formula(cfg.resolved_terms())} = "
            f"{describe_terms(cfg.resolved_terms())}. It loads and runs unchanged; write "
            "'schema_version: 2' to silence this note.")


class DistillConfig(Params):
    """The distillation loss: a list of weighted ``terms`` (any registered losses), or the
    shorthand ``L = (1-a-b-g) L_hard + a L_soft + b L_feat + g L_att`` (see
    :mod:`kdgui.core.distill_terms`)."""

    alpha: float = param(
        0.7, "Weight a of the soft-target loss.", ge=0.0, le=1.0, step=0.05,
        formula="a · T² KL(softmax(z_t/T) ‖ softmax(z_s/T))",
    )
    beta: float = param(
        0.0, "Weight b of the feature-hint loss (FitNets).", ge=0.0, le=1.0, step=0.05,
        formula="b · ‖r(F_s) − F_t‖²",
    )
    gamma: float = param(
        0.0, "Weight g of the attention-transfer loss.", ge=0.0, le=1.0, step=0.05,
        formula="g · ‖Q_s/‖Q_s‖ − Q_t/‖Q_t‖‖₂",
    )
    temperature: Temperature = 4.0
    label_smoothing: float = param(
        0.0, "Label smoothing of the hard-label loss.", ge=0.0, le=0.5, step=0.01
    )
    feature: FeatureParams = Field(default_factory=FeatureParams)
    attention: AttentionParams = Field(default_factory=AttentionParams)
    terms: list[TermConfig] | None = Field(
        None, description="The loss as any list of weighted terms {name, weight, params, pairs}; "
        "when given, alpha/beta/gamma/temperature/label_smoothing/feature/attention are unused.",
    )

    @model_validator(mode="after")
    def _weights_sum_to_at_most_one(self) -> DistillConfig:
        if self.terms is not None:
            check_term_list(self.terms)
            mixed = sorted(k for k in SHORTHAND & self.model_fields_set
                           if getattr(self, k) != type(self).model_fields[k].get_default(
                               call_default_factory=True))
            if mixed:
                raise ValueError(f"distill.terms and the shorthand distill.{mixed[0]} are both "
                                 "given; write that loss as a term instead")
            return self
        total = self.alpha + self.beta + self.gamma
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"alpha + beta + gamma = {total:g} must be ≤ 1 "
                "(the hard-label weight is 1 - alpha - beta - gamma)"
            )
        return self

    @model_serializer(mode="wrap")
    def _drop_unused_shorthand(self, handler: Any) -> Any:
        """A term-list config is written without the unused shorthand fields (and a shorthand
        one without ``terms: null``), so a saved file says its loss once."""
        data = handler(self)
        if isinstance(data, dict):
            drop = SHORTHAND if self.terms is not None else {"terms"}
            data = {k: v for k, v in data.items() if k not in drop}
        return data

    @property
    def hard_weight(self) -> float:
        return hard_weight(self)

    def resolved_terms(self) -> list[TermConfig]:
        """The loss as terms: the list when given, else what the shorthand means."""
        return list(self.terms) if self.terms is not None else shorthand_terms(self)

    def active_terms(self) -> list[TermConfig]:
        """The terms with a weight above 0 (the others are neither built nor computed)."""
        return [t for t in self.resolved_terms() if t.weight > EPS]

    def finetune_loss(self) -> DistillConfig:
        """The loss a compressed student is fine-tuned with: the run's terms that read no
        feature maps (a compressed model's layers may no longer match the pairs), or the hard
        term alone when nothing else is left. The shorthand keeps its soft + hard form."""
        if self.terms is None:
            return DistillConfig(alpha=self.alpha, temperature=self.temperature,
                                 label_smoothing=self.label_smoothing)
        kept = [t for t in self.terms if not reads(losses.get(t.name).params, "features")]
        return DistillConfig(terms=kept or [TermConfig(name="hard", weight=1.0)])

    def needs(self, what: Input) -> bool:
        """Whether an active term reads ``labels``, ``logits`` (the teacher's) or ``features``."""
        return any(reads(losses.get(t.name).params, what)  # type: ignore[arg-type]
                   for t in self.active_terms())


#: The shorthand's fields, unused (and refused if changed) when ``terms`` is given.
SHORTHAND = frozenset({"alpha", "beta", "gamma", "temperature", "label_smoothing", "feature",
                       "attention"})


__all__ = ["EPS", "SHORTHAND", "DistillConfig", "TermConfig", "check_term_list", "describe_terms",
           "formula", "hard_weight", "migration_note", "pairs_from_text", "pairs_text",
           "param_error", "shorthand_terms"]
