"""The window's short engine calls: warm-up, inspect, preview, probe, derive, explore, Netron.

Long jobs (``run``, ``sweep``, ...) are generators of events; these are plain functions that
return plain data (numbers, strings, numpy arrays, dataclasses of those), called by the window
on its worker thread. Importing this module imports no torch: each function imports what it
needs when it runs, so the window can import the facade on its UI thread and paint first.

:func:`warm_up` is the one place torch is first imported. Importing torch from two threads at
once crashed the window or left ``torch._dynamo`` half-initialised ("partially initialized
module ... circular import"): Python detects the cross-thread import cycle and hands one thread
the unfinished module. So the first import happens here, under a lock, before any other job
runs; the window's worker awaits it for every job that needs the engine.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from kdgui.core.config import DataConfig, ExperimentConfig, ModelRef

_WARM_LOCK = threading.Lock()
_WARM: dict[str, Any] = {}


def warm_up() -> dict[str, Any]:
    """Import torch and the parts that load lazily (dynamo, export, ONNX), once per process.

    Thread-safe and idempotent: the first caller imports, every other caller waits for it and
    then returns at once. Returns ``{"torch": version, "seconds": import time, "devices":
    available_devices()}`` (the window fills its device list from it, off its UI thread).
    """
    if _WARM:
        return dict(_WARM)
    with _WARM_LOCK:
        if not _WARM:
            start = time.perf_counter()
            import torch
            import torch._dynamo  # lazily imported by torch.export and the ONNX exporter
            import torch.export
            import torchvision  # noqa: F401

            import kdgui.engine.data
            import kdgui.engine.distill
            import kdgui.engine.models  # noqa: F401

            _WARM.update(torch=torch.__version__, seconds=time.perf_counter() - start)
            _WARM.update(devices=available_devices())  # the window's device list
    return dict(_WARM)


def available_devices() -> list[dict[str, Any]]:
    """This machine's devices for ``training.device``: cpu, each cuda:N with its name and memory,
    mps when available (see :func:`kdgui.engine.device.available_devices`)."""
    from kdgui.engine.device import available_devices as found

    return found()


def inspect_model(ref: ModelRef | dict[str, Any] | str | Path, *, arch: str | None = None,
                  num_classes: int | None = None, trust: bool = False) -> dict[str, Any]:
    """Format, input shape, params, MACs and the layer table of a model.

    ``ref``: a model file (then ``arch``, ``num_classes`` and ``trust`` apply: pickles load only
    with ``trust``), or a ``ModelRef`` (a file, or an architecture with no file: the window's
    Teacher panel describes the demo teacher this way).
    """
    from kdgui.engine.models import describe_module, inspect_file, load_model

    if isinstance(ref, (str, Path)):
        ref = ModelRef(path=str(ref), arch=arch, num_classes=num_classes, trust=trust)
    ref = ModelRef.model_validate(ref)
    if ref.path is None:
        loaded = load_model(ref)
        return {"format": "architecture", **describe_module(loaded.module, loaded.input_shape)}
    return inspect_file(ref.path, arch=ref.arch, num_classes=ref.num_classes, trust=ref.trust)


def data_preview(data: DataConfig | dict[str, Any], n: int = 16) -> dict[str, Any]:
    """Load a dataset and take ``n`` labelled samples: ``images`` (uint8 N×H×W×C), ``labels``,
    ``info`` (name, sizes, input shape, classes)."""
    from kdgui.engine.data import load_data
    from kdgui.engine.data.preview import sample_grid

    bundle = load_data(DataConfig.model_validate(data))
    images, labels = sample_grid(bundle, n=n)
    return {"images": images, "labels": labels, "info": bundle.describe()}


def pairing_probe(student_spec: Any, input_shape: tuple[int, int, int], num_classes: int,
                  teacher_module: Any = None, teacher_spec: Any = None) -> dict[str, Any]:
    """Probe teacher and student the way a run does: their feature-map candidates, the stage
    ends (last layer at each resolution) and the automatic feature pairs."""
    from kdgui.engine.distill.pairing import match_stages, stage_ends
    from kdgui.engine.distill.taps import feature_maps, probe_shapes
    from kdgui.engine.models import build_from_spec

    teacher = teacher_module
    if teacher is None:
        teacher = build_from_spec(teacher_spec, input_shape, num_classes)
    student = build_from_spec(student_spec, input_shape, num_classes)
    t_cands = feature_maps(*probe_shapes(teacher, input_shape))
    s_cands = feature_maps(*probe_shapes(student, input_shape))
    t_ends, s_ends = stage_ends(t_cands), stage_ends(s_cands)
    return {"teacher": t_cands, "student": s_cands,
            "teacher_ends": {n for n, _ in t_ends}, "student_ends": {n for n, _ in s_ends},
            "auto": match_stages(t_ends, s_ends)}


def derive_spec(spec: Any, input_shape: tuple[int, int, int], num_classes: int,
                width: float, depth: float) -> Any:
    """A student spec derived from the teacher's (see :mod:`kdgui.engine.models.derive`)."""
    from kdgui.engine.models.derive import derive_spec as derive

    return derive(spec, input_shape, num_classes, width, depth)


def explorer_data(config: ExperimentConfig, run_dir: str | Path | None = None,
                  **kwargs: Any) -> Any:
    """Teacher and student logits on validation images for the soft-target explorer."""
    from kdgui.engine.soft_targets import explorer_data as load

    return load(config, run_dir, **kwargs)


def softmax_at_temperature(logits: Any, T: float, axis: int = -1) -> Any:
    """``softmax(logits / T)`` in numpy (the explorer's slider redraws with no torch call)."""
    from kdgui.engine.distill.losses import softmax_at_temperature as softmax

    return softmax(logits, T, axis)


def model_sources(run_dir: str | Path) -> list[Any]:
    """The models of a run Netron can draw: teacher, student, each compression stage."""
    from kdgui.engine.netron_sources import run_sources

    return run_sources(run_dir)


def model_source_for_path(path: str | Path, **kwargs: Any) -> Any:
    """A model file, run folder or stage folder as a Netron source (``kdgui netron`` does)."""
    from kdgui.engine.netron_sources import source_for_path

    return source_for_path(path, **kwargs)


def prepare_model(source: Any, out_dir: str | Path) -> Any:
    """Load a source and write the annotated ONNX file Netron shows (takes seconds)."""
    from kdgui.engine.netron_sources import prepare

    return prepare(source, out_dir)


def netron_info() -> Any:
    """Whether netron is installed and its page still works (it expires), and why not."""
    from kdgui.engine.netron_server import netron_info as info

    return info()


def netron_server(model_path: str | Path, port: int | None = None) -> Any:
    """A (not yet started) Netron server for one model file, on 127.0.0.1 only (``port``
    None: a free one; ``kdgui netron --port`` gives one)."""
    from kdgui.engine.netron_server import NetronServer

    return NetronServer(model_path, port)


def write_report(folder: str | Path, html_path: str | Path,
                 csv_path: str | Path | None = None) -> Any:
    """The HTML report (and CSV table) of a run or sweep folder."""
    from kdgui.engine.report import write_report as write

    return write(folder, html_path, csv_path)


__all__ = [
    "available_devices",
    "data_preview",
    "derive_spec",
    "explorer_data",
    "inspect_model",
    "model_source_for_path",
    "model_sources",
    "netron_info",
    "netron_server",
    "pairing_probe",
    "prepare_model",
    "softmax_at_temperature",
    "warm_up",
    "write_report",
]
