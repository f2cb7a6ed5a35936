"""The headless subcommands: demo, run, inspect, config, presets, methods (and the others,
each in its own ``*_cmd`` module). Every command reaches the engine only through
:mod:`kdgui.engine.jobs`: it builds a request from its flags and prints the job's events."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kdgui.cli import (
    classroom_cmd,
    compress_cmd,
    diff_cmd,
    export_cmd,
    history_cmd,
    netron_cmd,
    report_cmd,
    sensitivity_cmd,
    sweep_cmd,
)
from kdgui.cli.driving import drive
from kdgui.cli.flags import add_config_flags, apply_config_flags
from kdgui.cli.printer import EventPrinter
from kdgui.core.config import ExperimentConfig, ModelRef, demo_config
from kdgui.core.errors import ConfigError, UserError
from kdgui.core.events import RunControl
from kdgui.core.run_folders import config_path

#: The subcommands in their own modules (each has ``add_parser(subparsers)``), in help order.
COMMAND_MODULES = (compress_cmd, export_cmd, sensitivity_cmd, sweep_cmd, report_cmd,
                   history_cmd, classroom_cmd, netron_cmd, diff_cmd)


def register_all(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="distill the embedded demo end to end (offline)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<time>-demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser(
        "run", help="run an experiment from a YAML/JSON config, or from flags alone",
        description="Distill a teacher into a student. Give a config file, or only flags: "
        "kdgui run --teacher FILE --data SPEC --out DIR (every config field has a flag or "
        "--set KEY=VALUE; the run folder's config.yaml saves the setup).")
    p.add_argument("config", nargs="?", help="config file (YAML or JSON); optional")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<time>-<name>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--events", choices=("text", "jsonl"), default="text",
                   help="jsonl: print each event as one JSON line (what a launcher reads)")
    add_config_flags(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("inspect", help="describe a model file: format, layers, params, MACs")
    p.add_argument("model", help="model file")
    p.add_argument("--arch", help="architecture for a state_dict")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--trust", action="store_true", help="allow pickled modules (runs code)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("config", help="print an annotated example config, or check one")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--example", action="store_true", help="print an annotated example")
    g.add_argument("--check", metavar="FILE", help="validate a config file")
    p.set_defaults(handler=cmd_config)

    p = sub.add_parser("presets", help="list student presets")
    p.set_defaults(handler=cmd_presets)

    p = sub.add_parser("methods", help="list losses, pruners, quantizers, decomposers, exporters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_methods)

    for module in COMMAND_MODULES:
        module.add_parser(sub)


def _execute(config: ExperimentConfig, out: str | None, resume: bool, quiet: bool,
             events: str = "text") -> int:
    from kdgui.engine.jobs import process_rank, run

    control = RunControl()
    printer: Any = EventPrinter(quiet=quiet, teacher_epochs=config.teacher.train_epochs)
    if events == "jsonl":
        printer = _json_line
    summary = drive(run(config, out, control=control, resume=resume), printer, control)
    # Under torchrun, processes other than rank 0 train silently: no events is their success.
    return 0 if summary or process_rank() > 0 else 1


def _json_line(event: Any) -> None:
    """One event as one JSON line on stdout, which a launcher reads as rank 0's stream; another
    rank only ever sends its own failure, and that goes to stderr (the launcher's log)."""
    from kdgui.engine.jobs import process_rank

    out = sys.stdout if process_rank() == 0 else sys.stderr
    print(json.dumps(event.to_dict(), allow_nan=True), file=out, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    config = apply_config_flags(demo_config(), args)
    return _execute(config, args.out, False, args.quiet)


def cmd_run(args: argparse.Namespace) -> int:
    from kdgui.core.config_io import load_config
    from kdgui.core.preflight import check_paths

    resume = args.resume
    if resume:
        run_dir = Path(args.out or (resume if isinstance(resume, str) else args.config or ""))
        if not str(run_dir) or not config_path(run_dir).is_file():
            raise ConfigError(
                f"'{run_dir}' is not a run folder (no config.yaml)",
                "Pass the folder of an earlier run: kdgui run --resume RUN_DIR.",
            )
        config = load_config(config_path(run_dir))
        return _execute(config, str(run_dir), True, args.quiet, args.events)
    if args.config:
        base = load_config(args.config)
    elif args.teacher or args.data or args.arch:
        base = ExperimentConfig(name=_name_for(args.teacher or args.arch))
        if args.arch and not args.teacher:  # an architecture alone, not the demo's weights
            base.teacher = ModelRef()
    else:
        raise ConfigError("no config file and no --teacher or --data given",
                          "Run: kdgui run --teacher FILE --data SPEC --out DIR, or kdgui run "
                          "CONFIG.yaml --out DIR (kdgui config --example prints one).")
    config = apply_config_flags(base, args)
    check_paths(config)  # what --check refuses, run refuses the same way, before any work
    return _execute(config, args.out, False, args.quiet, args.events)


def _name_for(teacher: str | None) -> str:
    """A run name from the teacher (file stem or architecture name), e.g. ``resnet18``."""
    if not teacher:
        return "experiment"
    if ":" in teacher and not Path(teacher).exists():  # torchvision:resnet18, model.py:Net
        teacher = teacher.rpartition(":")[2]
    return Path(teacher).stem or "experiment"


def cmd_inspect(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import inspect_model

    info = inspect_model(ModelRef(path=args.model, arch=args.arch, num_classes=args.num_classes,
                                  trust=args.trust))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(format_inspection(info))
    return 0


def format_inspection(info: dict[str, Any]) -> str:
    from kdgui.cli.printer import fmt_count

    lines = [f"file: {info.get('path', '')}", f"format: {info.get('format', '?')}"]
    if info.get("input_shape"):
        lines.append("input shape: " + "×".join(str(s) for s in info["input_shape"]))
    if info.get("params") is not None:
        lines.append(f"params: {info['params']:,}")
    if info.get("macs") not in (None, -1):
        lines.append(f"MACs: {fmt_count(info['macs'])}")
    layers = info.get("layers") or []
    if layers:
        lines.append(f"layers ({len(layers)}):")
        for layer in layers[:200]:
            shape = layer.get("out_shape") or layer.get("shape") or ""
            lines.append(f"  {layer.get('name', ''):<32} {layer.get('type', ''):<20} "
                         f"{shape!s:<22} {layer.get('params', 0):>10,}")
    tensors = info.get("tensors") or []
    if tensors and not layers:
        lines.append(f"tensors ({len(tensors)}):")
        for t in tensors[:200]:
            lines.append(f"  {t.get('name', ''):<40} {t.get('shape', '')!s:<20} "
                         f"{t.get('dtype', '')}")
    for note in info.get("notes", []) or []:
        lines.append(f"note: {note}")
    # Layer and tensor names come from the file: shown escaped, never as terminal codes.
    from kdgui.core.errors import printable

    return "\n".join(printable(line) for line in lines)


def cmd_config(args: argparse.Namespace) -> int:
    from kdgui.core.config_io import example_yaml, load_config
    from kdgui.core.preflight import check_paths

    if args.example:
        sys.stdout.write(example_yaml())
        return 0
    config = load_config(args.check)
    check_paths(config)  # the schema, then the files it names
    print(f"{args.check}: valid")
    from pathlib import Path

    from kdgui.core.config_io import parse_config_text
    from kdgui.core.distill_terms import formula, migration_note

    raw = parse_config_text(Path(args.check).read_text(encoding="utf-8-sig"),
                            is_json=args.check.lower().endswith(".json"), source=args.check)
    note = migration_note(raw) if isinstance(raw, dict) else None
    print(note or f"loss: {formula(config.distill.resolved_terms())}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from kdgui.core.presets import PRESETS

    for name, preset in PRESETS.items():
        print(f"{name:<18} {getattr(preset, 'description', '')}")
    return 0


PLURAL = {"loss": "losses"}


def cmd_methods(args: argparse.Namespace) -> int:
    from kdgui.core.registry import REGISTRIES

    data: dict[str, Any] = {}
    for kind, registry in REGISTRIES.items():
        data[kind] = []
        for comp in registry:
            data[kind].append({
                "name": comp.name, "title": comp.title, "summary": comp.summary,
                "formula": comp.formula, "paper": comp.paper,
                "params": [
                    {"name": s.name, "kind": s.kind, "default": s.default, "range": s.range_text(),
                     "help": s.help}
                    for s in comp.param_specs()
                ],
            })
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    for kind, comps in data.items():
        if not comps:
            continue
        print(f"{PLURAL.get(kind, kind + 's')}:")
        for c in comps:
            print(f"  {c['name']:<16} {c['title']}" + (f" — {c['formula']}" if c["formula"] else ""))
            for prm in c["params"]:
                rng = f" [{prm['range']}]" if prm["range"] else ""
                print(f"      {prm['name']} = {prm['default']!r}{rng}: {prm['help']}")
    return 0


__all__ = ["UserError", "register_all"]
