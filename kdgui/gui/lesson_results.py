"""What the Classroom view shows of a lesson: its text, and after it ran a headline,
published-vs-measured rows and a chart.

Plain data, no Qt: it only reads what a lesson's job returned — the result dict of a lesson
with its own experiment (``lesson.json``: ``models``, ``compare``, ``held_out``), the rows of a
sweep lesson (``sweep.csv``'s), or the summary of a single-run lesson (its stages), from its
events or from the folder it wrote earlier — and chooses how to show it. No number is computed
here that the engine did not measure.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdgui.core.run_folders import LESSON_FILE, SWEEP_FILE, read_json, read_summary


@dataclass
class Chart:
    """Grouped bars: one group per category, one bar per series (values in percent)."""

    title: str
    categories: list[str]
    series: dict[str, list[float]] = field(default_factory=dict)
    #: Series drawn in grey (the teacher: a reference, not a result).
    muted: tuple[str, ...] = ()


@dataclass
class Outcome:
    """A finished lesson as the view shows it."""

    headline: str
    #: (what, published, measured here) rows.
    compare: list[list[str]]
    chart: Chart | None


def _pct(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return 100.0 * v


def from_lesson_result(result: dict[str, Any], published: str) -> Outcome:
    """A lesson with its own experiment (missing-digit, unlabelled)."""
    models: dict[str, dict[str, Any]] = result.get("models") or {}
    compare = [list(map(str, row)) for row in result.get("compare") or []]
    if not compare and published:
        compare = [["the paper", published, "see the chart"]]
    held = result.get("held_out")
    if held:  # missing-digit: per-class bars, before and after the bias correction
        headline = (f"{held['class']}s right: {held['before']:.1%} before the bias correction → "
                    f"{held['after']:.1%} after (shift +{result.get('bias_shift', 0):.2f}, "
                    "computed from the data)")
        names = [str(c) for c in result.get("class_names") or []]
        series = {("distilled, before the correction" if name == "distilled" else
                   "distilled, after the correction" if name == "distilled + bias" else name):
                  [_pct(v) for v in row.get("per_class", [])] for name, row in models.items()}
        chart = Chart(f"Accuracy per digit ({held['class']} held out)",
                      names, series, muted=("teacher",))
        return Outcome(headline, compare, chart)
    acc = {name: _pct(row.get("accuracy")) for name, row in models.items()}
    names = list(acc)
    if len(names) >= 3:  # unlabelled: teacher, few labels, distilled
        gain = result.get("gain_points", acc[names[2]] - acc[names[1]])
        headline = (f"distilled on unlabelled images: {acc[names[2]]:.1f}% against "
                    f"{acc[names[1]]:.1f}% from {names[1]} alone ({gain:+.1f} points)")
    else:
        headline = ", ".join(f"{n}: {v:.1f}%" for n, v in acc.items())
    chart = Chart("Validation accuracy", names, {"validation accuracy": list(acc.values())},
                  muted=("teacher",))
    return Outcome(headline, compare, chart)


def from_sweep_rows(rows: list[dict[str, Any]], published: str,
                    value_names: dict[str, str], key: str) -> Outcome:
    """A sweep lesson: the student's accuracy at each value, the teacher beside it."""
    labels = [str(r.get("label", r.get("value"))) for r in rows]
    cats = [f"{lab}\n{value_names[lab]}" if lab in value_names else lab for lab in labels]
    student = [_pct(r.get("accuracy")) for r in rows]
    teacher = [_pct(r.get("teacher_accuracy")) for r in rows]
    measured = " · ".join(f"{lab}: {v:.1f}%" for lab, v in zip(labels, student, strict=True))
    best = max(range(len(rows)), key=lambda i: -math.inf if math.isnan(student[i]) else
               student[i]) if rows else None
    known = [t for t in teacher if not math.isnan(t)]
    ref = f" (the teacher: {known[0]:.1f}%)" if known else ""
    headline = (f"best: {key} = {labels[best]}, {student[best]:.1f}%{ref}" if best is not None
                else "no run completed")
    compare = [[f"accuracy by {key}", published or "—", measured or "—"]]
    return Outcome(headline, compare, Chart(f"Student accuracy against {key}", cats,
                                            {"student": student}))


def from_run_summary(summary: dict[str, Any], published: str) -> Outcome:
    """A single-run lesson: accuracy (and zip size) after each stage: teacher, student, then
    each compression step (the pipeline's "before" stage is the student again, left out)."""
    stages: dict[str, dict[str, Any]] = {}
    for key in ("teacher", "student"):
        if isinstance(summary.get(key), dict):
            stages[key] = summary[key]
    items = summary.get("stages") or []
    if isinstance(items, dict):
        items = [{"name": k, **v} for k, v in items.items() if isinstance(v, dict)]
    for item in items:
        if isinstance(item, dict) and item.get("name") != "before":
            stages[str(item.get("name", f"stage {len(stages)}"))] = item.get("metrics", item)
    acc = {name: _pct(m.get("accuracy")) for name, m in stages.items()}

    def size(m: dict[str, Any]) -> str:
        b = m.get("zip_size_bytes")
        return f" ({b / 1024:.0f} KB zipped)" if isinstance(b, (int, float)) else ""

    measured = " → ".join(f"{n} {acc[n]:.1f}%{size(m)}" for n, m in stages.items())
    compare = [["accuracy (and size) per stage", published or "—", measured or "—"]]
    return Outcome(" → ".join(f"{n} {v:.1f}%" for n, v in acc.items()) or "the run finished",
                   compare, Chart("Accuracy after each stage", list(acc),
                                  {"accuracy": list(acc.values())}, muted=("teacher",)))


def window_words(text: str) -> str:
    """A lesson's text or message as the window says it: the CLI's ``--data SPEC`` is the
    view's data field (``SPEC under data``)."""
    return re.sub(r"--data (\S+?)([.,;:)]?)(?=\s|$)", r"\1 under data\2", text)


def lesson_html(lesson: Any) -> str:
    """The lesson as a teacher reads it (the text ``kdgui classroom show`` prints, with the
    window's words for the command's options)."""

    def e(text: str) -> str:
        return html.escape(window_words(text))

    paras = "".join(f"<p>{e(p)}</p>" for p in lesson.explanation.split("\n\n"))
    look = "".join(f"<li>{e(x)}</li>" for x in lesson.look_at)
    published = (f"<p><b>Published:</b> {e(lesson.published)}</p>" if lesson.published else "")
    return (f"<h2>{e(lesson.title)}</h2>{paras}<pre>{e(lesson.formula)}</pre>{published}"
            f"<p><b>What to look at</b></p><ul>{look}</ul>")


def outcome_from_folder(lesson: Any, folder: Path) -> Outcome | None:
    """The outcome of a lesson folder written earlier (None when it holds no finished result)."""
    if lesson.runner:
        result = read_json(folder / LESSON_FILE)
        if result and result.get("models") and not result.get("stopped"):
            return from_lesson_result(result, lesson.published)
    elif lesson.vary:
        sweep = read_json(folder / SWEEP_FILE) or {}
        rows = [r["row"] for r in sweep.get("runs", []) if r.get("row")]
        if rows:
            return from_sweep_rows(rows, lesson.published, lesson.value_names, lesson.vary)
    else:
        summary = read_summary(folder)
        if summary:
            return from_run_summary(summary, lesson.published)
    return None


__all__ = ["Chart", "Outcome", "from_lesson_result", "from_run_summary", "from_sweep_rows",
           "lesson_html", "outcome_from_folder", "window_words"]
