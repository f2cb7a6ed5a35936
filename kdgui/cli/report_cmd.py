"""``kdgui report``: one self-contained HTML file (and a CSV) for a run or a sweep folder.

    kdgui report runs/20261128-demo --html demo.html --csv demo.csv
    kdgui report sweeps/temperature --html temperature.html
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "report", help="write a self-contained HTML report (and CSV) of a run, sweep or lesson",
        description="Write one HTML file with the plots embedded as PNG, the metrics and stages "
        "tables and the config; optionally the table as CSV. Plots need matplotlib.",
    )
    p.add_argument("folder", metavar="FOLDER",
                   help="a run folder, a sweep folder or a lesson folder (kdgui classroom run)")
    p.add_argument("--html", required=True, metavar="PATH", help="the HTML file to write")
    p.add_argument("--csv", metavar="PATH", help="also write the metrics table as CSV")
    p.set_defaults(handler=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import write_report

    result = write_report(args.folder, args.html, args.csv)
    plots = f"{len(result.plots)} plots" if result.plots else (
        "no plots (install matplotlib for them)")
    print(f"{result.kind} report: {result.html_path} ({plots})")
    if result.csv_path is not None:
        print(f"table: {result.csv_path}")
    return 0
