"""The ``compress`` job: load one model, compress it step by step, measure, export.

The CLI (``kdgui compress``) and the Python API build a :class:`CompressRequest` and consume the
events; neither chains engine steps itself. The order of the job is the point:

1. **validate everything without writing**: the steps (built from the request in Deep
   Compression's order, prune → low-rank → quantize) and their parameters, the export formats,
   the output folder, then data and model (loading writes nothing), the low-rank layer patterns
   against the model, and a dry run of each low-rank step on a copy of the model (a convolutional
   model given the Linear-only SVD refuses here, not after a 45 MB ``stages/0_before``);
2. only then train (``train_epochs``), run the pipeline into ``OUT/stages/``, export the final
   model to ``OUT/model.<ext>`` and write ``OUT/summary.json``;
3. if anything still fails, everything the job wrote is removed (:class:`OutputFolder`).

Without a teacher, fine-tuning uses the labels (cross-entropy); ``kdgui run`` fine-tunes
compressed students with the distillation loss instead.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kdgui.core.components.compression import method_traits
from kdgui.core.config import CompressionStep, DataConfig, ModelRef
from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import CompressionError
from kdgui.core.events import ArtifactEvent, Event, JobFinished, LogEvent, RunControl
from kdgui.core.registry import decomposers, quantizers
from kdgui.core.run_folders import stages_dir, summary_path
from kdgui.engine.jobs._common import OutputFolder, guarded
from kdgui.engine.jobs.export_job import export_formats, export_model_files
from kdgui.engine.jobs.models import model_reference


def quantize_choices() -> str:
    """The ``quantize`` values, from the quantizer registry (``fake`` takes a bit width)."""
    names = [n for n in quantizers.names() if n != "fake"]
    return ", ".join(names) + (" (kmeans:BUDGET: per-layer bits from sensitivity)"
                               if "kmeans" in quantizers else "") + (
        " or fake:BITS" if "fake" in quantizers else "")


@dataclass
class CompressRequest:
    """One compression job, as the CLI's flags or a script describe it.

    ``model`` is a file, ``'demo'`` or an architecture such as ``torchvision:resnet18``.
    ``prune`` is ``unstructured:S`` (magnitude, sparsity S) or ``structured:R`` (remove a
    fraction R of channels); ``quantize`` a registered quantizer or ``fake:BITS``; ``lowrank``
    the fraction of each layer's rank kept, by ``lowrank_method`` (a registered decomposer:
    ``svd`` for Linear layers, ``conv`` for convolutions) on the layers matching
    ``lowrank_layers`` (comma-separated names or shell patterns such as ``fc*,layer4.*``;
    default: every eligible layer but the output). ``steps`` replaces all of these with an
    explicit pipeline (a config's ``compression.steps``).
    """

    model: str | ModelRef
    data: str
    out_dir: str | Path
    arch: str | None = None
    num_classes: int | None = None
    trust: bool = False
    limit: int | None = None
    prune: str | None = None
    gradual: bool = False
    finetune_epochs: int = 0
    quantize: str | None = None
    lowrank: float | None = None
    lowrank_method: str = "svd"
    lowrank_layers: str | None = None
    formats: list[str] | str = field(default_factory=list)
    train_epochs: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    steps: list[CompressionStep] | None = None


def _step(**fields: Any) -> CompressionStep:
    """A step, its method's parameters validated by the schema; a bad value is one line."""
    try:
        return CompressionStep(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        what = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise CompressionError(what, "Check the value against 'kdgui methods'.") from None


def _fraction(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CompressionError(f"{flag} value {text!r} is not a number",
                               f"Write e.g. {flag}0.5.") from None


def _prune_step(req: CompressRequest, epochs: int) -> CompressionStep:
    kind, _, value = str(req.prune).partition(":")
    if kind in ("unstructured", "magnitude"):
        params: dict[str, Any] = {"sparsity": _fraction(value, "--prune unstructured:")}
        if req.gradual:
            params["schedule"] = "gradual"
        return _step(kind="prune", method="magnitude", params=params,
                               finetune_epochs=epochs, name="prune")
    if kind == "structured":
        return _step(kind="prune", method="structured",
                               params={"ratio": _fraction(value, "--prune structured:")},
                               finetune_epochs=epochs, name="prune")
    raise CompressionError(f"--prune {req.prune!r} is not understood",
                           "Use --prune unstructured:S or --prune structured:R.")


def _quantize_step(req: CompressRequest, epochs: int) -> CompressionStep:
    method, _, bits = str(req.quantize).partition(":")
    if method == "fake":
        if not bits.isdigit():
            raise CompressionError(f"--quantize {req.quantize!r} needs a bit width",
                                   "Write e.g. --quantize fake:4 (2 to 8 bits).")
        return _step(kind="quantize", method="fake", params={"bits": int(bits)},
                               name="quantize")
    if method == "kmeans" and bits:  # kmeans:BUDGET, mixed precision by sensitivity
        try:
            budget = float(bits)
        except ValueError:
            budget = 0.0
        if not 2.0 <= budget <= 8.0:
            raise CompressionError(f"--quantize {req.quantize!r}: the bits budget must be a "
                                   "number from 2 to 8", "Write e.g. --quantize kmeans:3.5.")
        return _step(kind="quantize", method="kmeans", params={"bits_budget": budget},
                     name="quantize", finetune_epochs=epochs)
    if method not in quantizers or bits:
        raise CompressionError(f"--quantize {req.quantize!r} is not a method",
                               f"Use {quantize_choices()}.")
    # A method that trains inside its step (QAT) needs ≥ 1 epoch; the others convert once and
    # cannot be fine-tuned afterwards (their traits are declared with them).
    traits = method_traits("quantize", method)
    trains = traits.trains()
    # weight sharing (kmeans) stays float: its step fine-tunes the shared centroids
    after = 0 if traits.produces_int8 else epochs
    return _step(kind="quantize", method=method, name="quantize",
                           finetune_epochs=max(1, epochs) if trains else after)


def build_steps(req: CompressRequest) -> list[CompressionStep]:
    """The pipeline the request describes (prune → low-rank → quantize), validated for form."""
    epochs = int(req.finetune_epochs or 0)
    flags = (req.prune, req.quantize, req.lowrank, req.lowrank_layers)
    if req.steps is not None:
        if any(f is not None for f in flags):
            raise CompressionError("give either explicit steps or prune/lowrank/quantize",
                                   "Put every step in the steps list.")
        return list(req.steps)
    if epochs < 0:
        raise CompressionError(f"--finetune-epochs {epochs} is negative", "Use 0 or more.")
    if req.gradual and not req.prune:
        raise CompressionError("--gradual needs --prune unstructured:S",
                               "Add e.g. --prune unstructured:0.9 --finetune-epochs 5.")
    if req.lowrank is None and (req.lowrank_layers or req.lowrank_method != "svd"):
        raise CompressionError("--lowrank-method and --lowrank-layers need --lowrank FRACTION",
                               "Add e.g. --lowrank 0.5.")
    steps: list[CompressionStep] = []
    if req.prune:
        steps.append(_prune_step(req, epochs))
        if req.gradual and epochs < 1:
            raise CompressionError("--gradual needs --finetune-epochs N with N ≥ 1",
                                   "Add e.g. --finetune-epochs 5.")
    if req.lowrank is not None:
        if req.lowrank_method not in decomposers:
            raise CompressionError(f"--lowrank-method {req.lowrank_method!r} is not a decomposer",
                                   f"Use one of: {', '.join(decomposers.names())}.")
        steps.append(_step(kind="lowrank", method=req.lowrank_method,
                                     params={"rank_fraction": req.lowrank},
                                     finetune_epochs=epochs, name="lowrank"))
    if req.quantize:
        steps.append(_quantize_step(req, epochs))
    return steps


def compression_steps(*, prune: str | None = None, gradual: bool = False,
                      finetune_epochs: int = 0, quantize: str | None = None,
                      lowrank: float | None = None, lowrank_method: str = "svd",
                      lowrank_layers: str | None = None) -> list[CompressionStep]:
    """The steps the compression flags describe, for a run's ``compression.steps`` (``kdgui
    run --prune ...``): the same rules as ``compress``. Low-rank layers are exact names here
    (the student is built later, in the run, so there is no model to match patterns against)."""
    steps = build_steps(CompressRequest(
        model="", data="", out_dir="", prune=prune, gradual=gradual,
        finetune_epochs=finetune_epochs, quantize=quantize, lowrank=lowrank,
        lowrank_method=lowrank_method, lowrank_layers=lowrank_layers))
    names = [n.strip() for n in (lowrank_layers or "").split(",") if n.strip()]
    if names:
        steps = [_step(**{**s.model_dump(), "params": {**s.params, "layers": names}})
                 if s.kind == "lowrank" else s for s in steps]
    return steps


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CompressionError(f"--out {out} is a file", "Give a folder for the results.")
    if summary_path(out).exists() or stages_dir(out).exists():
        raise CompressionError(f"'{out}' already holds a compression result",
                               "Choose another --out folder (or delete that one).")


def match_layers(model: Any, patterns: str) -> list[str]:
    """Names of the model's weight layers (a weight of 2+ dimensions: Linear, Conv) that match
    any comma-separated name or shell pattern; an unmatched pattern is an error."""
    layers = [name for name, module in model.named_modules()
              if name and getattr(getattr(module, "weight", None), "ndim", 0) >= 2]
    chosen: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        hits = [n for n in layers if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise CompressionError(
                f"--lowrank-layers {pattern!r} matches no Linear or Conv layer of the model",
                f"Use names from 'kdgui inspect MODEL', e.g. {', '.join(layers[:6])}.")
        chosen += [n for n in hits if n not in chosen]
    return chosen


def _preflight_lowrank(model: Any, steps: list[CompressionStep], ctx: Any) -> None:
    """Run each low-rank step on a copy of the model: the decomposer refuses (no eligible
    layer, a layer of the wrong type) before anything is written or trained."""
    from kdgui.engine.compress.context import apply_unit

    for step in steps:
        if step.kind != "lowrank":
            continue
        try:
            for _ in apply_unit(step.kind, step.method, copy.deepcopy(model), step.params, ctx):
                pass  # a decomposer yields at most notes; they are for the real run
        except CompressionError as exc:  # name the request's words for the config's
            others = ", ".join(n for n in decomposers.names() if n != step.method)
            raise CompressionError(
                exc.what, f"{exc.fix} With kdgui compress: --lowrank-method {others} for "
                "another decomposer, --lowrank-layers PATTERN to choose the layers "
                "('kdgui inspect MODEL' lists them).") from None
        finally:
            ctx.drain_notes()


def compress(request: CompressRequest, *, control: RunControl | None = None
             ) -> Generator[Event, str | None, dict[str, Any] | None]:
    """Compress ``request.model``; yields events, ends with ``JobFinished`` (result: the
    ``summary.json`` content) or ``RunFailed`` (and then nothing is left in ``out_dir``)."""
    control = control or RunControl()
    out = OutputFolder(request.out_dir)
    return (yield from guarded(_compress(request, out, control), out.path, control=control,
                               cleanup=out.remove_partial))


def _compress(req: CompressRequest, out: OutputFolder, control: RunControl
              ) -> Generator[Event, str | None, dict[str, Any]]:
    from kdgui.engine.compress import CompressionContext, run_pipeline
    from kdgui.engine.compress.finetune import make_finetune, steps_per_epoch
    from kdgui.engine.compress.pipeline import check_steps
    from kdgui.engine.data.load import load_data
    from kdgui.engine.models.loading import load_model

    steps = build_steps(req)
    formats = export_formats(req.formats)
    if not steps and not formats:
        raise CompressionError("nothing to do: no --prune, --lowrank, --quantize or --export",
                               "Add at least one of them.")
    check_steps(steps, CompressionContext(input_shape=(1,), finetune=lambda *a, **k: iter(())))
    _check_out(out.path)
    data = load_data(DataConfig(spec=req.data, limit=req.limit))
    ref = model_reference(req.model, arch=req.arch, num_classes=req.num_classes,
                          trust=req.trust)
    loaded = load_model(ref, input_shape=data.input_shape,
                        num_classes=data.num_classes)
    model = loaded.module
    if req.lowrank_layers:
        names = match_layers(model, req.lowrank_layers)
        steps = [_step(**{**s.model_dump(), "params": {**s.params, "layers": names}})
                 if s.kind == "lowrank" else s for s in steps]
    finetune = make_finetune(data.train, batch_size=req.batch_size, lr=req.lr)
    ctx = CompressionContext(
        input_shape=tuple(data.input_shape),
        example_input=data.val[0][0].unsqueeze(0),
        calibration=data.train,
        validation=data.val,
        finetune=finetune,
        steps_per_epoch=steps_per_epoch(data.train, req.batch_size),
    )
    _preflight_lowrank(model, steps, ctx)
    # Validated: from here on the job writes (and removes it all if a step still fails).
    if req.train_epochs > 0:
        yield LogEvent(level="info", message=f"training the model for {req.train_epochs} "
                       "epoch(s) before compressing it")
        yield from _stoppable(finetune(model, req.train_epochs), control)
    pipeline = run_pipeline(model, steps, ctx, stages_dir(out.path))
    final, stages = yield from _stoppable(pipeline, control)
    metadata = {"input_shape": list(data.input_shape), "num_classes": data.num_classes,
                "class_names": data.describe().get("class_names", []),
                "stage": stages[-1]["name"]}
    exports = yield from export_model_files(final, formats, out.path, ctx.example(1).cpu(),
                                            metadata=metadata, stage=stages[-1]["name"])
    summary = {"model": req.model, "data": req.data, "input_shape": list(data.input_shape),
               "num_classes": data.num_classes, "stages": stages, "exports": exports}
    from kdgui.engine.compress.share.table import staged_table

    table = staged_table(steps, stages, exports)  # pruning → sharing → coding, when shared
    if table is not None:
        summary["deep_compression"] = table
    path = summary_path(out.path)
    atomic_write_text(path, json.dumps(summary, indent=2, default=str))
    yield ArtifactEvent(what="summary", path=str(path))
    yield JobFinished(job="compress", out_dir=str(out.path), result=summary)
    return summary


class _StoppedByUser(CompressionError):
    """The person stopped the job: its partial output is removed like a failure's."""


def _stoppable(events: Generator[Event, Any, Any], control: RunControl
               ) -> Generator[Event, Any, Any]:
    """Pass events on; stop between two of them when asked (control or a sent 'stop')."""
    while True:
        if control.stop_requested:
            raise _StoppedByUser("compression stopped before it finished",
                                 "Run it again; nothing of the stopped run was kept.")
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        yield event


__all__ = ["CompressRequest", "build_steps", "compress", "compression_steps", "match_layers",
           "quantize_choices"]
