"""The ``export_run`` job: write one model of a run folder (by default its final stage) to files.

A run folder holds several models: the distilled student (``student/student.safetensors``) and,
when the run compressed it, every stage (``stages/<i>_<name>/model.pt2|.ts|.onnx``). The model a
person means by "export my run" is the **final** one, the last stage when there are stages; the
window's export dialog used to export the uncompressed student instead, and called it verified.
So :func:`export_run` resolves the stage explicitly, says which one it wrote in every record,
and marks a file ``verified`` only when its reload and comparison really ran and matched.

:func:`export_model_files` is the one loop over formats that the ``compress`` job shares.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Generator
from pathlib import Path
from typing import Any

from kdgui.core import run_folders as rf
from kdgui.core.errors import ExportError
from kdgui.core.events import ArtifactEvent, Event, JobFinished, JobProgress, LogEvent
from kdgui.core.registry import exporters
from kdgui.engine.jobs._common import guarded

#: Result fields of an export that go into records (plain data for summary.json and events).
_RESULT_KEYS = ("path", "size_bytes", "verified", "max_abs_diff", "tolerance", "ort_latency_ms",
                "warnings", "extra_files")


def export_formats(formats: list[str] | str | None) -> list[str]:
    """A list of registered export formats from a list or ``"onnx,pt2"``; unknown ones refused
    (before anything is written)."""
    if isinstance(formats, str):
        formats = formats.split(",")
    names = [f.strip() for f in formats or [] if f.strip()]
    unknown = [f for f in names if f not in exporters]
    if unknown:
        raise ExportError(f"--export format {unknown[0]!r} is unknown",
                          f"Use some of: {', '.join(exporters.names())}.")
    return names


def _record(fmt: str, stage: str, result: Any, verify: bool) -> dict[str, Any]:
    data = result.to_dict()
    record: dict[str, Any] = {"format": fmt, "ok": True, "stage": stage,
                              "verify_ran": bool(verify)}
    for key in _RESULT_KEYS:
        value = data.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        record[key] = value
    # "verified" means: this file was reloaded and its outputs matched, nothing less.
    record["verified"] = bool(verify and data.get("verified") and data.get("max_abs_diff")
                              is not None)
    return record


def _copy_verified(source: Path, target: Path, model: Any, example: Any, verify: bool
                   ) -> dict[str, Any]:
    """Write the stage's own file (same format) as ``target``: copied, then reloaded and
    compared with the stage's model before it is moved into place. A saved torch.export
    program cannot be exported again (its module rejects ``eval()``), but it need not be."""
    import torch

    from kdgui.core.config import ModelRef
    from kdgui.engine.export.base import flatten_outputs, max_abs_diff, tolerance_for
    from kdgui.engine.models.loading import load_model

    if target.suffix != source.suffix:
        target = target.with_suffix(source.suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.kdgui-tmp{target.suffix}")
    try:
        shutil.copyfile(source, tmp)
        record: dict[str, Any] = {"max_abs_diff": None, "tolerance": None, "verified": False,
                                  "warnings": [], "copied_from": str(source)}
        if verify:
            with torch.no_grad():
                ref = flatten_outputs(model(example))
                got = flatten_outputs(load_model(ModelRef(path=str(tmp))).module(example))
            diff, tol = max_abs_diff(ref, got), tolerance_for(ref, quantized=False)
            record.update(max_abs_diff=diff, tolerance=tol, verified=diff <= tol)
            if diff > tol:
                record["warnings"] = [f"outputs differ by {diff:.3g} (tolerance {tol:.3g})"]
        os.replace(tmp, target)
    except OSError as exc:
        raise ExportError(f"could not write {target}: {exc.strerror or exc}",
                          "Check that the folder is writable and has free space.") from None
    finally:
        tmp.unlink(missing_ok=True)
    record.update(path=str(target), size_bytes=target.stat().st_size)
    return record


def export_model_files(
    model: Any,
    formats: list[str],
    out_dir: str | Path,
    example: Any,
    *,
    metadata: dict[str, Any] | None = None,
    stage: str = "final",
    verify: bool = True,
    path: str | Path | None = None,
    source_file: str | Path | None = None,
) -> Generator[Event, Any, list[dict[str, Any]]]:
    """Write ``model`` in each format as ``out_dir/model<suffix>`` (or ``path`` for one format);
    yields progress, an artifact per file and an error line per refused format; returns the
    records (``ok: false`` with the error for a format that cannot hold the model).
    ``source_file`` is the model's own saved file: a format equal to its own is copied."""
    from kdgui.engine.compress.quantize.onnx import OnnxRuntimeModel
    from kdgui.engine.export import default_suffix, detect_format, export_model

    own = detect_format(Path(source_file)) if source_file is not None else None
    records: list[dict[str, Any]] = []
    for done, fmt in enumerate(formats):
        yield JobProgress(job="export", done=done, total=len(formats), message=f"{fmt}")
        target = Path(path) if path is not None else Path(out_dir) / f"model{default_suffix(fmt)}"
        try:
            if fmt == own and source_file is not None:
                record = {"format": fmt, "ok": True, "stage": stage, "verify_ran": verify,
                          **_copy_verified(Path(source_file), target, model, example, verify)}
                records.append(record)
                yield ArtifactEvent(what=f"export:{fmt}", path=record["path"], details=record)
                continue
            if isinstance(model, OnnxRuntimeModel) and fmt != "onnx":  # onnx: the file
                raise ExportError(f"the onnx-int8 model is an ONNX file and cannot be written as "
                                  f"{fmt}", f"Use the quantized file {model.path}.")
            result = export_model(model, fmt, target, example, metadata=metadata, verify=verify)
        except ExportError as exc:
            records.append({"format": fmt, "ok": False, "stage": stage,
                            "error": exc.one_line()})
            yield LogEvent(level="error", message=f"export {fmt}: {exc.one_line()}")
            continue
        record = _record(fmt, stage, result, verify)
        records.append(record)
        yield ArtifactEvent(what=f"export:{fmt}", path=str(result.path), details=record)
    yield JobProgress(job="export", done=len(formats), total=len(formats))
    return records


def run_stages(run_dir: str | Path) -> list[dict[str, Any]]:
    """The models of a run (or ``kdgui compress``) folder that can be exported, in pipeline
    order: the student, then each stage; the last one is what ``stage="final"`` exports."""
    run = Path(run_dir)
    found: list[dict[str, Any]] = []
    if rf.student_path(run).is_file():
        found.append({"stage": "student", "path": str(rf.student_path(run))})
    for folder in rf.stage_dirs(run):
        info = rf.read_json(folder / rf.STAGE_METRICS_FILE) or {}
        file = folder / str(info.get("model_file", ""))
        if info.get("model_file") and file.is_file():
            found.append({"stage": folder.name, "path": str(file),
                          "metrics": info.get("metrics", {})})
    return found


def _resolve_stage(run: Path, stage: str) -> dict[str, Any]:
    available = run_stages(run)
    if not available:
        raise ExportError(f"'{run}' holds no model to export (no student, no stages)",
                          "Open a run that finished, or one that kdgui compress wrote.")
    if stage == "final":
        return available[-1]
    for entry in available:
        if entry["stage"] == stage:
            return entry
    names = ", ".join(e["stage"] for e in available)
    raise ExportError(f"'{run}' has no stage '{stage}'", f"Choose one of: final, {names}.")


def _metadata(run: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """What the written file should carry: the student's stored metadata (config, shape,
    classes), else the folder's summary; plus the stage it came from."""
    from kdgui.engine.export import read_metadata

    meta: dict[str, Any] = {}
    if rf.student_path(run).is_file():
        try:
            meta = dict(read_metadata(rf.student_path(run)))
        except ExportError:
            meta = {}
    summary = rf.read_summary(run) or {}
    if "input_shape" not in meta:
        shape = summary.get("input_shape") or (summary.get("data") or {}).get("input_shape")
        if shape:
            meta["input_shape"] = list(shape)
    if "num_classes" not in meta:
        classes = summary.get("num_classes") or (summary.get("data") or {}).get("num_classes")
        if classes:
            meta["num_classes"] = classes
    meta["stage"] = entry["stage"]
    return meta


def _load(entry: dict[str, Any]) -> Any:
    """The stage's model: an ONNX Runtime int8 file, or a module kdgui can reload."""
    from kdgui.core.config import ModelRef
    from kdgui.engine.models.loading import load_model

    path = Path(entry["path"])
    if path.suffix == ".onnx":
        from kdgui.engine.compress.quantize.onnx import OnnxRuntimeModel

        return OnnxRuntimeModel(path)
    # Only exported, never trained: frozen weights also let tracers take them as constants.
    return load_model(ModelRef(path=str(path))).module.requires_grad_(False)


def export_run(
    run_dir: str | Path,
    formats: list[str] | str,
    *,
    stage: str = "final",
    out_dir: str | Path | None = None,
    path: str | Path | None = None,
    verify: bool = True,
) -> Generator[Event, Any, dict[str, Any] | None]:
    """Export a model of ``run_dir``: ``stage`` is ``"final"`` (the last compression stage, or
    the student when the run did not compress), ``"student"`` or a stage folder name such as
    ``"2_quantize"``. Files go to ``out_dir`` (default ``RUN/export``) as ``model<suffix>``, or
    to ``path`` when exactly one format is asked for. Ends with ``JobFinished`` whose result
    names the stage and its source file, and lists one record per format."""
    return (yield from guarded(_export_run(run_dir, formats, stage, out_dir, path, verify),
                               run_dir))


def _export_run(run_dir: str | Path, formats: list[str] | str, stage: str,
                out_dir: str | Path | None, path: str | Path | None, verify: bool
                ) -> Generator[Event, Any, dict[str, Any]]:
    import torch

    run = Path(run_dir).expanduser()
    names = export_formats(formats)
    if not names:
        raise ExportError("no export format given", f"Use some of: {', '.join(exporters.names())}.")
    if path is not None and len(names) != 1:
        raise ExportError("a file name can only be given for one format",
                          "Give an output folder instead, or export one format at a time.")
    entry = _resolve_stage(run, stage)
    meta = _metadata(run, entry)
    shape = meta.get("input_shape")
    if not shape:
        raise ExportError(f"the input shape of the models in '{run}' is unknown",
                          "Export from a run folder KD Studio wrote (its summary.json has it).")
    model = _load(entry)
    example = torch.randn(1, *[int(s) for s in shape], generator=torch.Generator().manual_seed(0))
    yield LogEvent(level="info", message=f"exporting stage '{entry['stage']}' ({entry['path']})")
    target = Path(out_dir) if out_dir is not None else run / rf.EXPORT_DIR
    records = yield from export_model_files(model, names, target, example, metadata=meta,
                                            stage=entry["stage"], verify=verify, path=path,
                                            source_file=entry["path"])
    result = {"stage": entry["stage"], "source": entry["path"], "exports": records,
              "stage_metrics": entry.get("metrics", {})}
    yield JobFinished(job="export_run", out_dir=str(target), result=result)
    return result


__all__ = ["export_formats", "export_model_files", "export_run", "run_stages"]
