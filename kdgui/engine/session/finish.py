"""The end of a run: measure teacher and student, compress, save, export, write ``summary.json``.

A stopped run ends here too, and must leave a complete folder (summary, student, what was
measured) quickly: the front end is waiting for it. So after a stop, compression and exports are
skipped, and latency is timed at batch 1 only, with a few repeats (``latency_ms_b32`` is None).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from torch import nn

from kdgui.core.events import ArtifactEvent, Event, LogEvent, RunFinished, StageEvent
from kdgui.engine.fast_path import Variant
from kdgui.engine.session import fast
from kdgui.engine.session.compression import compress
from kdgui.engine.session.context import RunContext
from kdgui.engine.session.exporting import export_formats, save_student

#: Latency timing after a stop: fewer passes and a short cap (a full measurement takes up to 2 s
#: per batch size and model, more for a big model at batch 32), still the median of real passes.
STOPPED_LATENCY = {"warmup": 1, "repeats": 3, "max_seconds": 0.25}


def measure(
    ctx: RunContext, name: str, model: nn.Module, val_eval: dict[str, Any] | None = None
) -> Generator[Event, None, dict[str, Any]]:
    """One model's metrics (accuracy, size, MACs, latency, layer table) as a StageEvent."""
    from kdgui.engine.metrics import evaluate, measure_latency, model_summary

    model = model.eval()
    shape = ctx.prepared.input_shape
    device = str(ctx.device)
    # Latency in the precision/layout the run chose for this model (never compiled: that would
    # compile again per batch size); ``latency_variant`` says which.
    choice = ctx.fast.get(name)
    variant = replace(choice.variant, compiled=False) if choice is not None else Variant()
    summary = model_summary(model, shape, device=device, latency=False)
    timing = STOPPED_LATENCY if ctx.stopped else {}
    summary["latency_ms"] = measure_latency(model, shape, 1, device, variant=variant, **timing)
    # batch 32 is for compression's gain notes, skipped after a stop
    summary["latency_ms_b32"] = (
        None if ctx.stopped else measure_latency(model, shape, 32, device, variant=variant)
    )
    summary["latency_variant"] = variant.label
    if val_eval is None:
        val_eval = evaluate(model, ctx.prepared.val, device=ctx.device)
    layers = summary.pop("layers", [])
    metrics = {"name": name, "accuracy": float(val_eval["accuracy"]), **summary}
    if val_eval.get("top5") is not None:
        metrics["top5"] = float(val_eval["top5"])
    yield StageEvent(name=name, metrics=metrics, layers=layers)
    return metrics


def finish(
    ctx: RunContext,
    teacher: nn.Module,
    student: nn.Module,
    teacher_eval: dict[str, Any],
    distiller: Any,
) -> Generator[Event, None, dict[str, Any]]:
    """Measure, compress (unless stopped), save the student, export, and write the summary."""
    from kdgui.engine.metrics import agreement, evaluate

    cfg = ctx.config
    teacher_metrics = yield from measure(ctx, "teacher", teacher, teacher_eval)
    student_eval = evaluate(student, ctx.prepared.val, device=ctx.device)
    student_metrics = yield from measure(ctx, "student", student, student_eval)
    student_metrics["agreement"] = float(
        agreement(student_eval["predictions"], teacher_eval["predictions"])
    )
    final_model = student
    stages: list[dict[str, Any]] = []
    if cfg.compression.steps and not ctx.stopped:
        final_model, stages = yield from compress(ctx, student, teacher)
    # student/ holds the distilled student (its spec matches its weights); compressed models
    # are saved per stage by the pipeline, and the final one is exported.
    yield from save_student(ctx, student)
    exports: list[dict[str, Any]] = []
    if cfg.export.formats and not ctx.stopped:
        exports = yield from export_formats(ctx, final_model)
    summary = {
        "schema_version": 1,
        "name": cfg.name,
        "completed": not ctx.stopped,
        "stopped": ctx.stopped,
        "steps": ctx.step,
        "device": str(ctx.device),
        "fast_path": fast.plain_data(ctx),
        "data": ctx.prepared.data_info,
        "pairs": {k: [list(p) for p in v] for k, v in distiller.pairs.items()},
        "teacher": teacher_metrics,
        "student": student_metrics,
        "compression_ratio": teacher_metrics["params"] / max(student_metrics["params"], 1),
        "accuracy_gap": teacher_metrics["accuracy"] - student_metrics["accuracy"],
        "stages": stages,
        "exports": exports,
    }
    if cfg.data.exclude_classes and not ctx.stopped:
        # The student never saw these classes: raise their bias as the data say (Hinton et al.
        # 2015, §3) and report both, so no separate command is needed (kdgui bias-correct).
        from kdgui.engine.bias_correction import correct_models, held_out_line

        summary["bias_correction"] = correct_models(
            student, teacher, ctx.prepared.val, cfg.data.exclude_classes,
            ctx.prepared.num_classes, device=ctx.device)
        yield LogEvent(level="info", message=held_out_line(summary["bias_correction"]))
    if stages:
        from kdgui.engine.compress.share.table import staged_table

        table = staged_table(cfg.compression.steps, stages, exports)  # when weights are shared
        if table is not None:
            summary["deep_compression"] = table
    path = ctx.run_dir.write_summary(summary)
    yield ArtifactEvent(what="summary", path=str(path))
    yield RunFinished(run_dir=str(ctx.run_dir.path), summary=summary, stopped=ctx.stopped)
    return summary


__all__ = ["STOPPED_LATENCY", "finish", "measure"]
