"""``kdgui classroom``: the classroom lessons — list them, or run one and write its report.

    kdgui classroom list
    kdgui classroom show pruning
    kdgui classroom run pruning --out lessons/pruning
    kdgui classroom run missing-digit --out lessons/md --data mnist:~/data

Each lesson finishes within about a minute on two CPU cores (see bench/bench_classroom.py).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from kdgui.core.run_folders import LESSON_FILE, SWEEP_FILE, config_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``classroom`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "classroom", help="classroom presets: short lessons on compression trade-offs",
        description="Short lessons — sweeps or runs on the embedded digits data, and two "
        "experiments that reproduce published results on MNIST — each with an explanation, its "
        "formula, the published figure and what to look at.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="list the lessons").set_defaults(handler=cmd_list)
    s = sub.add_parser("show", help="print a lesson's explanation")
    s.add_argument("name", help="lesson name (see 'kdgui classroom list')")
    s.set_defaults(handler=cmd_show)
    r = sub.add_parser("run", help="run a lesson and write its report")
    r.add_argument("name", help="lesson name (see 'kdgui classroom list')")
    r.add_argument("--out", required=True, metavar="DIR", help="output folder")
    r.add_argument("--no-report", action="store_true", help="do not write DIR/report.html")
    r.add_argument("--data", metavar="SPEC", default=None,
                   help="for missing-digit and unlabelled: mnist:ROOT (ROOT holds MNIST/raw; "
                   "the t10k files are enough) or digits; default: MNIST when found in "
                   "$KDGUI_MNIST_ROOT, ./data or the shared data folder, else the embedded "
                   "8×8 digits"),
    r.set_defaults(handler=cmd_run)
    p.set_defaults(handler=cmd_list)
    return p


def cmd_list(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import LESSONS

    for lesson in LESSONS:
        what = (f"sweep of {lesson.vary} over {', '.join(str(v) for v in lesson.values)}"
                if lesson.vary else "its own experiment; measured beside the paper"
                if lesson.runner else "one run; its compression stages are compared")
        print(f"{lesson.name:<24} {lesson.title}\n{'':<24} {what}")
    return 0


def lesson_text(lesson: Any) -> str:
    """The lesson as a teacher reads it: title, explanation, formula, what to look at."""
    lines = [lesson.title, "=" * len(lesson.title), ""]
    for para in lesson.explanation.split("\n\n"):
        lines += [*textwrap.wrap(para, 88), ""]
    lines += [f"    {lesson.formula}", "", "What to look at:"]
    for item in lesson.look_at:
        lines += textwrap.wrap(item, 86, initial_indent="- ", subsequent_indent="  ")
    if lesson.published:
        lines += ["", *textwrap.wrap(f"Published: {lesson.published}", 88,
                                     subsequent_indent="  ")]
    return "\n".join(lines)


def compare_table(rows: list[list[str]]) -> str:
    """A lesson's (what, published, measured here) rows as aligned text."""
    rows = [["", "published", "measured here"], *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def cmd_show(args: argparse.Namespace) -> int:
    from kdgui.engine.jobs import get_lesson

    print(lesson_text(get_lesson(args.name)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kdgui.cli.driving import drive
    from kdgui.cli.printer import EventPrinter
    from kdgui.cli.sweep_cmd import drive_sweep, format_rows
    from kdgui.core.events import RunControl
    from kdgui.engine.jobs import check_lesson_data, get_lesson, run_lesson, write_report

    lesson = get_lesson(args.name)
    if args.data is not None:
        check_lesson_data(lesson, args.data)  # before the lesson's text: the error is seen
    print(lesson_text(lesson) + "\n")
    control = RunControl()
    events = run_lesson(lesson.name, args.out, control=control, data=args.data)
    if lesson.runner:  # its own experiment: progress and result lines, then lesson.json
        from kdgui.cli.driving import consume
        from kdgui.core.events import JobFinished

        last = consume(events, EventPrinter(quiet=True), control)
        if isinstance(last, JobFinished) and last.result.get("compare"):
            print("\n" + compare_table(last.result["compare"]))
        print(f"\nresults in {Path(args.out) / LESSON_FILE}")
        ok = isinstance(last, JobFinished) and not last.stopped
    elif lesson.vary:
        rows, end = drive_sweep(events, control)
        if rows:
            print("\n" + format_rows(rows, lesson.vary))
        ok = bool(rows) and end is not None and not end.stopped
    else:
        ok = bool(drive(events, EventPrinter(quiet=True), control))
    out = Path(args.out)
    wrote = (ok and (out / LESSON_FILE).exists() if lesson.runner
             else config_path(out).exists() or (out / SWEEP_FILE).exists())
    if not args.no_report and wrote:
        result = write_report(out, out / "report.html", out / "report.csv")
        print(f"\nreport: {result.html_path}")
    return 0 if ok else 1
