"""``kdgui diff A B``: two measured models layer by layer (teacher vs student, before vs after a
compression stage), read from run folders' ``metrics.jsonl``; and ``kdgui bias-correct RUN``,
the missing-class bias correction of a run (both compare a run's models after the fact)."""

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

    p = sub.add_parser(
        "bias-correct", help="raise the output bias of classes a run never saw (Hinton et al.)",
        description="For a run with data.exclude_classes: compute the bias shift of each "
                    "excluded class (its share of the student's validation predictions made "
                    "equal to the teacher's) and print the validation accuracy per class "
                    "without and with it.")
    p.add_argument("run", help="run folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_bias)


def cmd_bias(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import bias_correction

    r = bias_correction(args.run)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    shifts = ", ".join(f"class {c}: +{b:.2f}" for c, b in r["shifts"].items())
    print(f"bias shift ({r['rule']}): {shifts}")
    print(f"{'class':<6} {'without':>8} {'with':>8}")
    for c, (a, b) in enumerate(zip(*r["per_class"], strict=True)):
        print(f"{c:<6} {100 * a:>7.1f}% {100 * b:>7.1f}%")
    print(f"{'all':<6} {100 * r['accuracy'][0]:>7.1f}% {100 * r['accuracy'][1]:>7.1f}%")
    return 0


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
        kind = row.get("kind")
        status = row["status"] if kind in (None, "same", "changed") else f"{row['status']} ({kind})"
        table.append([row["name"], *cells, status])
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
