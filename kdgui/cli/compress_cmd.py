"""``kdgui compress``: compress one model — prune, decompose, quantize, export — and measure it.

The flags build the same :class:`~kdgui.core.config.CompressionStep` list a config's
``compression.steps`` holds, in Deep Compression's order (prune → low-rank → quantize), and run
:func:`kdgui.engine.compress.run_pipeline`. Without a teacher, fine-tuning uses the labels
(cross-entropy); ``kdgui run CONFIG`` fine-tunes with the distillation loss instead.

Writes ``OUT/stages/<i>_<name>/`` (each stage's model and metrics), ``OUT/summary.json`` (the
``stages`` list and the exports) and ``OUT/model.<ext>`` for each ``--export`` format.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kdgui.core.config import CompressionStep, DataConfig, ModelRef
from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import CompressionError, UserError

QUANTIZE_CHOICES = "dynamic-int8, static-int8, qat-int8, onnx-int8 or fake:BITS"
EXPORT_FORMATS = ("state_dict", "safetensors", "pt2", "onnx", "torchscript")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``compress`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "compress",
        help="prune, decompose, quantize and export one model, measured before and after",
        description="Compress one model and measure every step (accuracy, params, non-zeros, "
        "size raw and zipped, MACs, latency at batch 1 and 32).",
    )
    p.add_argument("model", metavar="MODEL",
                   help="model file (.pt2, TorchScript, state_dict with --arch), 'demo', or an "
                   "architecture such as torchvision:resnet18")
    p.add_argument("--data", required=True, metavar="SPEC",
                   help="dataset: digits, mnist:ROOT, cifar10:ROOT, folder:PATH, ...")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--arch", help="architecture for a state_dict file")
    p.add_argument("--num-classes", type=int, help="classes the architecture outputs")
    p.add_argument("--trust", action="store_true",
                   help="allow loading a pickled model (runs code from the file)")
    p.add_argument("--limit", type=int, help="use only the first N samples of the dataset")
    p.add_argument("--prune", metavar="unstructured:S|structured:R",
                   help="magnitude pruning to sparsity S, or remove a fraction R of channels")
    p.add_argument("--gradual", action="store_true",
                   help="prune gradually (Zhu & Gupta) during --finetune-epochs of fine-tuning")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="fine-tune N epochs after pruning / low-rank (QAT trains N epochs)")
    p.add_argument("--quantize", metavar="METHOD", help=QUANTIZE_CHOICES)
    p.add_argument("--lowrank", type=float, metavar="FRACTION",
                   help="truncated SVD of Linear layers keeping this fraction of each rank")
    p.add_argument("--export", default="", metavar="FORMATS",
                   help="comma-separated: " + ",".join(EXPORT_FORMATS))
    p.add_argument("--train-epochs", type=int, default=0, metavar="N",
                   help="train the model on the data first (for an architecture without weights)")
    p.add_argument("--batch-size", type=int, default=64, help="fine-tuning batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    p.add_argument("--json", action="store_true", help="print summary.json instead of a table")
    p.set_defaults(handler=run)
    return p


def _fraction(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CompressionError(f"{flag} value {text!r} is not a number",
                               f"Write e.g. {flag} 0.5.") from None


def build_steps(args: argparse.Namespace) -> list[CompressionStep]:
    """The pipeline the flags describe (prune → low-rank → quantize)."""
    steps: list[CompressionStep] = []
    epochs = int(args.finetune_epochs or 0)
    if epochs < 0:
        raise CompressionError(f"--finetune-epochs {epochs} is negative", "Use 0 or more.")
    if args.gradual and not args.prune:
        raise CompressionError("--gradual needs --prune unstructured:S",
                               "Add e.g. --prune unstructured:0.9 --finetune-epochs 5.")
    if args.prune:
        kind, _, value = args.prune.partition(":")
        if kind in ("unstructured", "magnitude"):
            params: dict[str, Any] = {"sparsity": _fraction(value, "--prune unstructured:")}
            if args.gradual:
                params["schedule"] = "gradual"
            steps.append(CompressionStep(kind="prune", method="magnitude", params=params,
                                         finetune_epochs=epochs, name="prune"))
        elif kind == "structured":
            steps.append(CompressionStep(
                kind="prune", method="structured",
                params={"ratio": _fraction(value, "--prune structured:")},
                finetune_epochs=epochs, name="prune"))
        else:
            raise CompressionError(f"--prune {args.prune!r} is not understood",
                                   "Use --prune unstructured:S or --prune structured:R.")
        if args.gradual and epochs < 1:
            raise CompressionError("--gradual needs --finetune-epochs N with N ≥ 1",
                                   "Add e.g. --finetune-epochs 5.")
    if args.lowrank is not None:
        steps.append(CompressionStep(kind="lowrank", method="svd",
                                     params={"rank_fraction": args.lowrank},
                                     finetune_epochs=epochs, name="lowrank"))
    if args.quantize:
        method, _, bits = args.quantize.partition(":")
        if method == "fake":
            if not bits.isdigit():
                raise CompressionError(f"--quantize {args.quantize!r} needs a bit width",
                                       "Write e.g. --quantize fake:4 (2 to 8 bits).")
            steps.append(CompressionStep(kind="quantize", method="fake",
                                         params={"bits": int(bits)}, name="quantize"))
        elif method in ("dynamic-int8", "static-int8", "onnx-int8", "qat-int8"):
            steps.append(CompressionStep(
                kind="quantize", method=method, name="quantize",
                finetune_epochs=max(1, epochs) if method == "qat-int8" else 0))
        else:
            raise CompressionError(f"--quantize {args.quantize!r} is not a method",
                                   f"Use {QUANTIZE_CHOICES}.")
    return steps


def _formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise CompressionError(f"--export format {unknown[0]!r} is unknown",
                               f"Use some of: {', '.join(EXPORT_FORMATS)}.")
    return formats


def _model_ref(args: argparse.Namespace) -> ModelRef:
    spec = args.model
    if ":" in spec and not Path(spec).exists():  # an architecture, e.g. torchvision:resnet18
        return ModelRef(arch=spec, num_classes=args.num_classes)
    return ModelRef(path=spec, arch=args.arch, num_classes=args.num_classes, trust=args.trust)


def compress(args: argparse.Namespace) -> int:
    """Load, compress, measure, export; print a table; write summary.json."""
    from kdgui.cli.printer import EventPrinter, comparison_table
    from kdgui.core.events import StageEvent
    from kdgui.engine.compress import CompressionContext, run_pipeline
    from kdgui.engine.compress.finetune import make_finetune, steps_per_epoch
    from kdgui.engine.compress.pipeline import check_steps
    from kdgui.engine.data.load import load_data
    from kdgui.engine.models.loading import load_model

    steps = build_steps(args)
    formats = _formats(args.export)
    if not steps and not formats:
        raise CompressionError("nothing to do: no --prune, --lowrank, --quantize or --export",
                               "Add at least one of them.")
    # every step's parameters are checked before minutes of loading and training
    check_steps(steps, CompressionContext(input_shape=(1,), finetune=lambda *a, **k: iter(())))
    data = load_data(DataConfig(spec=args.data, limit=args.limit))
    loaded = load_model(_model_ref(args), input_shape=data.input_shape,
                        num_classes=data.num_classes)
    model = loaded.module
    finetune = make_finetune(data.train, batch_size=args.batch_size, lr=args.lr)
    printer = EventPrinter()
    if args.train_epochs > 0:
        for event in finetune(model, args.train_epochs):
            printer(event)
    ctx = CompressionContext(
        input_shape=tuple(data.input_shape),
        example_input=data.val[0][0].unsqueeze(0),
        calibration=data.train,
        validation=data.val,
        finetune=finetune,
        steps_per_epoch=steps_per_epoch(data.train, args.batch_size),
    )
    out = Path(args.out)
    columns: list[tuple[str, dict[str, Any]]] = []
    pipeline = run_pipeline(model, steps, ctx, out / "stages")
    while True:
        try:
            event = next(pipeline)
        except StopIteration as stop:
            final, stages = stop.value
            break
        if isinstance(event, StageEvent):
            columns.append((event.name, event.metrics))
        elif not args.json:
            printer(event)
    exports, failed = _export(final, formats, out, ctx, args.json)
    summary = {"model": args.model, "data": args.data, "stages": stages, "exports": exports}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(comparison_table(columns))
        print(f"prune state: {stages[-1].get('prune_state')} · summary: {out / 'summary.json'}")
    return 2 if failed else 0


def _export(model: Any, formats: list[str], out: Path, ctx: Any, quiet: bool
            ) -> tuple[list[dict[str, Any]], bool]:
    from kdgui.core.errors import ExportError
    from kdgui.engine.compress.quantize.onnx import OnnxRuntimeModel
    from kdgui.engine.export import export_model

    records: list[dict[str, Any]] = []
    failed = False
    for fmt in formats:
        try:
            if isinstance(model, OnnxRuntimeModel):
                raise ExportError(f"the onnx-int8 model is an ONNX file and cannot be written as "
                                  f"{fmt}", f"Use the quantized file {model.path}.")
            result = export_model(model, fmt, out / "model", ctx.example(1).cpu())
            records.append({"format": fmt, "ok": True, "path": str(result.path)})
            if not quiet:
                print(f"exported {fmt}: {result.path}")
        except UserError as exc:
            failed = True
            records.append({"format": fmt, "ok": False, "error": exc.one_line()})
            print(f"kdgui: error: export {fmt}: {exc.one_line()}", file=sys.stderr)
    return records, failed


def run(args: argparse.Namespace) -> int:
    """Entry point of ``kdgui compress``: user errors print one line and return 2."""
    try:
        return compress(args)
    except UserError as exc:
        print(f"kdgui: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
