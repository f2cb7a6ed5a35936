"""Writing models out of a run: the distilled student, and the final model in each export format.

Paths come from :mod:`kdgui.core.run_folders` (the one owner of the run-folder layout) and suffixes
from the export format table, so the session never spells a file name itself.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdgui.core.errors import UserError
from kdgui.core.events import ArtifactEvent, Event, LogEvent
from kdgui.core.run_folders import export_path, student_path
from kdgui.engine.session.context import RunContext


def save_student(ctx: RunContext, model: nn.Module) -> Generator[Event, None, None]:
    """``student/student.safetensors``: the distilled student, its architecture in the metadata."""
    from kdgui.engine.export import export_model

    target = student_path(ctx.run_dir.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, *ctx.prepared.input_shape, device=ctx.device)
    try:
        result = export_model(
            model, "safetensors", target, example, metadata=metadata(ctx), verify=False
        )
    except UserError as exc:  # e.g. a quantized model safetensors cannot hold
        yield LogEvent(level="warning", message=exc.one_line())
        return
    yield ArtifactEvent(what="student", path=str(result.path))


def export_formats(ctx: RunContext, model: nn.Module) -> Generator[Event, None, list[dict[str, Any]]]:
    """Export ``model`` in every ``export.formats``; a format that fails is recorded, not fatal."""
    from kdgui.engine.export import export_model

    out = []
    example = example_batch(ctx.prepared.val, ctx.device)
    for fmt in ctx.config.export.formats:
        path = export_path(ctx.run_dir.path, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = export_model(
                model, fmt, path, example, metadata=metadata(ctx), verify=ctx.config.export.verify,
            )
        except UserError as exc:
            out.append({"format": fmt, "ok": False, "error": exc.one_line()})
            yield LogEvent(level="error", message=exc.one_line())
            continue
        # "ok" states what ran: with verification asked for (the default), a file is ok only
        # once it was reloaded and compared; "verified" always says whether that happened.
        plain = _plain_result(result)
        verify = ctx.config.export.verify
        record = {"format": fmt, "ok": bool(plain.get("verified")) or not verify, **plain}
        if not record["ok"]:
            record["error"] = "written, but its reload and comparison did not run"
        out.append(record)
        yield ArtifactEvent(what=f"export:{fmt}", path=str(result.path), details=record)
    return out


def metadata(ctx: RunContext) -> dict[str, Any]:
    """What a saved model carries so that it can be reloaded and used without the run."""
    info = ctx.prepared.data_info
    return {
        "kdgui_config": ctx.config.model_dump(mode="json"),
        "input_shape": list(ctx.prepared.input_shape),
        "num_classes": ctx.prepared.num_classes,
        "class_names": info.get("class_names", []),
        "mean": info.get("mean"),
        "std": info.get("std"),
    }


def example_batch(data: Dataset | DataLoader, device: torch.device, n: int = 8) -> torch.Tensor:
    """A few real inputs (exports trace and verify on them, calibration-free steps probe them)."""
    tensors = getattr(data, "tensors", None)
    if tensors is not None:
        return tensors[0][:n].to(device)
    if isinstance(data, DataLoader):
        return next(iter(data))[0][:n].to(device)
    return torch.stack([data[i][0] for i in range(min(n, len(data)))]).to(device)  # type: ignore[arg-type]


def _plain_result(result: Any) -> dict[str, Any]:
    """An export result as JSON-able data for ``summary.json`` (NaN and paths made plain)."""
    out = {}
    for key in ("path", "size_bytes", "verified", "max_abs_diff", "tolerance",
                "ort_latency_ms", "warnings", "extra_files"):
        value = getattr(result, key, None)
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


__all__ = ["example_batch", "export_formats", "metadata", "save_student"]
