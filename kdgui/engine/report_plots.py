"""The report's plots: loss curves, accuracy per epoch, accuracy against size, sweep trade-offs.

Drawn with matplotlib's Agg canvas (``Figure`` objects, never ``pyplot``'s global state, so the
window may build a report from a worker thread) and returned as base64 PNG text, which
:mod:`kdgui.engine.report` embeds so the HTML file stands alone. Without matplotlib every
function returns no plots and the report says how to get them.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

#: Axis labels of the sweep's size measures.
SIZE_LABELS = {
    "zip_size_bytes": "size, zip-compressed (KB)",
    "size_bytes": "size (KB)",
    "effective_bytes": "effective size: non-zeros × bits / 8 (KB)",
    "nonzero_params": "non-zero parameters",
    "params": "parameters",
}


def _matplotlib() -> Any | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def _png(fig: Any, canvas_cls: Any) -> str:
    canvas_cls(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _new_axes(mpl: Any, title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    figure_cls, _ = mpl
    fig = figure_cls(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _scatter_with_front(mpl: Any, xs: list[float], ys: list[float], labels: list[str],
                        front: list[int], title: str, xlabel: str) -> str:
    fig, ax = _new_axes(mpl, title, xlabel, "accuracy (%)")
    ax.scatter(xs, [100 * y for y in ys], s=40, color="#4c72b0", zorder=3, label="runs")
    for x, y, label in zip(xs, ys, labels, strict=True):
        ax.annotate(label, (x, 100 * y), textcoords="offset points", xytext=(5, 5), fontsize=9)
    if front:
        fx = [xs[i] for i in front]
        fy = [100 * ys[i] for i in front]
        ax.step(fx, fy, where="post", color="#dd8452", linewidth=2, zorder=2,
                label="Pareto front")
        ax.scatter(fx, fy, s=90, facecolors="none", edgecolors="#dd8452", linewidths=2, zorder=4)
    ax.legend(loc="lower right")
    return _png(fig, mpl[1])


def _numeric(values: Sequence[Any]) -> list[float] | None:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def sweep_plots(rows: list[dict[str, Any]], key: str, size_key: str) -> list[tuple[str, str]]:
    """(title, base64 PNG) of the trade-off curve and both Pareto plots."""
    mpl = _matplotlib()
    if mpl is None or not rows:
        return []
    plots = []
    labels = [str(r.get("label", r.get("value"))) for r in rows]
    acc = [float(r["accuracy"]) for r in rows if r.get("accuracy") is not None]
    if len(acc) == len(rows):
        fig, ax = _new_axes(mpl, f"Trade-off: accuracy against {key}", key, "accuracy (%)")
        xs_num = _numeric([r.get("value") for r in rows])
        xs: Sequence[Any] = xs_num if xs_num is not None else list(range(len(rows)))
        order = sorted(range(len(rows)), key=lambda i: xs[i])
        ax.plot([xs[i] for i in order], [100 * acc[i] for i in order], "o-", linewidth=2,
                label="final model")
        before = [r.get("student_accuracy") for r in rows]
        if all(b is not None for b in before) and any(
                abs(float(b) - a) > 1e-9 for b, a in zip(before, acc, strict=True)):
            ax.plot([xs[i] for i in order], [100 * float(before[i]) for i in order], "s--",
                    linewidth=1.5, label="distilled student, before compression")
        teacher = rows[0].get("teacher_accuracy")
        if teacher is not None:
            ax.axhline(100 * float(teacher), color="gray", linestyle=":", label="teacher")
        if xs_num is None:
            ax.set_xticks(list(range(len(rows))), labels)
        ax.legend(loc="best")
        plots.append((f"Accuracy against {key}", _png(fig, mpl[1])))
        for cost_key, title, xlabel, scale in (
            (size_key, "Accuracy against size, Pareto front", SIZE_LABELS.get(size_key, size_key),
             1024 if size_key.endswith("bytes") else 1),
            ("latency_ms", "Accuracy against latency, Pareto front", "latency at batch 1 (ms)", 1),
        ):
            costs = [r.get(cost_key) for r in rows]
            if any(c is None for c in costs):
                continue
            from kdgui.engine.sweep import pareto_front

            cost_f = [float(c) / scale for c in costs]
            front = pareto_front(cost_f, acc)
            plots.append((title, _scatter_with_front(mpl, cost_f, acc, labels, front, title,
                                                     xlabel)))
    return plots


def run_plots(events: list[dict[str, Any]], summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, base64 PNG) of the loss curves, accuracy per epoch and accuracy against size."""
    mpl = _matplotlib()
    if mpl is None:
        return []
    plots = []
    steps = [e for e in events if e.get("event") == "step"]
    if steps:
        fig, ax = _new_axes(mpl, "Training loss", "step", "loss")
        terms = sorted({k for e in steps for k in (e.get("losses") or {})},
                       key=lambda k: (k != "total", k))
        for term in terms:
            pts = [(e["step"], e["losses"][term]) for e in steps if term in (e.get("losses") or {})]
            ax.plot([p[0] for p in pts], [p[1] for p in pts],
                    linewidth=2 if term == "total" else 1.2, label=term)
        ax.legend(loc="upper right")
        plots.append(("Training loss", _png(fig, mpl[1])))
    epochs = [e for e in events if e.get("event") == "epoch"]
    if epochs:
        fig, ax = _new_axes(mpl, "Accuracy per epoch", "epoch (fine-tuning epochs follow)",
                            "accuracy (%)")
        xs = list(range(1, len(epochs) + 1))
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.plot(xs, [100 * e.get("val_accuracy", 0) for e in epochs], "o-", linewidth=2,
                label="student, validation")
        ax.plot(xs, [100 * e.get("train_accuracy", 0) for e in epochs], "s--", linewidth=1.2,
                label="student, training")
        teacher = epochs[0].get("teacher_accuracy")
        if teacher is not None:
            ax.axhline(100 * teacher, color="gray", linestyle=":", label="teacher")
        ax.legend(loc="lower right")
        plots.append(("Accuracy per epoch", _png(fig, mpl[1])))
    models = models_of(summary)
    if len(models) >= 2 and all(m.get("size_bytes") and m.get("accuracy") is not None
                                for _, m in models):
        fig, ax = _new_axes(mpl, "Accuracy against size", "size, zip-compressed (KB)",
                            "accuracy (%)")
        xs_k = [float(m.get("zip_size_bytes") or m["size_bytes"]) / 1024 for _, m in models]
        ys = [100 * float(m["accuracy"]) for _, m in models]
        ax.plot(xs_k[1:], ys[1:], "o-", linewidth=2, color="#4c72b0")
        ax.scatter(xs_k[:1], ys[:1], s=60, color="gray")
        for (name, _), x, y in zip(models, xs_k, ys, strict=True):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
        ax.set_xscale("log")
        plots.append(("Accuracy against size", _png(fig, mpl[1])))
    return plots


def models_of(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, metrics) of the teacher, the student and each compression stage after 'before'."""
    out = []
    for name in ("teacher", "student"):
        if isinstance(summary.get(name), dict):
            out.append((name, summary[name]))
    for stage in summary.get("stages") or []:
        if isinstance(stage, dict) and stage.get("name") != "before":
            out.append((str(stage.get("name")), stage))
    return out
