"""The sweep panel: vary one knob in the background, plot the trade-off and the Pareto fronts.

A sweep (the engine's ``sweep`` job) runs on the window's one worker
(:class:`~kdgui.gui.qt_worker.QtWorker`); the panel draws the sweep-level events (a run started,
a run done, the sweep finished) and each epoch for the progress line. Stop goes through the
sweep's :class:`~kdgui.core.events.RunControl`: the run in progress stops within one batch and is
saved, the finished runs stay in ``sweep.csv``.

A classroom lesson can be loaded into the panel: it fills the base config, the knob and the
values, and shows the lesson's explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.config import ExperimentConfig, demo_config
from kdgui.core.errors import UserError
from kdgui.core.events import EpochEvent, RunControl
from kdgui.core.run_folders import new_run_dir
from kdgui.gui.qt_plot_base import background, foreground
from kdgui.gui.qt_worker import QtWorker

KEYS = ("distill.temperature", "distill.alpha", "student.width", "prune.sparsity",
        "prune.ratio", "quantize.bits", "lowrank.rank_fraction", "training.epochs")
SweepFn = Callable[..., Iterator[Any]]


def _default_sweep_fn() -> SweepFn:
    from kdgui.engine import jobs

    return jobs.sweep


class QtSweepPanel(QWidget):
    """Configure, run and plot a one-knob sweep."""

    sweep_finished = Signal(str)  # the sweep folder

    def __init__(self, parent: QWidget | None = None, *,
                 config_provider: Callable[[], ExperimentConfig] | None = None,
                 sweeps_root: str | Path = "runs/sweeps",
                 sweep_fn: SweepFn | None = None) -> None:
        super().__init__(parent)
        self._config_provider = config_provider or demo_config
        self._lesson_config: ExperimentConfig | None = None
        self._size_key = "zip_size_bytes"
        self.sweeps_root = Path(sweeps_root)
        self._sweep_fn = sweep_fn
        self._worker: QtWorker | None = None
        self.rows: list[dict[str, Any]] = []
        self.last_error: dict[str, Any] | None = None
        self.out_dir: Path | None = None

        self.lesson = QComboBox()
        self.lesson.addItem("(the current experiment)", None)
        from kdgui.engine.jobs import LESSONS

        for lesson in LESSONS:
            if lesson.vary:
                self.lesson.addItem(lesson.title, lesson.name)
        self.lesson.currentIndexChanged.connect(self._on_lesson)
        self.key = QComboBox(editable=True)
        self.key.addItems(KEYS)
        self.values = QLineEdit("1, 4, 8")
        self.values.setPlaceholderText("values, comma-separated")
        self.start_button = QPushButton("Run sweep")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel("Vary one setting over a few values; the runs go one after another.")
        self.status.setWordWrap(True)
        self.explanation = QLabel(wordWrap=True)
        self.explanation.setVisible(False)

        form = QFormLayout()
        form.addRow("lesson", self.lesson)
        form.addRow("vary", self.key)
        form.addRow("values", self.values)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)

        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(
            ["value", "accuracy", "size (zip)", "latency", "Pareto size", "Pareto latency"])
        self.table.verticalHeader().setVisible(False)
        # Each column as wide as its header in the current font (re-measured when presentation
        # mode changes it): "Pareto latency" was cut to "areto latenc" at the fixed 100 px.
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)

        # The palette's colours, not pyqtgraph's global ones (black unless the app set them).
        self.curve_plot = pg.PlotWidget(background=background())
        self.curve_plot.setLabel("left", "accuracy (%)")
        self.curve = self.curve_plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o")
        self.size_plot = pg.PlotWidget(background=background())
        self.size_plot.setLabel("left", "accuracy (%)")
        self.size_plot.setLabel("bottom", "size (KB)")
        self.latency_plot = pg.PlotWidget(background=background())
        self.latency_plot.setLabel("left", "accuracy (%)")
        self.latency_plot.setLabel("bottom", "latency (ms)")  # batch 1: in the title
        self.titles = {self.curve_plot: "Trade-off: accuracy against the knob",
                       self.size_plot: "Accuracy against size · Pareto front",
                       self.latency_plot: "Accuracy against latency (batch 1) · Pareto front"}
        for plot, title in self.titles.items():
            plot.setTitle(title, color=foreground())
            for axis in ("left", "bottom"):  # "distill.alpha (x0.001)" 0–800 read as wrong
                plot.getAxis(axis).enableAutoSIPrefix(False)
                plot.getAxis(axis).setPen(foreground())
                plot.getAxis(axis).setTextPen(foreground())
            plot.getPlotItem().getViewBox().sigResized.connect(lambda *_a: self.fit_title())
        self.fit_title()
        self.size_points = pg.ScatterPlotItem(size=10, brush="#1f77b4")
        self.size_front = pg.PlotDataItem(pen=pg.mkPen("#ff7f0e", width=2), stepMode=None)
        self.latency_points = pg.ScatterPlotItem(size=10, brush="#1f77b4")
        self.latency_front = pg.PlotDataItem(pen=pg.mkPen("#ff7f0e", width=2))
        self.size_plot.addItem(self.size_points)
        self.size_plot.addItem(self.size_front)
        self.latency_plot.addItem(self.latency_points)
        self.latency_plot.addItem(self.latency_front)

        plots = QHBoxLayout()
        for p in (self.curve_plot, self.size_plot, self.latency_plot):
            plots.addWidget(p)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.explanation)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addLayout(plots, 2)
        layout.addWidget(self.table, 1)

    def fit_title(self) -> list[str]:
        """Elide each plot's title to its view box ("…"; presentation mode calls this after it
        enlarges the titles) and let the plot, not its title, decide the width: three titles
        in the 1.5× font made each plot ≈490 px wide in a 261 px widget, cut at both ends."""
        shown = []
        for plot, full in self.titles.items():
            title = plot.getPlotItem().titleLabel
            size = str(title.opts.get("size") or "")
            font = QFont(self.font())
            if size.endswith("pt"):
                font.setPointSizeF(float(size[:-2]))
            view_width = plot.getPlotItem().getViewBox().width()
            available = max(40, int(view_width if view_width > 40 else plot.width()) - 8)
            text = QFontMetrics(font).elidedText(full, Qt.TextElideMode.ElideRight, available)
            if text != title.text:
                title.setText(text, **({"size": size} if size else {}))
            title.setMinimumWidth(0)  # setText makes it the text's width, the plot's minimum
            title.setToolTip(full)
            shown.append(text)
        return shown

    # -- configuration --------------------------------------------------------------------------
    def _on_lesson(self) -> None:
        name = self.lesson.currentData()
        if name is None:
            self._lesson_config = None
            self._size_key = "zip_size_bytes"
            self.explanation.setVisible(False)
            return
        self.load_lesson(name)

    def load_lesson(self, name: str) -> None:
        """Fill the panel from a classroom lesson (its config, knob, values and text)."""
        from kdgui.engine.jobs import get_lesson

        lesson = get_lesson(name)
        self._lesson_config = lesson.config()
        self._size_key = lesson.size_key
        self.key.setCurrentText(lesson.vary or "")
        self.values.setText(", ".join(str(v) for v in lesson.values))
        look = "".join(f"<li>{x}</li>" for x in lesson.look_at)
        self.explanation.setText(
            f"<b>{lesson.title}</b><br>{lesson.explanation.replace(chr(10) * 2, '<br><br>')}"
            f"<br><code>{lesson.formula}</code><ul>{look}</ul>")
        self.explanation.setVisible(True)

    def base_config(self) -> ExperimentConfig:
        return self._lesson_config or self._config_provider()

    @property
    def running(self) -> bool:
        return self._worker is not None

    # -- running --------------------------------------------------------------------------------
    def start(self, out_dir: str | Path | None = None) -> bool:
        """Start the sweep the form describes; False (with the reason shown) if it cannot."""
        from kdgui.engine.jobs import parse_vary

        if self.running:
            return False
        key = self.key.currentText().strip()
        try:
            key, values = parse_vary(f"{key}={self.values.text()}")
        except UserError as exc:
            self._show_error(exc.to_dict())
            return False
        self.out_dir = Path(out_dir) if out_dir else new_run_dir(self.sweeps_root, key)
        self.rows, self.last_error = [], None
        self._redraw()
        fn, control = self._sweep_fn, RunControl()
        args = (self.base_config(), key, values, self.out_dir)
        size_key = self._size_key
        worker = QtWorker(lambda: (fn or _default_sweep_fn())(*args, size_key=size_key,
                                                                control=control),
                          control=control, needs_engine=fn is None, name="kdgui-sweep",
                          owner=self)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(self._show_error)
        worker.finished.connect(self._on_thread_done)
        self._worker = worker
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"Starting a sweep of {key} over {len(values)} values…")
        worker.start()
        return True

    def stop(self) -> None:
        """Stop after the current batch; the runs finished so far are kept."""
        if self._worker is not None:
            self._worker.stop()
            self.status.setText("Stopping after this batch…")

    def wait(self, ms: int = 30000) -> bool:
        return self._worker is None or self._worker.wait(ms)

    @Slot()
    def _on_thread_done(self) -> None:
        if self._worker is not None:
            self._worker.deleteLater()
        self._worker = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def _on_event(self, event: Any) -> None:
        from kdgui.engine import jobs

        if isinstance(event, jobs.SweepStarted):
            self._on_started(event)
        elif isinstance(event, jobs.SweepRunDone):
            self._on_run_done(event)
        elif isinstance(event, jobs.SweepFinished):
            self._on_finished(event)
        elif isinstance(event, jobs.SweepRunEvent) and isinstance(event.event, EpochEvent):
            self._on_progress(event.index, event.total, event.event)

    def _on_started(self, event: Any) -> None:
        self._labels = list(event.labels)
        self.status.setText(f"Sweep of {event.key} over {', '.join(event.labels)} → "
                            f"{event.out_dir}")

    def _on_progress(self, index: int, total: int, epoch: EpochEvent) -> None:
        label = self._labels[index] if index < len(getattr(self, "_labels", [])) else index
        self.status.setText(f"run {index + 1}/{total} ({label}): epoch {epoch.epoch} "
                            f"({epoch.stage}), val accuracy {100 * epoch.val_accuracy:.1f}%")

    def _on_run_done(self, event: Any) -> None:
        if event.row:
            self.rows.append(dict(event.row))
            from kdgui.engine.jobs import add_pareto_flags

            add_pareto_flags(self.rows, self._size_key)
            self._redraw()
        self.status.setText(f"run {event.index + 1}/{event.total}: {event.status}")

    def _on_finished(self, event: Any) -> None:
        self.rows = [dict(r) for r in event.rows]
        self._redraw()
        state = "stopped" if event.stopped else "finished"
        self.status.setText(f"Sweep {state}: {len(self.rows)} runs completed"
                            + (f", {event.failed} failed" if event.failed else "")
                            + f" · {event.csv_path}")
        self.sweep_finished.emit(event.out_dir)

    def _show_error(self, error: dict[str, Any]) -> None:
        self.last_error = error
        self.status.setText(f"<b>{error.get('what', 'error')}</b><br>{error.get('fix', '')}")

    # -- drawing --------------------------------------------------------------------------------
    def _redraw(self) -> None:
        from kdgui.engine.jobs import pareto_front

        rows = self.rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = [str(row.get("label")), _pct(row.get("accuracy")),
                     _kb(row.get("zip_size_bytes")), _ms(row.get("latency_ms")),
                     "★" if row.get("pareto_size") else "", "★" if row.get("pareto_latency") else ""]
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        acc = [row.get("accuracy") for row in rows]
        if not rows or any(a is None for a in acc):
            self.curve.setData([], [])
            for item in (self.size_points, self.latency_points):
                item.setData([], [])
            for item in (self.size_front, self.latency_front):
                item.setData([], [])
            return
        ys = 100 * np.asarray(acc, dtype=float)
        try:
            xs = np.asarray([float(row.get("value")) for row in rows])
            ticks = None
        except (TypeError, ValueError):
            xs = np.arange(len(rows), dtype=float)
            ticks = [[(i, str(row.get("label"))) for i, row in enumerate(rows)]]
        order = np.argsort(xs, kind="stable")
        self.curve.setData(xs[order], ys[order])
        self.curve_plot.getAxis("bottom").setTicks(ticks)
        self.curve_plot.setLabel("bottom", str(rows[0].get("key", "")))
        scale = 1024.0 if self._size_key.endswith("bytes") else 1.0
        for cost_key, points, front, div in (
            (self._size_key, self.size_points, self.size_front, scale),
            ("latency_ms", self.latency_points, self.latency_front, 1.0),
        ):
            costs = [row.get(cost_key) for row in rows]
            if any(c is None for c in costs):
                continue
            cx = np.asarray(costs, dtype=float) / div
            points.setData(cx, ys)
            idx = pareto_front(list(cx), list(acc))
            fx, fy = cx[idx], ys[idx]
            # A staircase: the best accuracy reachable at each cost.
            sx = np.repeat(fx, 2)[1:]
            sy = np.repeat(fy, 2)[:-1]
            front.setData(sx, sy)

    def pareto_points(self, which: str = "size") -> tuple[np.ndarray, np.ndarray]:
        """The Pareto front as drawn (staircase corners); tests and exports read it."""
        item = self.size_front if which == "size" else self.latency_front
        x, y = item.getData()
        return (np.asarray([]) if x is None else x), (np.asarray([]) if y is None else y)


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.1f}%"


def _kb(x: Any) -> str:
    return "—" if x is None else f"{float(x) / 1024:.1f} KB"


def _ms(x: Any) -> str:
    return "—" if x is None else f"{float(x):.2f} ms"


__all__ = ["KEYS", "QtSweepPanel"]
