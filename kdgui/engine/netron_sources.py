"""Which models a run folder holds (teacher, student, every compression stage) and how to draw one.

A run folder (``runs/NAME/``, laid out by :mod:`kdgui.core.run_folders`) keeps the teacher as a
reference in ``config.yaml``, the final student in ``student/student.safetensors`` (absent for an
int8 student) and each compression stage in ``stages/<i>_<name>/`` with its ``metrics.json`` (the
engine's numbers and layer table) and its model (``model.pt2``, ``model.ts`` for ``torch.ao``
int8, ``model.onnx`` for ONNX Runtime int8). :func:`prepare` turns any of them into an annotated
ONNX file for Netron plus the layer table and summary numbers the Models view shows.

A saved stage no longer carries the ``kdgui_*`` attributes of its modules, so its annotations
come from its ``metrics.json`` table — the same numbers the reports show. An int8 TorchScript
stage cannot be written to ONNX; it is drawn as the float graph of the stage before it, with the
int8 stage's numbers (bits included) and a note saying so.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdgui.core.errors import ModelLoadError
from kdgui.core.run_folders import (
    STAGE_METRICS_FILE,
    STAGES_DIR,
    config_path,
    holds_models,
    read_json,
    read_summary,
    stage_dirs,
    stage_index,
    student_path,
)

if TYPE_CHECKING:
    from kdgui.engine.models.frozen import FrozenTeacher

ONNX_MAGIC_SUFFIXES = (".onnx",)


@dataclass
class ModelSource:
    """One model that can be drawn: a run's teacher/student/stage, or a plain file.

    ``kind`` is ``teacher``, ``student``, ``stage`` or ``file``; ``label`` is what a picker shows.
    """

    kind: str
    label: str
    path: Path | None = None
    run_dir: Path | None = None
    stage_dir: Path | None = None
    ref: Any = None  # a kdgui.core.config.ModelRef for teachers and files
    input_shape: tuple[int, ...] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedModel:
    """What the viewer needs: the annotated ONNX file, the layer table and summary numbers."""

    source: ModelSource
    onnx_path: Path
    layers: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# -- finding runs and their models ---------------------------------------------------------------

def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path) or {}


def _run_input_shape(run_dir: Path) -> tuple[int, ...] | None:
    shape = (read_summary(run_dir) or {}).get("data", {}).get("input_shape")
    return tuple(int(s) for s in shape) if shape else None


def run_sources(run_dir: str | Path) -> list[ModelSource]:
    """The teacher, the saved student and every stage of a run, in that order."""
    run = Path(run_dir)
    summary = read_summary(run) or {}
    shape = _run_input_shape(run)
    out: list[ModelSource] = []
    teacher_ref = _teacher_ref(run)
    if teacher_ref is not None:
        label = teacher_ref.path or teacher_ref.arch or "teacher"
        out.append(ModelSource("teacher", f"teacher ({label})", None, run, None, teacher_ref,
                               shape, dict(summary.get("teacher") or {})))
    student = student_path(run)
    if student.is_file():
        out.append(ModelSource("student", "student (distilled)", student, run, None, None,
                               shape, dict(summary.get("student") or {})))
    for folder in stage_dirs(run):
        data = _read_json(folder / STAGE_METRICS_FILE)
        name = (data.get("metrics") or {}).get("name") or folder.name
        model_file = data.get("model_file") or ""
        out.append(ModelSource("stage", f"stage {stage_index(folder)}: {name}",
                               folder / model_file if model_file else None, run, folder, None,
                               shape, dict(data.get("metrics") or {})))
    return out


def final_source(run_dir: str | Path) -> ModelSource:
    """The run's final student: its last compression stage, else the saved student."""
    sources = run_sources(run_dir)
    for kind in ("stage", "student"):
        found = [s for s in sources if s.kind == kind]
        if found:
            return found[-1]
    raise ModelLoadError(f"the run folder '{run_dir}' holds no student yet",
                         "Open a run that finished (it has student/ or stages/).",
                         source=str(run_dir))


def source_for_path(path: str | Path, *, arch: str | None = None, num_classes: int | None = None,
                    trust: bool = False, input_shape: tuple[int, ...] | None = None
                    ) -> ModelSource:
    """A run folder (its final student), a stage folder, or a model file."""
    from kdgui.core.config import ModelRef
    from kdgui.engine.models.hub import is_hf_folder

    target = Path(path).expanduser()
    if target.is_dir() and not is_hf_folder(target):  # a Hugging Face folder is a model
        if holds_models(target):
            return final_source(target)
        if (target / STAGE_METRICS_FILE).is_file() and target.parent.name == STAGES_DIR:
            run = target.parent.parent
            for source in run_sources(run):
                if source.stage_dir == target:
                    return source
        raise ModelLoadError(f"'{target}' is a folder but not a run or stage folder",
                             "Give a model file, a run folder (with stages/ or student/) or "
                             "a stage folder.", source=str(target))
    if str(path) != "demo" and not target.exists():
        raise ModelLoadError(f"the model file '{target}' does not exist", "Check the path.",
                             source=str(target))
    ref = ModelRef(path=str(path), arch=arch, num_classes=num_classes, trust=trust)
    return ModelSource("file", target.name, None if str(path) == "demo" else target, None, None,
                       ref, input_shape)


def _teacher_ref(run: Path) -> Any:
    config = config_path(run)
    if not config.is_file():
        return None
    try:
        from kdgui.core.config_io import load_config

        return load_config(config).teacher
    except Exception:
        return None


# -- turning a source into an annotated graph ----------------------------------------------------

def onnx_file_for(model: FrozenTeacher, input_shape: tuple[int, ...], path: Path) -> Path:
    """An ONNX file of a wrapped model (for Netron): an ONNX model's own file, else an export
    along the model's route (unverified: only the graph is drawn).

    It lives here, not in :mod:`kdgui.engine.export.opaque`, because it calls the export package's
    entry point, which imports ``opaque``: kept there it made an import cycle.
    """
    if model.kind == "onnx":
        return Path(str(model.path))
    import torch

    from kdgui.engine.export import export_model

    example = torch.zeros(1, *input_shape)
    return Path(export_model(model, "onnx", path, example, verify=False).path)


def prepare(source: ModelSource, out_dir: str | Path) -> PreparedModel:
    """Write ``out_dir/<name>.onnx`` annotated for Netron; return it with the layer table."""
    with _LOAD_LOCK:
        return _prepare(source, out_dir)


def _prepare(source: ModelSource, out_dir: str | Path) -> PreparedModel:
    from kdgui.engine.models.frozen import opaque_title
    from kdgui.engine.netron_graph import annotate_file, export_annotated

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / (re.sub(r"[^A-Za-z0-9._-]+", "-", source.label).strip("-") + ".onnx")
    title = _title(source)
    if source.kind == "stage":
        return _prepare_stage(source, target, title)
    if source.path is not None and source.path.suffix.lower() in ONNX_MAGIC_SUFFIXES:
        graph = annotate_file(source.path, target, [], title=title)
        return PreparedModel(source, graph.path, [], dict(source.metrics), graph.notes)
    module, shape = _load_module(source)
    if opaque_title(module) is not None:  # TorchScript/.pt2/ONNX: drawn from its ONNX route
        onnx_file = onnx_file_for(module, shape, out / f".{target.stem}.src.onnx")
        graph = annotate_file(onnx_file, target, [], title=title)
        return PreparedModel(source, graph.path, [], dict(source.metrics), graph.notes)
    graph = export_annotated(module, shape, target, title=title)
    summary = _summary(graph.layers, source.metrics)
    return PreparedModel(source, graph.path, graph.layers, summary, graph.notes)


def _title(source: ModelSource) -> str:
    where = f" of run {source.run_dir.name}" if source.run_dir else ""
    return f"kdgui: {source.label}{where}"


def _prepare_stage(source: ModelSource, target: Path, title: str) -> PreparedModel:
    from kdgui.engine.netron_graph import annotate_file, export_annotated

    assert source.stage_dir is not None
    data = _read_json(source.stage_dir / STAGE_METRICS_FILE)
    layers = list(data.get("layers") or [])
    summary = _summary(layers, source.metrics)
    model = source.path
    if model is None or not model.is_file():
        raise ModelLoadError(f"the stage folder '{source.stage_dir}' has no model file",
                             "The stage was not saved completely; run the compression again.",
                             source=str(source.stage_dir))
    notes: list[str] = []
    if model.suffix == ".onnx":
        graph = annotate_file(model, target, layers, title=title)
        return PreparedModel(source, graph.path, layers, summary, graph.notes)
    if model.suffix != ".pt2":  # int8 TorchScript: draw the float graph it came from
        earlier = _earlier_program(source)
        if earlier is None:
            raise ModelLoadError(
                f"the stage '{source.label}' is a {data.get('format') or model.suffix} that "
                "cannot be written to ONNX, and no earlier float stage was saved",
                "Open the model before quantization instead.", source=str(model))
        notes.append(
            f"'{source.label}' is an int8 TorchScript model, which ONNX cannot represent as "
            f"torch runs it; this is the float graph of '{earlier.parent.name}' annotated with "
            "the int8 stage's numbers (bits, sparsity)")
        model = earlier
    program = _load_program(model)
    shape = source.input_shape or _program_input_shape(program)
    if not shape:
        raise ModelLoadError("the input shape of this stage is unknown",
                             "Open it from its run folder (summary.json holds the shape).",
                             source=str(model))
    graph = export_annotated(program, shape, target, layers=layers, notes=notes, title=title)
    return PreparedModel(source, graph.path, layers, summary, graph.notes)


def _earlier_program(source: ModelSource) -> Path | None:
    assert source.stage_dir is not None and source.run_dir is not None
    earlier = [d for d in stage_dirs(source.run_dir)
               if stage_index(d) < stage_index(source.stage_dir)]
    for folder in reversed(earlier):
        if (folder / "model.pt2").is_file():
            return folder / "model.pt2"
    return None


#: ``torch.export.load`` keeps its deserializer in a global, and the ONNX exporter is not
#: thread-safe either: two threads preparing at once (the Models view preparing one model while
#: the compare view prepares two) fail ("_CURRENT_DESERIALIZER is already set", "Failed to
#: decompose the FX graph"). Preparing and loading programs therefore take turns.
_LOAD_LOCK = threading.RLock()


def _load_program(path: Path) -> Any:
    import warnings

    import torch

    try:
        with _LOAD_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"the torch.export program cannot be read: {exc}".splitlines()[0],
                             "Run the compression again with this version of kdgui.",
                             source=str(path)) from None


def _program_input_shape(program: Any) -> tuple[int, ...] | None:
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            dims = getattr(val, "shape", None)
            if dims is not None and all(isinstance(d, int) for d in dims[1:]):
                return tuple(int(d) for d in dims[1:])
    return None


def _load_module(source: ModelSource) -> tuple[Any, tuple[int, ...]]:
    """The float module of a teacher, a saved student or a model file, and its input shape."""
    from kdgui.core.config import ModelRef
    from kdgui.engine.models import load_model

    # A saved student carries its architecture in the file, which load_model reads.
    ref = ModelRef(path=str(source.path)) if source.kind == "student" else source.ref
    loaded = load_model(ref, input_shape=source.input_shape,
                        num_classes=ref.num_classes if ref else None)
    shape = loaded.input_shape or source.input_shape
    if not shape:
        raise ModelLoadError("the model's input shape is unknown",
                             "Pass it with --input-shape C,H,W (e.g. 1,28,28).",
                             source=loaded.source)
    return loaded.module, tuple(int(s) for s in shape)


def _summary(layers: list[dict[str, Any]], known: dict[str, Any]) -> dict[str, Any]:
    """The run's own numbers where it has them, else sums over the layer table."""
    out = dict(known)
    if layers:
        out.setdefault("params", sum(int(r.get("params") or 0) for r in layers))
        out.setdefault("nonzero_params", sum(int(r.get("nonzero") or 0) for r in layers))
        macs = [r.get("macs") for r in layers]
        if "macs" not in out and all(m is not None for m in macs):
            out["macs"] = sum(int(m) for m in macs)
        out["layers"] = len(layers)
    return out


__all__ = [
    "ModelSource",
    "PreparedModel",
    "final_source",
    "prepare",
    "run_sources",
    "source_for_path",
    "stage_dirs",
]
