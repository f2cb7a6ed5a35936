"""What a compression unit may use besides the model, and the helpers every unit shares.

:class:`CompressionContext` is deliberately small: the input shape, data for calibration, and two
callables the session provides (``finetune`` and ``evaluate``). Units never reach into the
session; tests build a context from a tiny dataset in a line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdgui.core.components.compression import STEP_KINDS, method_component
from kdgui.core.errors import CompressionError
from kdgui.core.events import Event, LogEvent
from kdgui.core.registry import Component

FinetuneFn = Callable[..., Iterator[Event]]
"""``finetune(model, epochs[, on_step])`` trains ``model`` in place for ``epochs`` and yields
events; if it accepts ``on_step``, it calls ``on_step(t)`` after each optimizer step."""

@dataclass
class CompressionContext:
    """Inputs a compression unit may need, besides the model and its parameters.

    ``calibration`` is a dataset of ``(x, y)`` pairs (calibration of int8 ranges, Taylor
    importance); ``evaluate`` returns accuracy as a fraction (0–1, like
    :func:`kdgui.engine.metrics.evaluate`) — without it, accuracy is measured on ``validation``
    when given. ``finetune(model, epochs, on_step=None)`` may accept an ``on_step(t)`` callback
    that the trainer calls after every optimizer step (gradual pruning uses it); ``steps_per_epoch`` lets a gradual pruning schedule
    span the fine-tuning it runs inside. The pipeline sets ``epochs`` to the step's
    ``finetune_epochs``; a unit that trains *during* the step (gradual pruning, QAT) uses them and
    sets ``trained`` so the pipeline does not fine-tune again afterwards. Units report notes with
    :meth:`log`; the pipeline turns them into :class:`LogEvent` s. ``work_dir`` is where a unit
    may write files (the ONNX Runtime quantizer writes its model there).
    """

    input_shape: tuple[int, ...]
    example_input: torch.Tensor | None = None
    calibration: Dataset | None = None
    validation: Dataset | None = None
    device: str = "cpu"
    finetune: FinetuneFn | None = None
    evaluate: Callable[[nn.Module], float] | None = None
    steps_per_epoch: int | None = None
    epochs: int = 0
    trained: bool = False
    work_dir: Path | None = None
    notes: list[LogEvent] = field(default_factory=list)
    #: What a step measured that belongs in its stage's metrics (plain data; e.g. the weight
    #: sharing step's mixed-precision ``bit_plan``); the pipeline moves it into the stage.
    report: dict[str, Any] = field(default_factory=dict)

    def example(self, batch: int = 1) -> torch.Tensor:
        """An input of the model's shape: the given example (repeated) or random normal data."""
        if self.example_input is not None:
            x = self.example_input[:1]
            return x.expand(batch, *x.shape[1:]).contiguous().to(self.device)
        gen = torch.Generator().manual_seed(0)
        return torch.randn(batch, *self.input_shape, generator=gen).to(self.device)

    def accuracy(self, model: nn.Module) -> float | None:
        """Accuracy (0–1) by ``evaluate``, else on ``validation``, else None."""
        if self.evaluate is not None:
            return float(self.evaluate(model))
        if self.validation is not None and len(self.validation) > 0:  # type: ignore[arg-type]
            from kdgui.engine.metrics import evaluate

            return float(evaluate(model, self.validation, device=self.device)["accuracy"])
        return None

    def log(self, message: str, level: str = "info") -> None:
        """Record a note for the run's log (the pipeline emits it as a LogEvent)."""
        self.notes.append(LogEvent(level=level, message=message))

    def drain_notes(self) -> list[LogEvent]:
        out, self.notes = self.notes, []
        return out

    def calibration_batches(
        self, samples: int, batch_size: int = 32, *, what: str = "calibration"
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Up to ``samples`` calibration samples in batches; an empty set is a user error."""
        data = self.calibration
        if data is None or len(data) == 0:  # type: ignore[arg-type]
            raise CompressionError(
                f"{what} needs calibration data, but the calibration set is empty",
                "Give the step a dataset with at least one sample (the training split is used "
                "by default), or choose a method without calibration such as dynamic-int8.",
            )
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        seen = 0
        for x, y in loader:
            if seen >= samples:
                break
            take = min(len(x), samples - seen)
            seen += take
            yield x[:take].to(self.device), y[:take].to(self.device)


def resolve(kind: str, method: str) -> Component:
    """The registered component for a step's kind (prune, quantize, lowrank) and method."""
    if kind not in STEP_KINDS:
        raise CompressionError(
            f"compression step kind '{kind}' has no methods",
            f"Use kind {', '.join(STEP_KINDS)} or finetune.",
        )
    try:
        return method_component(kind, method)
    except Exception as exc:  # ConfigError from the registry: re-raise as a compression error
        fix = getattr(exc, "fix", "")
        raise CompressionError(f"unknown {kind} method '{method}'", fix) from None


def validate(component: Component, params: BaseModel | dict[str, Any] | None) -> Any:
    """``params`` as ``component``'s parameter model, or a CompressionError naming the field."""
    if isinstance(params, component.params):
        return params
    if isinstance(params, BaseModel):
        params = params.model_dump()
    try:
        return component.params.model_validate(params or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        where = f"{component.kind} '{component.name}'" + (f" parameter {loc}" if loc else "")
        raise CompressionError(
            f"{where} = {err.get('input')!r} is invalid: {err.get('msg', 'invalid value')}",
            _range_hint(component, loc),
        ) from None


def _range_hint(component: Component, name: str) -> str:
    for spec in component.param_specs():
        if spec.name == name and spec.range_text():
            return f"Allowed: {name} {spec.range_text()}."
    return "Check the value against the method's parameters ('kdgui methods')."


def apply_unit(
    kind: str, method: str, model: nn.Module, params: dict[str, Any] | None,
    ctx: CompressionContext,
) -> Generator[Event, None, nn.Module]:
    """Validate and run one unit; yields its events (if any) and returns the new model."""
    component = resolve(kind, method)
    values = validate(component, params)
    from kdgui.engine.models.frozen import refuse_compression

    refuse_compression(model, [SimpleNamespace(kind=kind, method=method)])  # before any work
    result = component.load()(model, values, ctx)
    if not inspect.isgenerator(result):
        return result
    while True:  # interleave the unit's notes with its events, in the order they happened
        try:
            event = next(result)
        except StopIteration as stop:
            return stop.value
        yield from ctx.drain_notes()
        yield event


def output_layer_name(model: nn.Module) -> str | None:
    """The name of the last Linear/Conv module in registration order (the classifier, usually)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            last = name
    return last


def check_layers_exist(model: nn.Module, names: list[str], what: str) -> None:
    """A CompressionError naming any layer in ``names`` that the model lacks."""
    known = dict(model.named_modules())
    missing = [n for n in names if n not in known]
    if missing:
        sample = ", ".join(list(n for n in known if n)[:8])
        raise CompressionError(
            f"{what}: the model has no layer named {', '.join(repr(m) for m in missing)}",
            f"Use layer names from the model's layer table (e.g. {sample}).",
        )
