"""``kdgui sweep``: run one experiment per value of one knob and compare them.

    kdgui sweep --demo --vary distill.temperature=1,4,8 --out DIR
    kdgui sweep CONFIG.yaml --vary prune.sparsity=0.5,0.8,0.95 --out DIR --epochs 2

Writes one run folder per value and ``DIR/sweep.csv`` (the ``sweep`` job; see
:mod:`kdgui.engine.sweep` for the keys and shorthands, and the folder layout). Ctrl-C stops the run in progress after its current
batch; the runs that completed stay listed in sweep.csv.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from kdgui.cli.flags import add_config_flags, apply_config_flags
from kdgui.cli.printer import fmt_bytes, fmt_ms, fmt_pct
from kdgui.core.errors import ConfigError

KEY_HELP = (
    "the knob and its values: any config key (distill.temperature, distill.alpha, student.width, "
    "training.epochs, compression.steps.0.params.sparsity, ...) or a shorthand: T, alpha, width, "
    "epochs, lr, prune.sparsity, prune.ratio, quantize.bits, lowrank.rank_fraction, lowrank.rank, "
    "lowrank.energy"
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sweep`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "sweep", help="run one experiment per value of one knob; write DIR/sweep.csv",
        description="Vary one setting over N values, one run after another, and write a run "
        "folder per value plus DIR/sweep.csv with accuracy, size, latency and the Pareto "
        "fronts of accuracy against size and against latency.",
    )
    p.add_argument("config", nargs="?", help="config file (YAML or JSON)")
    p.add_argument("--demo", action="store_true",
                   help="start from the embedded demo config instead of a file")
    p.add_argument("--vary", required=True, metavar="KEY=V1,V2,...", help=KEY_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="sweep folder")
    p.add_argument("--size", default="zip_size_bytes",
                   choices=("zip_size_bytes", "size_bytes", "effective_bytes", "nonzero_params",
                            "params"),
                   help="size measure of the accuracy/size Pareto front (default zip_size_bytes)")
    p.add_argument("--verbose", action="store_true", help="print every epoch of every run")
    add_config_flags(p)
    p.set_defaults(handler=cmd_sweep)
    return p


def base_config(args: argparse.Namespace) -> Any:
    """The config every run starts from: --demo or the file, with the usual flags applied."""
    from kdgui.core.config import demo_config
    from kdgui.core.config_io import load_config

    if args.demo == bool(args.config):
        raise ConfigError("give either a config file or --demo",
                          "Run e.g. kdgui sweep --demo --vary distill.temperature=1,4,8 "
                          "--out DIR.")
    config = demo_config() if args.demo else load_config(args.config)
    return apply_config_flags(config, args)


def format_rows(rows: list[dict[str, Any]], key: str) -> str:
    """The sweep as a plain-text table; ★ marks the Pareto-optimal runs."""
    header = [key, "accuracy", "size (zip)", "eff. size", "latency b1", "Pareto size/lat"]
    lines = [header]
    for r in rows:
        lines.append([
            str(r.get("label", r.get("value"))), fmt_pct(r.get("accuracy")),
            fmt_bytes(r.get("zip_size_bytes")), fmt_bytes(r.get("effective_bytes")),
            fmt_ms(r.get("latency_ms")),
            ("★" if r.get("pareto_size") else "·") + " / " + ("★" if r.get("pareto_latency")
                                                          else "·"),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.rjust(w) if i else c.ljust(w)
                             for i, (c, w) in enumerate(zip(line, widths, strict=True))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def drive_sweep(events: Any, control: Any, *, verbose: bool = False,
                stream: Any = None) -> tuple[list[dict[str, Any]], Any]:
    """Print a sweep's progress; Ctrl-C stops it cleanly (twice: abort). Returns (rows, end)."""
    import threading

    from kdgui.core.events import EpochEvent, RunFailed
    from kdgui.engine.jobs import SweepFinished, SweepRunDone, SweepRunEvent, SweepStarted

    out = stream or sys.stdout

    def on_interrupt(signum: int, frame: Any) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        print("\nstopping the sweep after this batch (Ctrl-C again to abort)", file=sys.stderr)
        control.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_interrupt)
    end = None
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    for event in events:
        if isinstance(event, SweepStarted):
            labels = event.labels
            print(f"sweep of {event.key} over {', '.join(labels)} → {event.out_dir}", file=out)
        elif isinstance(event, SweepRunEvent):
            inner = event.event
            if verbose and isinstance(inner, EpochEvent):
                print(f"  [{event.index + 1}/{event.total}] epoch {inner.epoch}  val acc "
                      f"{fmt_pct(inner.val_accuracy)}", file=out)
            elif isinstance(inner, RunFailed):
                print(f"  [{event.index + 1}/{event.total}] failed: "
                      f"{inner.error.get('message') or inner.error.get('what')}", file=out)
        elif isinstance(event, SweepRunDone):
            label = labels[event.index] if event.index < len(labels) else str(event.value)
            acc = fmt_pct(event.row.get("accuracy")) if event.row else "—"
            print(f"[{event.index + 1}/{event.total}] {label}: {event.status}, accuracy {acc}",
                  file=out, flush=True)
        elif isinstance(event, SweepFinished):
            end = event
            rows = event.rows
    return rows, end


def cmd_sweep(args: argparse.Namespace) -> int:
    from kdgui.core.events import RunControl
    from kdgui.engine.jobs import parse_vary, sweep

    key, values = parse_vary(args.vary)
    config = base_config(args)
    control = RunControl()
    rows, end = drive_sweep(
        sweep(config, key, values, args.out, control=control, size_key=args.size),
        control, verbose=args.verbose,
    )
    if rows:
        print()
        print(format_rows(rows, key))
    if end is not None:
        state = "stopped" if end.stopped else "done"
        print(f"\n{state}: {len(rows)} of {len(values)} runs completed"
              + (f", {end.failed} failed" if end.failed else "") + f"; table in {end.csv_path}")
        if end.stopped:
            return 130
        if end.failed:
            return 2
    return 0
