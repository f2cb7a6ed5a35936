"""``kdgui diff A B``: two measured models layer by layer (teacher vs student, before vs after a
compression stage), read from run folders' ``metrics.jsonl``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kdgui.cli.printer import fmt_count


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff", help="two models layer by layer: shape, params, sparsity, bits, rank",
        description="Compare two models a run measured. Each side is RUN (its last measured "
                    "model) or RUN:MODEL, MODEL being teacher, student or a compression "
                    "stage's name; e.g. kdgui diff runs/x:student runs/x:prune.")
    p.add_argument("a", help="RUN or RUN:MODEL")
    p.add_argument("b", help="RUN or RUN:MODEL")
    p.add_argument("--changed", action="store_true", help="show only layers that differ")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_diff)


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "shape":
        return "×".join(str(v) for v in value[1:]) if isinstance(value, list) else str(value)
    if kind == "params":
        return fmt_count(value)
    if kind == "sparsity":
        return f"{100 * value:.0f}%"
    return str(value)


def format_diff(result: dict[str, Any], only_changed: bool = False) -> str:
    """The diff as an aligned text table, A → B in each cell that differs."""
    kinds = ("type", "shape", "params", "sparsity", "bits", "rank")
    table = [["layer", *kinds, "status"]]
    for row in result["rows"]:
        if only_changed and row["status"] == "same":
            continue
        cells = []
        for kind in kinds:
            a, b = (_cell(v, kind) for v in row[kind])
            cells.append(a if a == b else f"{a} → {b}")
        table.append([row["name"], *cells, row["status"]])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [f"A: {result['a']}", f"B: {result['b']}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in table]
    pa, pb = result["params"]
    lines += ["", f"params {fmt_count(pa)} → {fmt_count(pb)}; {result['changed']} of "
                  f"{len(result['rows'])} layers differ"]
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import diff_models

    result = diff_models(args.a, args.b)
    print(json.dumps(result, indent=2) if args.json else format_diff(result, args.changed))
    return 0
