"""``kdgui export RUN_DIR``: write a run's final model (or a chosen stage) to other formats.

    kdgui export runs/exp1 --format onnx,pt2
    kdgui export runs/exp1 --format torchscript --stage student --out deploy/
    kdgui export runs/exp1 --list

The ``export_run`` job picks the stage (the last compression stage by default), writes each
file, reloads it and compares its outputs; the table says which stage was written and whether
each file was verified.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kdgui.cli.driving import consume
from kdgui.cli.printer import fmt_bytes
from kdgui.core.events import Event, JobFinished, LogEvent
from kdgui.core.registry import exporters


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "export", help="export a run's final model (or a stage) to ONNX, pt2, ...",
        description="Write a model of a run folder (or a 'kdgui compress' folder) to files. By "
        "default the final model: the last compression stage, or the student when the run did "
        "not compress. Each file is reloaded and compared with the model before it is kept.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or a compress output folder")
    p.add_argument("--format", dest="formats", default="", metavar="FORMATS",
                   help="comma-separated: " + ",".join(exporters.names()))
    p.add_argument("--stage", default="final",
                   help="final (default), student, or a stage folder name such as 2_quantize")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/export)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not reload and compare the files (they are then not 'verified')")
    p.add_argument("--list", action="store_true", help="list the models that can be exported")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_export)
    return p


def _verdict(record: dict[str, Any]) -> str:
    if not record.get("ok"):
        return f"failed: {record.get('error', '')}"
    if record.get("verified"):
        return f"verified (max |Δ| {record['max_abs_diff']:.3g})"
    if not record.get("verify_ran"):
        return "not verified (--no-verify)"
    return "written, but its outputs differ: " + "; ".join(record.get("warnings") or [])


def cmd_export(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import export_run, run_stages

    if args.list:
        stages = run_stages(args.run_dir)
        for n, entry in enumerate(stages):
            final = "  (final)" if n == len(stages) - 1 else ""
            print(f"{entry['stage']:<28} {entry['path']}{final}")
        return 0

    def show(event: Event) -> None:
        if isinstance(event, LogEvent) and not args.json:
            print(event.message)

    last = consume(export_run(args.run_dir, args.formats, stage=args.stage, out_dir=args.out,
                              verify=not args.no_verify), show)
    if not isinstance(last, JobFinished):
        return 1
    result = last.result
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for record in result["exports"]:
            where = record.get("path") or ""
            size = f" ({fmt_bytes(record.get('size_bytes'))})" if record.get("ok") else ""
            print(f"{record['format']:<12} {where}{size}: {_verdict(record)}")
    return 0 if all(r.get("ok") for r in result["exports"]) else 2
