"""What a compression method needs and makes (its traits), and how a method is declared with them.

Each compression method is declared once, in ``kdgui/core/components/compression.py``, by
:func:`declare_method`, which registers it (parameters, engine implementation, texts) in the
registry of its step kind and records its :class:`MethodTraits` beside it. The pipeline's checks,
the config's validation, the sweep's bit count, the CLI's ``--quantize`` choices and the window's
method lists read the traits through :func:`method_traits`, :func:`methods_of` and
:func:`int8_methods`, so a new method is one declaration (plus its engine module and its test),
with no list of method names anywhere else. Torch-free (core).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from kdgui.core.errors import ConfigError
from kdgui.core.registry import REGISTRIES, Component, register

#: A compression step's ``kind`` → the registry of its methods (``finetune`` steps have none).
STEP_KINDS: dict[str, str] = {"prune": "pruner", "quantize": "quantizer", "lowrank": "decomposer"}

#: A trait is a constant, or a function of the step's validated parameters (gradual pruning
#: trains during the step, one-shot pruning does not).
Trait = bool | Callable[[Any], bool]


@dataclass(frozen=True)
class MethodTraits:
    """What the pipeline, the CLI and the window need to know about a method without running it.

    ``trains_during_step``: the method fine-tunes inside its step (it needs finetune_epochs ≥ 1
    and does not get a second fine-tuning afterwards); ``produces_int8``: the result holds int8
    kernels, so it cannot be pruned, decomposed, quantized again or fine-tuned (it must be the last
    step), and stores 8 bits per weight; ``needs_calibration``: it reads calibration data;
    ``needs_layers``: it changes PyTorch layers, so it cannot run on a model that is only a
    TorchScript, .pt2 or ONNX file (ONNX Runtime int8 works on the exported file instead);
    ``weight_bits``: bits per weight the result stores or simulates (default: 8 for int8).
    """

    step_kind: str = ""
    trains_during_step: Trait = False
    produces_int8: bool = False
    needs_calibration: Trait = False
    needs_layers: bool = True
    weight_bits: int | Callable[[Any], int] | None = None

    def trains(self, params: BaseModel | None = None) -> bool:
        return _holds(self.trains_during_step, params)

    def stored_bits(self, params: BaseModel | None = None) -> int | None:
        """Bits per stored weight after the step (8 for int8), None when it keeps them as they
        were; what a sweep's effective size counts."""
        if callable(self.weight_bits):
            return int(self.weight_bits(params)) if params is not None else None
        if self.weight_bits is not None:
            return int(self.weight_bits)
        return 8 if self.produces_int8 else None

    def calibrates(self, params: BaseModel | None = None) -> bool:
        return _holds(self.needs_calibration, params)


def _holds(trait: Trait, params: BaseModel | None) -> bool:
    if callable(trait):
        return bool(params is not None and trait(params))
    return bool(trait)


#: (step kind, method) → traits, filled by :func:`declare_method` (read it through the functions).
TRAITS: dict[tuple[str, str], MethodTraits] = {}


def declare_method(
    step_kind: str,
    name: str,
    params: type[BaseModel],
    impl: str,
    title: str,
    summary: str = "",
    formula: str = "",
    paper: str = "",
    *,
    traits: MethodTraits | None = None,
) -> Component:
    """Register a compression method for steps of ``step_kind`` together with its traits."""
    if step_kind not in STEP_KINDS:
        raise ValueError(f"step kind {step_kind!r} has no methods; use one of {list(STEP_KINDS)}")
    component = register(STEP_KINDS[step_kind], name, params, impl, title, summary, formula, paper)
    TRAITS[(step_kind, name)] = replace(traits or MethodTraits(), step_kind=step_kind)
    return component


def method_component(step_kind: str, method: str) -> Component:
    """The registered method of a step, or a ConfigError listing the kinds or the methods."""
    if step_kind not in STEP_KINDS:
        raise ConfigError(f"compression step kind '{step_kind}' has no methods",
                          f"Use kind {', '.join(STEP_KINDS)} or finetune.")
    return REGISTRIES[STEP_KINDS[step_kind]].get(method)


def method_traits(step_kind: str, method: str) -> MethodTraits:
    """The declared traits of a method (a plugin registered without traits has none set)."""
    method_component(step_kind, method)  # unknown kind or method: the registry's clear error
    return TRAITS.get((step_kind, method), MethodTraits(step_kind=step_kind))


def methods_of(step_kind: str) -> list[str]:
    """The method names a step of ``step_kind`` can use, in declaration order."""
    registry = STEP_KINDS.get(step_kind)
    return REGISTRIES[registry].names() if registry else []


def int8_methods() -> list[str]:
    """Quantize methods whose result is an int8 model."""
    return [m for m in methods_of("quantize") if method_traits("quantize", m).produces_int8]
