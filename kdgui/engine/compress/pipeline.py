"""An ordered list of compression steps, measured before and after each, every stage saved.

``run_pipeline`` is a generator: it yields a :class:`StageEvent` for the model before any step and
after each one, :class:`LogEvent` s for notes, the fine-tuning events of steps that train, and an
:class:`ArtifactEvent` per saved stage; it *returns* ``(final model, stages)`` where ``stages`` is
the list of those metrics dicts — what goes into ``summary.json``'s ``stages`` list. Every step
is validated before the first one runs, from its parameters and the traits declared with its
method, so a bad parameter or unmet need in step 3 fails at once instead of after minutes of
pruning — and leaves no files.

The claims are measured, not computed: when a step brings no speed-up (unstructured sparsity on
dense CPU kernels, fake-quant), the log says so with the two measured latencies.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Generator
from pathlib import Path
from typing import Any

from torch import nn

from kdgui.core.components.compression import method_traits
from kdgui.core.config import CompressionStep
from kdgui.core.errors import CompressionError
from kdgui.core.events import ArtifactEvent, Event, LogEvent, StageEvent
from kdgui.engine.compress.context import CompressionContext, apply_unit, resolve, validate
from kdgui.engine.compress.prune.unstructured import keep_masks
from kdgui.engine.compress.quantize.onnx import OnnxRuntimeModel
from kdgui.engine.compress.stages import measure, save_stage
from kdgui.engine.models.frozen import refuse_compression

#: Speed-ups below this are reported as "no speed gain" (timing noise on a shared CPU is ~5%).
MIN_SPEEDUP = 1.1


def step_name(step: CompressionStep) -> str:
    return step.name or (step.kind if step.kind == "finetune" else f"{step.kind}:{step.method}")


def check_steps(steps: list[CompressionStep], ctx: CompressionContext) -> None:
    """Validate every step's method and parameters and their order, before anything runs.

    What a method needs (training data, calibration data, its place in the order) comes from
    the traits declared with it (kdgui.core.components.compression), never from lists here.
    """
    after_int8: str | None = None
    for i, step in enumerate(steps, 1):
        label = f"compression step {i} ({step_name(step)})"
        if after_int8 is not None:
            raise CompressionError(
                f"{label} comes after the int8 step '{after_int8}', which makes a model that "
                "cannot be pruned, decomposed, quantized again or fine-tuned",
                "Put quantization last (use qat-int8 to fine-tune with quantization).",
            )
        if step.kind == "finetune":
            if step.finetune_epochs < 1 or ctx.finetune is None:
                raise CompressionError(
                    f"{label} fine-tunes for {step.finetune_epochs} epochs"
                    + ("" if ctx.finetune else " but no fine-tuning is available"),
                    "Set finetune_epochs ≥ 1 and run it inside a session with training data.",
                )
            continue
        component = resolve(step.kind, step.method)
        params = validate(component, step.params)
        traits = method_traits(step.kind, step.method)
        trains = traits.trains(params)
        if traits.produces_int8 and not trains and step.finetune_epochs > 0:
            raise CompressionError(
                f"{label} cannot fine-tune an int8 model (finetune_epochs = "
                f"{step.finetune_epochs})",
                "Set finetune_epochs to 0, or use qat-int8 to train with quantization.",
            )
        if (trains or step.finetune_epochs > 0) and ctx.finetune is None:
            raise CompressionError(
                f"{label} needs fine-tuning, but no fine-tuning function is available",
                "Run it where training data is available (a session, or the CLI with --data).",
            )
        if trains and step.finetune_epochs < 1:
            raise CompressionError(
                f"{label} trains during the step but has finetune_epochs = 0",
                "Set finetune_epochs ≥ 1 (CLI: --finetune-epochs N).",
            )
        if traits.calibrates(params) and not _has_data(ctx.calibration):
            raise CompressionError(
                f"{label} needs calibration data, but the calibration set is empty",
                "Give the step a dataset with at least one sample (the training split is used "
                "by default), or choose a method without calibration such as dynamic-int8.",
            )
        if traits.produces_int8:
            after_int8 = step_name(step)


def _has_data(dataset: Any) -> bool:
    return dataset is not None and len(dataset) > 0


def _finetune(model: nn.Module, epochs: int, ctx: CompressionContext) -> Generator[Event]:
    """Fine-tune, keeping a masked model's pruned weights at zero."""
    with keep_masks(model) as keeper:
        if keeper is not None and "on_step" in inspect.signature(ctx.finetune).parameters:
            yield from ctx.finetune(model, epochs, on_step=keeper.reapply)
        else:
            yield from ctx.finetune(model, epochs)


def _gain_notes(before: dict[str, Any], after: dict[str, Any], step: CompressionStep) -> list[str]:
    """Plain statements about what the step measurably gained (or did not)."""
    notes = []
    lb, la = before.get("latency_ms_b32"), after.get("latency_ms_b32")
    if lb and la:
        speedup = lb / la
        text = f"latency at batch 32 {lb:.2f} → {la:.2f} ms ({speedup:.2f}×)"
        if speedup < MIN_SPEEDUP and step.kind != "finetune":
            why = ""
            if step.kind == "prune" and after.get("prune_state") == "masked":
                why = "unstructured sparsity gives no latency gain on dense CPU kernels: "
            elif step.kind == "quantize" and step.method == "fake":
                why = "fake-quant keeps float32 tensors: "
            text = f"no speed gain: {why}{text}"
        notes.append(text)
    zb, za = before.get("zip_size_bytes"), after.get("zip_size_bytes")
    if zb and za:
        notes.append(f"zip-compressed size {zb / 1e6:.3f} → {za / 1e6:.3f} MB ({zb / za:.2f}×)")
    return notes


def run_pipeline(
    model: nn.Module,
    steps: list[CompressionStep],
    ctx: CompressionContext,
    out_dir: str | Path | None,
) -> Generator[Event, None, tuple[nn.Module, list[dict[str, Any]]]]:
    """Apply ``steps`` to a copy of ``model``; yield events; return ``(model, stages)``.

    With ``out_dir`` (the run's stages folder) each stage's model and metrics are saved in
    ``out_dir/<i>_<name>/``, stage 0 being the model before compression.
    """
    check_steps(steps, ctx)
    refuse_compression(model, steps)  # a TorchScript/.pt2/ONNX model: only what works on it
    model = copy.deepcopy(model)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and ctx.work_dir is None:
        ctx.work_dir = out / ".work"
    metrics, layers = measure(model, "before", ctx)
    stages = [metrics]
    yield StageEvent(name="before", metrics=metrics, layers=layers)
    if out is not None:
        path = save_stage(model, out, 0, "before", metrics, layers, ctx)
        yield ArtifactEvent(what="stage", path=str(path), details={"stage": "before"})
    previous = metrics
    for index, step in enumerate(steps, 1):
        name = step_name(step)
        yield LogEvent(level="info", message=f"compression step {index}/{len(steps)}: {name}")
        ctx.epochs, ctx.trained = step.finetune_epochs, False
        if step.kind != "finetune":
            model = yield from apply_unit(step.kind, step.method, model, step.params, ctx)
        yield from ctx.drain_notes()
        if step.finetune_epochs > 0 and not ctx.trained:
            if isinstance(model, OnnxRuntimeModel):
                raise CompressionError(f"step '{name}' cannot fine-tune an ONNX Runtime model",
                                       "Set finetune_epochs to 0.")
            yield from _finetune(model, step.finetune_epochs, ctx)
        metrics, layers = measure(model, name, ctx)
        metrics.update(ctx.report)  # what the step measured itself (e.g. a bit plan)
        ctx.report = {}
        metrics["notes"] = _gain_notes(previous, metrics, step)
        stages.append(metrics)
        for text in metrics["notes"]:
            level = "warning" if text.startswith("no speed gain") else "info"
            yield LogEvent(level=level, message=f"{name}: {text}")
        yield StageEvent(name=name, metrics=metrics, layers=layers)
        if out is not None:
            path = save_stage(model, out, index, name, metrics, layers, ctx)
            yield ArtifactEvent(what="stage", path=str(path), details={"stage": name})
        previous = metrics
    return model, stages
