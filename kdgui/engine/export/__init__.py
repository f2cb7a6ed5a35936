"""Writing a model to a file format, and proving the file computes what the model computes.

:func:`export_model` is the one entry point. For every format it:

1. validates the format's parameters (declared in :mod:`kdgui.core.components.export`);
2. writes into a temporary file in the destination folder (``.<name>.kdgui-tmp-<random><suffix>``);
3. reloads that file and compares its outputs with PyTorch's on the example input (and on
   ``samples`` when given, and on a second batch size for formats with a symbolic batch);
4. only then moves it into place with ``os.replace`` (atomic on one file system), so a crash or
   an error half-way never leaves a partial or unverified-by-crash file under the final name.

A file whose outputs differ by more than the tolerance is still written, with ``verified=False``
and a warning saying by how much: the caller decides whether that is acceptable (an int8 model
may be), and the report shows the number. An error while writing or reloading raises an
:class:`~kdgui.core.errors.ExportError` and leaves nothing behind.

Exports run on the CPU in eval mode; the caller's model is not moved or switched to eval.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgui.core.components.export import export_format, format_of_suffix
from kdgui.core.errors import ExportError, ModelLoadError, UserError
from kdgui.core.registry import exporters
from kdgui.engine.export.base import (
    FLOAT_TOLERANCE,
    QUANTIZED_TOLERANCE,
    Exporter,
    LoadedModel,
    build_metadata,
    flatten_outputs,
    max_abs_diff,
    tolerance_for,
)
from kdgui.engine.export.failures import compatible_formats
from kdgui.engine.export.opaque import batch_example, write_opaque
from kdgui.engine.metrics._modules import eval_mode, has_quantized_modules, on_device
from kdgui.engine.models.frozen import FrozenTeacher

__all__ = [
    "FLOAT_TOLERANCE",
    "QUANTIZED_TOLERANCE",
    "ExportResult",
    "LoadedModel",
    "compatible_formats",
    "default_suffix",
    "export_model",
    "load_exported",
    "read_metadata",
]


@dataclass
class ExportResult:
    """What one export produced and how well the file matched the model."""

    format: str
    path: str
    size_bytes: int
    verified: bool
    max_abs_diff: float | None
    tolerance: float | None
    ort_latency_ms: float | None = None
    warnings: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)
    #: True for a weights-only file that records no recipe: reloading it needs the architecture.
    needs_architecture: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data for events, run folders and reports."""
        return asdict(self)


def _exporter_class(fmt: str) -> type[Exporter]:
    return exporters.get(fmt).load()


def default_suffix(fmt: str) -> str:
    """The file extension written for ``fmt`` when the path has none (``.onnx``, ``.pt2``, ...)."""
    return export_format(fmt).suffix


def _target_path(path: str | os.PathLike[str], suffix: str) -> Path:
    target = Path(path).expanduser()
    if target.is_dir():
        raise ExportError(
            f"{target} is a folder, not a file name",
            f"Give a file name, e.g. {target / ('model' + suffix)}.",
        )
    return target if target.suffix else target.with_suffix(suffix)


def _prepare_folder(target: Path) -> None:
    """Create the destination folder, or explain why files cannot be written there."""
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create the folder {folder} for {target.name}: {exc.strerror or exc}",
            "Choose an output folder you can write to (one whose parents are folders, "
            "not files, on a writable drive).",
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(
            f"the folder {folder} is not writable",
            f"Choose another output folder, or make this one writable (chmod u+w '{folder}').",
        )


def _write_error(target: Path, exc: OSError) -> ExportError:
    return ExportError(
        f"could not write {target}: {exc.strerror or exc}",
        "Check that the folder is writable and the drive has free space, then export again.",
    )


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.stem}.kdgui-tmp-{secrets.token_hex(4)}{target.suffix}")


def _reference(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return flatten_outputs(model(x))


def _verify(
    exporter: Exporter,
    model: nn.Module,
    loaded: LoadedModel,
    example: torch.Tensor,
    samples: torch.Tensor | None,
    quantized: bool,
) -> tuple[float, float, list[str]]:
    """Compare the reloaded file with the model; returns (max diff, tolerance, warnings)."""
    checks: list[tuple[str, torch.Tensor]] = [("the example input", example)]
    if samples is not None and len(samples):
        checks.append((f"{len(samples)} real samples", samples.detach().cpu().float()))
    if exporter.dynamic_batch:
        gen = torch.Generator().manual_seed(1)
        other = torch.randn((example.shape[0] + 2, *example.shape[1:]), generator=gen)
        checks.append((f"a batch of {other.shape[0]}", other))
    worst, tol, notes = 0.0, 0.0, []
    for label, x in checks:
        ref = _reference(model, x)
        try:
            got = flatten_outputs(loaded(x))
        except Exception as exc:
            if label == "the example input":
                raise ExportError(
                    f"the exported {exporter.name} file cannot be run on the example input: {exc}",
                    "Export to another format, or report this model as a bug.",
                ) from None
            notes.append(f"the file failed on {label}: {str(exc).splitlines()[0][:200]}")
            worst = float("inf")
            continue
        diff = max_abs_diff(ref, got)
        limit = tolerance_for(ref, quantized, exporter.quantized_tolerance)
        if diff > limit:
            notes.append(f"outputs differ by {diff:.3g} on {label} (tolerance {limit:.3g})")
        worst, tol = max(worst, diff), max(tol, limit)
    return worst, tol, notes


def export_model(
    model: nn.Module,
    fmt: str,
    path: str | os.PathLike[str],
    example_input: torch.Tensor,
    *,
    metadata: dict[str, Any] | None = None,
    verify: bool = True,
    params: dict[str, Any] | None = None,
    samples: torch.Tensor | None = None,
) -> ExportResult:
    """Write ``model`` as ``fmt`` to ``path``, reload it and compare it with the model.

    ``example_input`` is a batch (e.g. ``(1, 1, 28, 28)``); ``samples`` are optional real inputs
    also used in the comparison. ``params`` are the format's options (see the ``exporter``
    registry). A path without a suffix gets the format's (``.pt``, ``.safetensors``, ``.pt2``,
    ``.onnx``, ``.ts``). Raises :class:`ExportError` for a format that cannot hold the model,
    an unwritable folder or a file that cannot be reloaded.
    """
    component = exporters.get(fmt)
    exporter_cls: type[Exporter] = component.load()
    exporter = exporter_cls(component.validate(params, where=f"export.{fmt}"))
    target = _target_path(path, export_format(fmt).suffix)
    _prepare_folder(target)

    net = on_device(model, "cpu")
    example = example_input.detach().cpu()
    opaque = isinstance(net, FrozenTeacher)  # TorchScript, .pt2 or ONNX: see .opaque
    if opaque:
        example = batch_example(net, example)
        if net.fixed_batch is not None:  # its graph fixes the batch: so will the file's
            exporter.dynamic_batch = False
    meta = build_metadata(net, fmt, example, metadata)
    sidecar = exporter.sidecar(meta)
    sidecar_target = target.with_suffix(".json") if sidecar is not None else None
    if sidecar_target == target:
        raise ExportError(f"{target} would be overwritten by its own metadata sidecar", "Use .pt.")
    quantized = has_quantized_modules(net)

    tmp = _temp_name(target)
    # The sidecar sits beside the temporary file under the name the exporter's loader reads,
    # so verification reloads exactly what a user will load.
    tmp_sidecar = tmp.with_suffix(".json") if sidecar_target is not None else None
    result = ExportResult(fmt, str(target), 0, False, None, None)
    rebuilds = "rebuild" in meta
    weights_only = export_format(fmt).weights_only
    if weights_only and not rebuilds:
        result.needs_architecture = True
        result.warnings.append(
            f"reloading this file needs the model's architecture ({meta.get('rebuild_missing')})")
    try:
        with eval_mode(net):
            if opaque:
                result.warnings += write_opaque(net, exporter, tmp, example, meta)
            else:
                result.warnings += exporter.write(net, tmp, example, meta)
            if tmp_sidecar is not None:
                tmp_sidecar.write_text(json.dumps(sidecar, indent=2, sort_keys=True),
                                       encoding="utf-8")
            if verify:
                # A file that records its architecture is reloaded from the file alone.
                reference = None if weights_only and rebuilds else net
                loaded = exporter_cls.load(tmp, reference)
                diff, tol, notes = _verify(exporter, net, loaded, example, samples, quantized)
                result.max_abs_diff, result.tolerance = diff, tol
                result.verified = not notes
                result.warnings += notes
                result.ort_latency_ms = exporter.measure(loaded, example).get("ort_latency_ms")
                del loaded  # onnxruntime keeps the file open on some platforms
        os.replace(tmp, target)
        if tmp_sidecar is not None and sidecar_target is not None:
            os.replace(tmp_sidecar, sidecar_target)
            result.extra_files.append(str(sidecar_target))
    except OSError as exc:
        raise _write_error(target, exc) from None
    finally:
        for leftover in (tmp, tmp_sidecar):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
    result.size_bytes = target.stat().st_size
    return result


def detect_format(path: Path) -> str:
    """The format of an exported file, from its suffix in the format table, and from its contents
    for ``.pt``-like names (a TorchScript or torch.export archive saved as ``.pt``)."""
    by_suffix = format_of_suffix(path.suffix)
    if by_suffix is not None and by_suffix != "state_dict":
        return by_suffix
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("archive_format") for n in names):
            return "pt2"
    return "state_dict"


def _existing(path: str | os.PathLike[str]) -> Path:
    target = Path(path).expanduser()
    if not target.is_file():
        raise ExportError(f"{target} does not exist", "Check the path of the exported model.")
    return target


def load_exported(
    path: str | os.PathLike[str], *, model: nn.Module | None = None, fmt: str | None = None
) -> LoadedModel:
    """Load an exported file as a callable (tensor or NumPy array in, tensor(s) out).

    ``state_dict`` and ``safetensors`` files hold weights only: KD Studio's own files record how
    to rebuild their architecture (even pruned, factorised or int8) and load alone; for others
    pass ``model`` (an instance of the architecture; it is copied, not modified). ``fmt``
    overrides detection by suffix.
    """
    target = _existing(path)
    return _exporter_class(fmt or detect_format(target)).load(target, model)


def read_metadata(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, Any]:
    """The metadata written with an exported file (for a state_dict: its ``.json`` sidecar)."""
    target = _existing(path)
    fmt = fmt or detect_format(target)
    try:
        return _exporter_class(fmt).read_metadata(target)
    except UserError:
        raise
    except Exception as exc:  # a damaged file: the reader's own exception is not for people
        raise ModelLoadError(
            f"the file is damaged or is not a {fmt} file "
            f"({type(exc).__name__}: {str(exc)[:120]})",
            "Export it again from its run, or pick another stage/file.",
            source=str(target),
        ) from None
