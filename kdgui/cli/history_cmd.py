"""``kdgui history``: the local index of run folders — list, search, tag, compare, delete, rebuild.

    kdgui history list [--tag T] [--status completed] [--sort accuracy]
    kdgui history search TEXT
    kdgui history tag RUN baseline lecture-3 [--remove old]
    kdgui history compare RUN RUN [RUN...]
    kdgui history delete RUN [--files]
    kdgui history add FOLDER
    kdgui history rebuild

RUN is a run's id (from ``list``), its folder path or a unique prefix of its folder name. The
index lives in ROOT/history.sqlite (ROOT: --root, $KDGUI_RUNS or ./runs) and is rebuilt from the
run folders whenever it is missing or damaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``history`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "history", help="search, tag, compare and delete past runs (a local SQLite index)",
        description="A local index of run folders under ROOT (--root, $KDGUI_RUNS or ./runs). "
        "The run folders are the truth: a missing or damaged index is rebuilt from them.",
    )
    p.add_argument("--root", metavar="DIR", help="runs folder (default $KDGUI_RUNS or ./runs)")
    sub = p.add_subparsers(dest="action", metavar="ACTION")

    def filters(q: argparse.ArgumentParser) -> None:
        q.add_argument("--tag", help="only runs with this tag")
        q.add_argument("--status", choices=("completed", "stopped", "failed", "incomplete"))
        q.add_argument("--dataset", help="only runs on this data spec (e.g. digits)")
        q.add_argument("--min-accuracy", type=float, metavar="A", help="accuracy ≥ A (0–1)")
        q.add_argument("--sort", default="created",
                       choices=("created", "name", "accuracy", "size_bytes", "zip_size_bytes",
                                "latency_ms", "params", "status"))
        q.add_argument("--ascending", action="store_true")
        q.add_argument("--limit", type=int, metavar="N")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    q = sub.add_parser("list", help="list indexed runs")
    filters(q)
    q.set_defaults(handler=cmd_list, text="")
    q = sub.add_parser("search", help="runs whose name, data, models, tags or note hold TEXT")
    q.add_argument("text")
    filters(q)
    q.set_defaults(handler=cmd_list)
    q = sub.add_parser("tag", help="add (or --remove) tags of a run")
    q.add_argument("run")
    q.add_argument("tags", nargs="*")
    q.add_argument("--remove", nargs="*", default=[], metavar="TAG")
    q.set_defaults(handler=cmd_tag)
    q = sub.add_parser("compare", help="runs side by side: metrics and config differences")
    q.add_argument("runs", nargs="+")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_compare)
    q = sub.add_parser("delete", help="drop a run from the index (--files: also from disk)")
    q.add_argument("runs", nargs="+")
    q.add_argument("--files", action="store_true", help="also delete the run folder")
    q.set_defaults(handler=cmd_delete)
    q = sub.add_parser("add", help="index a run folder, a sweep, or every run under a folder")
    q.add_argument("folder")
    q.set_defaults(handler=cmd_add)
    q = sub.add_parser("rebuild", help="rebuild the index from the run folders")
    q.set_defaults(handler=cmd_rebuild)
    p.set_defaults(handler=cmd_list, text="", tag=None, status=None, dataset=None,
                   min_accuracy=None, sort="created", ascending=False, limit=None, json=False)
    return p


def _open(args: argparse.Namespace) -> Any:
    from kdgui.core.history import open_history

    history = open_history(args.root)
    if history.rebuilt_from and history.rebuilt_from != "missing":
        aside = f"; the old file is kept as {history.set_aside}" if history.set_aside else ""
        print(f"kdgui: the history index was {history.rebuilt_from}: rebuilt it from the run "
              f"folders ({history.count()} runs){aside}", file=sys.stderr)
    return history


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _kb(x: float | None) -> str:
    return "—" if x is None else f"{x / 1024:.1f} KB"


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as history:
        records = history.search(
            args.text, tag=args.tag, status=args.status, dataset=args.dataset,
            min_accuracy=args.min_accuracy, sort=args.sort, descending=not args.ascending,
            limit=args.limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2, default=str))
        return 0
    if not records:
        print("no runs" + (" match" if args.text or args.tag or args.status else
                           f" under {history.root}"))
        return 0
    print(f"{'id':>4}  {'name':<34} {'status':<10} {'accuracy':>8} {'size zip':>10} "
          f"{'latency':>9}  tags")
    for r in records:
        lat = "—" if r.latency_ms is None else f"{r.latency_ms:.2f} ms"
        print(f"{r.id:>4}  {r.name[:34]:<34} {r.status:<10} {_pct(r.accuracy):>8} "
              f"{_kb(r.zip_size_bytes):>10} {lat:>9}  {', '.join(r.tags)}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    with _open(args) as history:
        record = history.tag(args.run, add=args.tags, remove=args.remove)
    print(f"run {record.id} ({record.name}): tags {', '.join(record.tags) or '(none)'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    with _open(args) as history:
        result = history.compare(args.runs)
    runs = result["runs"]
    if args.json:
        print(json.dumps({"runs": [r.as_dict() for r in runs], "metrics": result["metrics"],
                          "config_diff": result["config_diff"]}, indent=2, default=str))
        return 0
    head = ["", *[f"{r.id}: {r.name[:20]}" for r in runs]]
    rows = [head]
    for metric, values in result["metrics"].items():
        fmt = _pct if "accuracy" in metric else _kb if metric.endswith("bytes") else (
            lambda v: "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v)))
        rows.append([metric, *[fmt(v) for v in values]])
    if result["config_diff"]:
        rows.append(["— config differences —", *[""] * len(runs)])
        for key, values in result["config_diff"].items():
            rows.append([key, *[json.dumps(v, default=str) for v in values]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _open(args) as history:
        for ref in args.runs:
            record = history.delete(ref, delete_files=args.files)
            where = "and its folder deleted" if args.files else (
                "from the index (folder kept, tagged 'hidden'; 'kdgui history add' restores it)")
            print(f"run {record.id} ({record.name}) removed {where}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    with _open(args) as history:
        ids = history.add(args.folder)
    print(f"indexed {len(ids)} run(s)")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    with _open(args) as history:
        n = history.rebuild()
    print(f"rebuilt the index from the run folders: {n} runs")
    return 0
