"""Reports: one self-contained HTML file (plots as embedded PNG, config, tables) plus a CSV.

A report must survive being e-mailed or put on a course page: no external files, scripts, fonts
or style sheets — the plots are ``data:image/png;base64`` images and the CSS is inline. It reads
only a run folder's or sweep folder's files (docs/run-folder.md, :mod:`kdgui.engine.sweep`), so it
works on any finished — or stopped — run, without torch.

Plots are drawn by :mod:`kdgui.engine.report_plots`. Without matplotlib the report still holds
every table and says how to get the plots.
"""

from __future__ import annotations

import csv
import html
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import ConfigError
from kdgui.core.run_folders import (
    LESSON_FILE,
    SWEEP_FILE,
    config_path,
    read_config_dict,
    read_event_dicts,
    read_json,
    read_summary,
    run_status,
)
from kdgui.engine.report_plots import models_of, run_plots, sweep_plots

#: (label, key, formatter kind) of the metrics tables.
METRIC_COLUMNS: list[tuple[str, str, str]] = [
    ("accuracy", "accuracy", "pct"),
    ("params", "params", "count"),
    ("non-zero params", "nonzero_params", "count"),
    ("size", "size_bytes", "bytes"),
    ("size (zip)", "zip_size_bytes", "bytes"),
    ("MACs", "macs", "count"),
    ("latency b1", "latency_ms", "ms"),
    ("latency b32", "latency_ms_b32", "ms"),
]
SWEEP_COLUMNS: list[tuple[str, str, str]] = [
    ("accuracy", "accuracy", "pct"),
    ("before compression", "student_accuracy", "pct"),
    ("agreement", "agreement", "pct"),
    ("non-zero params", "nonzero_params", "count"),
    ("size (zip)", "zip_size_bytes", "bytes"),
    ("effective size", "effective_bytes", "bytes"),
    ("latency b1", "latency_ms", "ms"),
    ("time", "duration_s", "s"),
    ("Pareto (size)", "pareto_size", "star"),
    ("Pareto (latency)", "pareto_latency", "star"),
]
CSV_METRICS = ["accuracy", "top5", "agreement", "params", "nonzero_params", "size_bytes",
               "zip_size_bytes", "macs", "latency_ms", "latency_ms_b32"]


@dataclass
class ReportResult:
    html_path: Path
    csv_path: Path | None
    plots: list[str] = field(default_factory=list)
    kind: str = "run"


# ------------------------------------------------------------------------------------ formatting


def fmt(value: Any, kind: str) -> str:
    """A table cell: percentages, counts, sizes and times the way people read them."""
    if kind == "star":
        return "★" if value in (True, "True", "true", 1) else ""
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if kind == "pct":
        return f"{100 * x:.1f}%"
    if kind == "count":
        if x < 0:
            return "n/a"
        return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k" if x >= 1e4 else f"{x:,.0f}"
    if kind == "bytes":
        return f"{x / 1024 / 1024:.2f} MB" if x >= 1024 * 1024 else f"{x / 1024:.1f} KB"
    if kind == "ms":
        return "n/a" if x < 0 else f"{x:.2f} ms"
    if kind == "s":
        return f"{x:.1f} s"
    return f"{x:g}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -------------------------------------------------------------------------------------- writing

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:70em;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid
#ddd;padding-bottom:.2em}.meta{color:#666}table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:.8em;overflow:auto;
font-size:.85em}figure{display:inline-block;margin:.5em 1em .5em 0}figure img{max-width:100%}
figcaption{color:#555;font-size:.9em}.formula{font-family:'DejaVu Serif',serif;font-size:1.1em;
background:#fbf8ef;padding:.5em .8em;display:inline-block}.note{color:#8a5a00}
"""


def _page(title: str, parts: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(parts)
        + f"\n<p class=\"meta\">Written by KD Studio on {time.strftime('%Y-%m-%d %H:%M')}.</p>"
        "\n</body></html>\n"
    )


def _figures(plots: list[tuple[str, str]]) -> str:
    if not plots:
        return ('<p class="note">Plots need matplotlib, which is not installed '
                "(pip install matplotlib).</p>")
    return "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, b in plots
    )


def _config_block(config: dict[str, Any] | None) -> str:
    if not config:
        return "<p>—</p>"
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    return f"<pre>{html.escape(text)}</pre>"


def _lesson_parts(meta: dict[str, Any]) -> list[str]:
    """A classroom lesson's explanation, formula and what to look at (empty for other runs)."""
    parts = []
    if meta.get("explanation"):
        parts.append("".join(f"<p>{html.escape(p)}</p>"
                             for p in str(meta["explanation"]).split("\n\n")))
    if meta.get("formula"):
        parts.append(f'<p class="formula">{html.escape(str(meta["formula"]))}</p>')
    if meta.get("published"):
        parts.append(f"<p><b>Published:</b> {html.escape(str(meta['published']))}</p>")
    if meta.get("look_at"):
        items = "".join(f"<li>{html.escape(str(x))}</li>" for x in meta["look_at"])
        parts.append(f"<h2>What to look at</h2><ul>{items}</ul>")
    return parts


def _bias_parts(bias: dict[str, Any] | None) -> list[str]:
    """A run with excluded classes: each one's accuracy before and after its bias shift."""
    if not bias:
        return []
    before, after = bias["per_class"]
    rows = [[f"class {c}", f"+{bias['shifts'][str(c)]:.2f}", fmt(before[c], "pct"),
             fmt(after[c], "pct")] for c in bias["classes"]]
    rows.append(["all classes", "", fmt(bias["accuracy"][0], "pct"),
                 fmt(bias["accuracy"][1], "pct")])
    return ["<h2>Bias correction of the held-out classes</h2>",
            f"<p>{html.escape(str(bias.get('rule', '')))}</p>",
            _table(["", "bias shift", "accuracy before", "after"], rows)]


def _lesson_report(folder: Path) -> tuple[str, str, list[str], list[list[Any]], list[str]]:
    """A lesson with its own experiment (``lesson.json`` with ``models``): its text, the
    published figure beside the measured one, every model's accuracy, the per-class bars."""
    import base64

    result = read_json(folder / LESSON_FILE) or {}
    name = str(result.get("title") or result.get("lesson") or folder.name)
    models: dict[str, dict[str, Any]] = result.get("models") or {}
    classes = [str(c) for c in result.get("class_names") or []]
    parts = [f"<h1>{html.escape(name)}</h1>",
             f'<p class="meta">Lesson folder {html.escape(str(folder))} · data '
             f'{html.escape(str(result.get("data")))} · {result.get("seconds", "?")} s</p>',
             *_lesson_parts(result)]
    if result.get("held_out"):
        held = result["held_out"]
        parts.append(f"<p><b>Held-out class {held['class']}: {fmt(held['before'], 'pct')} right "
                     f"before the bias correction, {fmt(held['after'], 'pct')} after "
                     f"(+{result.get('bias_shift', 0):.2f}, computed from the data).</b></p>")
    if result.get("compare"):
        rows = [[html.escape(str(c)) for c in row] for row in result["compare"]]
        parts += ["<h2>Published and measured</h2>",
                  _table(["", "published", "measured here"], rows)]
    rows = [[html.escape(n), fmt(m.get("accuracy"), "pct"),
             *[fmt(v, "pct") for v in m.get("per_class", [])]] for n, m in models.items()]
    parts += ["<h2>Accuracy per class</h2>", _table(["model", "accuracy", *classes], rows)]
    png = folder / "per_class.png"
    plots = ([("accuracy per class", base64.b64encode(png.read_bytes()).decode())]
             if png.is_file() else [])
    parts += ["<h2>Plots</h2>", _figures(plots)]
    csv_rows = [[n, m.get("accuracy"), *m.get("per_class", [])] for n, m in models.items()]
    return name, _page(f"KD Studio report: {name}", parts), ["model", "accuracy", *classes], \
        csv_rows, [t for t, _ in plots]


def _metrics_rows(models: list[tuple[str, dict[str, Any]]]) -> list[list[str]]:
    return [[html.escape(name), *[fmt(m.get(k), kind) for _, k, kind in METRIC_COLUMNS]]
            for name, m in models]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    atomic_write_text(path, buf.getvalue())


def _run_report(folder: Path) -> tuple[str, str, list[str], list[list[Any]], list[str]]:
    config = read_config_dict(folder)
    summary = read_summary(folder) or {}
    events, _ = read_event_dicts(folder)  # lines cut by a crash are skipped
    meta = read_json(folder / LESSON_FILE) or {}
    name = str(meta.get("title") or config.get("name") or folder.name)
    status = run_status(folder, summary)
    plots = run_plots(events, summary)
    models = models_of(summary)
    parts = [f"<h1>{html.escape(name)}</h1>",
             f'<p class="meta">Run folder {html.escape(str(folder))} · {status}</p>',
             *_lesson_parts(meta)]
    if events and events[-1].get("event") == "failed":
        err = events[-1].get("error") or {}
        parts.append(f'<p class="note">The run failed: {html.escape(str(err.get("message") or err.get("what")))}</p>')
    parts += ["<h2>Metrics</h2>",
              _table(["model", *[c[0] for c in METRIC_COLUMNS]], _metrics_rows(models))
              if models else "<p>No summary.json: the run did not finish.</p>"]
    parts += _bias_parts(summary.get("bias_correction"))
    stages = summary.get("stages") or []
    if stages:
        rows = []
        for s in stages:
            notes = "; ".join(s.get("notes") or [])
            rows.append([html.escape(str(s.get("name"))),
                         *[fmt(s.get(k), kind) for _, k, kind in METRIC_COLUMNS],
                         html.escape(notes)])
        parts += ["<h2>Compression stages</h2>",
                  _table(["stage", *[c[0] for c in METRIC_COLUMNS], "notes"], rows)]
    exports = summary.get("exports") or []
    if exports:
        rows = [[html.escape(str(e.get("format"))), "yes" if e.get("ok") else "no",
                 fmt(e.get("size_bytes"), "bytes"),
                 html.escape(str(e.get("verified", e.get("error", ""))))] for e in exports]
        parts += ["<h2>Exports</h2>", _table(["format", "written", "size", "verified"], rows)]
    parts += ["<h2>Plots</h2>", _figures(plots), "<h2>Config</h2>", _config_block(config)]
    csv_rows = [[n, *[m.get(k) for k in CSV_METRICS]] for n, m in models]
    return name, _page(f"KD Studio report: {name}", parts), ["model", *CSV_METRICS], csv_rows, [
        t for t, _ in plots]


def _sweep_report(folder: Path) -> tuple[str, str, list[str], list[list[Any]], list[str]]:
    from kdgui.engine.sweep import CSV_COLUMNS, load_sweep

    data = load_sweep(folder)
    rows = data["rows"]
    key = str(data.get("key"))
    size_key = str(data.get("size_key") or "zip_size_bytes")
    meta = data.get("meta") or {}
    title = str(meta.get("title") or f"Sweep of {key}")
    plots = sweep_plots(rows, key, size_key)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">Sweep folder {html.escape(str(folder))} · {data.get("state")} · '
             f"{len(rows)} of {len(data.get('values') or [])} runs completed</p>"]
    parts += _lesson_parts(meta)
    names = meta.get("value_names") or {}
    table_rows = [[html.escape(str(r.get("label")) + (f" ({names[str(r.get('label'))]})"
                                                      if str(r.get("label")) in names else "")),
                   *[fmt(r.get(k), kind) for _, k, kind in SWEEP_COLUMNS],
                   html.escape(str(r.get("run_dir")))] for r in rows]
    parts += ["<h2>Runs</h2>",
              _table([key, *[c[0] for c in SWEEP_COLUMNS], "run folder"], table_rows)]
    others = [r for r in data.get("runs", []) if r.get("status") != "completed"]
    if others:
        items = "".join(
            f"<li>{html.escape(str(r.get('label')))}: {html.escape(str(r.get('status')))}"
            + (f" — {html.escape(str((r.get('error') or {}).get('message', '')))}"
               if r.get("error") else "") + "</li>" for r in others)
        parts.append(f'<p class="note">Not completed:</p><ul>{items}</ul>')
    parts += ["<h2>Plots</h2>", _figures(plots), "<h2>Base config</h2>",
              _config_block(data.get("base_config"))]
    csv_rows = [[r.get(c) for c in CSV_COLUMNS] for r in rows]
    return title, _page(f"KD Studio report: {title}", parts), list(CSV_COLUMNS), csv_rows, [
        t for t, _ in plots]


def write_report(folder: str | Path, html_path: str | Path,
                 csv_path: str | Path | None = None) -> ReportResult:
    """Write the report of a run or sweep folder to ``html_path`` (and the table to ``csv_path``).

    Raises :class:`ConfigError` for a folder that is neither, or an unwritable target.
    """
    src = Path(folder)
    if (src / SWEEP_FILE).is_file():
        kind = "sweep"
        _, page, header, rows, plots = _sweep_report(src)
    elif config_path(src).is_file():
        kind = "run"
        _, page, header, rows, plots = _run_report(src)
    elif (read_json(src / LESSON_FILE) or {}).get("models"):
        kind = "lesson"
        _, page, header, rows, plots = _lesson_report(src)
    else:
        raise ConfigError(f"'{src}' is neither a run folder (config.yaml), a sweep folder "
                          "(sweep.json) nor a lesson folder (lesson.json)",
                          "Pass the folder a run, 'kdgui sweep' or 'kdgui classroom run' wrote.")
    target = Path(html_path)
    try:
        atomic_write_text(target, page)
        csv_target = Path(csv_path) if csv_path is not None else None
        if csv_target is not None:
            _write_csv(csv_target, header, rows)
        for written in (target, csv_target):
            if written is not None:  # a report is for sharing: readable like any other file
                written.chmod(0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write the report: {exc.strerror or exc}",
                          "Choose a folder you can write to.") from None
    return ReportResult(html_path=target, csv_path=csv_target, plots=plots, kind=kind)


__all__ = ["ReportResult", "fmt", "run_plots", "sweep_plots", "write_report"]
