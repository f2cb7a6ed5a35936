"""``kdgui sensitivity``: how much accuracy each layer loses when pruned alone.

Pruning one layer at a time at several ratios shows which layers tolerate sparsity (prune them
harder) and which collapse early (exclude them, or prune them less) before a whole-model run.
The ``sensitivity`` job measures; this module builds its request and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kdgui.cli.driving import consume
from kdgui.core.config import DataConfig
from kdgui.core.errors import UserError
from kdgui.core.events import Event, JobFinished, JobProgress


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sensitivity",
        help="per-layer pruning sensitivity: accuracy when one layer at a time is pruned",
    )
    p.add_argument("model", metavar="MODEL", help="model file, 'demo', or an architecture")
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, e.g. digits")
    p.add_argument("--arch", help="architecture for a state_dict file")
    p.add_argument("--num-classes", type=int, help="classes the architecture outputs")
    p.add_argument("--trust", action="store_true", help="allow pickled models (runs code)")
    p.add_argument("--ratios", default="0.3,0.5,0.7,0.9", metavar="R1,R2,...",
                   help="sparsities to try on each layer (each in [0, 1))")
    p.add_argument("--layers", default="", metavar="A,B,...",
                   help="layers to test (default: every Conv/Linear layer)")
    p.add_argument("--limit", type=int, help="use only the first N samples of the dataset")
    p.add_argument("--out", metavar="FILE.json", help="also write the table as JSON")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)
    return p


def format_table(result: dict[str, Any]) -> str:
    """Layers × ratios of accuracy drop in points, with the baseline on top."""
    ratios = result["ratios"]
    width = max([len("layer"), *(len(n) for n in result["layers"])])
    lines = [f"baseline accuracy {100 * result['baseline']:.2f}%  (cells: drop in points)",
             "layer".ljust(width) + "".join(f"{r:>9.0%}" for r in ratios)]
    for name, drops in zip(result["layers"], result["accuracy_drop"], strict=True):
        lines.append(name.ljust(width) + "".join(f"{100 * d:>9.2f}" for d in drops))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import sensitivity

    tty = sys.stderr.isatty()

    def show(event: Event) -> None:
        if tty and isinstance(event, JobProgress) and event.message:
            print(f"\r\x1b[2K[{event.done + 1}/{event.total}] {event.message}", end="",
                  file=sys.stderr, flush=True)

    try:
        events = sensitivity(args.model, DataConfig(spec=args.data, limit=args.limit),
                             args.ratios, args.layers, arch=args.arch,
                             num_classes=args.num_classes, trust=args.trust, out_json=args.out)
        last = consume(events, show)
    except UserError as exc:
        print(f"kdgui: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    if tty:
        print("\r\x1b[2K", end="", file=sys.stderr)
    if not isinstance(last, JobFinished):
        return 1
    print(json.dumps(last.result, indent=2) if args.json else format_table(last.result))
    return 0
