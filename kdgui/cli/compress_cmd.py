"""``kdgui compress``: compress one model — prune, decompose, quantize, export — and measure it.

The flags become a :class:`~kdgui.engine.jobs.CompressRequest`; the ``compress`` job validates
everything (steps, formats, folder, data, model, low-rank layers) before it writes anything,
then writes ``OUT/stages/<i>_<name>/`` (each stage's model and metrics), ``OUT/model.<ext>`` per
``--export`` format (the final stage) and ``OUT/summary.json``. A step that still fails leaves
nothing behind. This module only builds the request and prints the events.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kdgui.cli.driving import consume
from kdgui.cli.printer import EventPrinter, comparison_table, staged_table
from kdgui.core.errors import UserError, printable
from kdgui.core.events import ArtifactEvent, Event, JobFinished, LogEvent, RunControl, StageEvent
from kdgui.core.registry import decomposers, exporters, quantizers


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``compress`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "compress",
        help="prune, decompose, quantize and export one model, measured before and after",
        description="Compress one model and measure every step (accuracy, params, non-zeros, "
        "size raw and zipped, MACs, latency at batch 1 and 32). Everything is checked before "
        "anything is written; a step that fails leaves no partial output.",
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
    p.add_argument("--quantize", metavar="METHOD",
                   help=", ".join(n for n in quantizers.names() if n != "fake")
                   + " (kmeans:BUDGET: mixed precision, average bits 2-8) or fake:BITS")
    p.add_argument("--lowrank", type=float, metavar="FRACTION",
                   help="low-rank factorisation keeping this fraction of each layer's rank")
    p.add_argument("--lowrank-method", default="svd", metavar="METHOD",
                   help="decomposer: " + ", ".join(
                       f"{c.name} ({c.title})" for c in decomposers) + "; default svd")
    p.add_argument("--lowrank-layers", metavar="PATTERN",
                   help="layers to factorise: comma-separated names or patterns, e.g. "
                   "'fc1,fc2' or 'layer4.*' (default: every eligible layer but the output)")
    p.add_argument("--export", default="", metavar="FORMATS",
                   help="comma-separated: " + ",".join(exporters.names()))
    p.add_argument("--train-epochs", type=int, default=0, metavar="N",
                   help="train the model on the data first (for an architecture without weights)")
    p.add_argument("--batch-size", type=int, default=64, help="fine-tuning batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    p.add_argument("--json", action="store_true", help="print summary.json instead of a table")
    p.set_defaults(handler=run)
    return p


def request_from(args: argparse.Namespace) -> Any:
    """The job's request, field for field from the flags."""
    from kdgui.engine.jobs import CompressRequest

    return CompressRequest(
        model=args.model, data=args.data, out_dir=args.out, arch=args.arch,
        num_classes=args.num_classes, trust=args.trust, limit=args.limit, prune=args.prune,
        gradual=args.gradual, finetune_epochs=args.finetune_epochs, quantize=args.quantize,
        lowrank=args.lowrank, lowrank_method=args.lowrank_method,
        lowrank_layers=args.lowrank_layers, formats=args.export,
        train_epochs=args.train_epochs, batch_size=args.batch_size, lr=args.lr,
    )


def compress(args: argparse.Namespace) -> int:
    """Run the job; print its progress, the comparison table and the summary's place."""
    from kdgui.engine.jobs import compress as compress_job

    columns: list[tuple[str, dict[str, Any]]] = []
    printer = EventPrinter()

    def show(event: Event) -> None:
        if isinstance(event, StageEvent):
            columns.append((event.name, event.metrics))
        elif isinstance(event, LogEvent) and event.level == "error":
            print(f"kdgui: error: {event.message}", file=sys.stderr)
        elif isinstance(event, ArtifactEvent) and event.what.startswith("export:"):
            if not args.json:
                print(f"exported {event.what.partition(':')[2]}: {event.path}")
        elif not args.json and not isinstance(event, JobFinished):
            printer(event)

    control = RunControl()
    try:
        last = consume(compress_job(request_from(args), control=control), show, control,
                       what="the compression (nothing of it is kept)")
    except UserError as exc:
        if not control.stop_requested:
            raise
        print(f"kdgui: {exc.one_line()}", file=sys.stderr)
        return 130
    if not isinstance(last, JobFinished):
        return 1
    summary = last.result
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(comparison_table(columns))
        if summary.get("deep_compression"):
            for line in staged_table(summary["deep_compression"]).splitlines():
                print(printable(line))  # layer names come from the model's file
        print(f"prune state: {summary['stages'][-1].get('prune_state')} · summary: "
              f"{last.out_dir}/summary.json")
    return 2 if any(not e.get("ok") for e in summary.get("exports", [])) else 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``kdgui compress``: user errors print one line and return 2."""
    try:
        return compress(args)
    except UserError as exc:
        print(f"kdgui: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
