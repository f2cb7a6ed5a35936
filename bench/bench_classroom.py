"""Run each classroom preset headless and print its wall time; each must finish within 60 s.

The lessons (:mod:`kdgui.engine.classroom`) are promised to fit a class period on a laptop: ≤ 60 s
each on two CPU cores. This runs them one after another, as ``kdgui classroom run`` does, into a
temporary folder (or ``--out``), and prints per lesson: runs, wall time, and the key result — so
a change that makes a lesson slow, or makes its trade-off disappear, shows up here.

The first lesson also pays for importing torch and loading the data; that is counted, as a
teacher would wait for it too. On a machine shared with other jobs, times vary by tens of percent:
the load average at the start is printed alongside.

    .venv/bin/python bench/bench_classroom.py [--check] [--only NAME ...] [--out DIR] [--limit 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdgui.core.events import JobFinished, RunFailed, RunFinished
from kdgui.engine.classroom import LESSONS, run_lesson
from kdgui.engine.sweep import SweepFinished, SweepRunEvent


def run_one(name: str, out: Path) -> tuple[float, str, bool]:
    """Run lesson ``name``; returns (seconds, one-line result, ok)."""
    start = time.perf_counter()
    result, ok = "", True
    for event in run_lesson(name, out):
        inner = event.event if isinstance(event, SweepRunEvent) else event
        if isinstance(inner, RunFailed):
            ok = False
            result = f"FAILED: {inner.error.get('message')}"
        elif isinstance(event, SweepFinished):
            parts = [f"{r['label']}→{100 * r['accuracy']:.1f}%" for r in event.rows]
            result = " ".join(parts)
            ok = ok and len(event.rows) > 0
        elif isinstance(event, JobFinished):  # a lesson with its own experiment
            r = event.result
            if r.get("held_out"):
                h = r["held_out"]
                result = (f"{r['data']}: {h['class']}s {100 * h['before']:.1f}% → "
                          f"{100 * h['after']:.1f}% after the bias correction")
            elif "gain_points" in r:
                acc = [100 * m["accuracy"] for m in r["models"].values()]
                result = (f"{r['data']}: {r['n_labelled']} labels {acc[1]:.1f}% → distilled "
                          f"{acc[2]:.1f}% (+{r['gain_points']:.1f} points)")
            ok = ok and not event.stopped
        elif isinstance(event, RunFinished) and not isinstance(event, SweepRunEvent):
            stages = event.summary.get("stages") or []
            parts = [f"student {100 * event.summary['student']['accuracy']:.1f}%"]
            parts += [f"{s['name']} {100 * s['accuracy']:.1f}%" for s in stages[1:]]
            result = " → ".join(parts)
    return time.perf_counter() - start, result, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="lesson names (default: all)")
    parser.add_argument("--out", help="keep the lesson folders here (default: a temp folder)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds allowed per lesson")
    parser.add_argument("--check", action="store_true", help="exit 1 if a lesson is too slow")
    args = parser.parse_args(argv)
    names = args.only or [lesson.name for lesson in LESSONS]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"classroom presets on {os.cpu_count()} CPU cores, load average {load:.2f}")
    print(f"{'lesson':<22} {'runs':>4} {'time':>8}  result")
    worst = 0.0
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        for name in names:
            lesson = next(x for x in LESSONS if x.name == name)
            seconds, result, ok = run_one(name, root / name)
            worst = max(worst, seconds)
            mark = "" if seconds <= args.limit else "  ← over the limit"
            failed = failed or not ok
            print(f"{name:<22} {lesson.runs:>4} {seconds:>7.1f}s  {result}{mark}", flush=True)
    print(f"slowest: {worst:.1f} s (limit {args.limit:.0f} s)")
    if args.check and (worst > args.limit or failed):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
