"""Step 6, the run: Start / Pause / Resume / Stop, progress with ETA, and the live plots.

The panel only *observes* a run: :meth:`QtRunPanel.handle` takes one engine event (live from the
worker, or replayed from a run folder's ``metrics.jsonl``) and routes it to the plots, which
redraw at most 30 times a second.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QPainter, QPalette
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QWidget,
)

from kdgui.core.events import (
    ArtifactEvent,
    EpochEvent,
    Event,
    LogEvent,
    RunFailed,
    RunFinished,
    RunStarted,
    StageEvent,
    StateEvent,
    StepEvent,
)
from kdgui.core.formatting import fmt_duration
from kdgui.gui.qt_accuracy_plot import QtAccuracyPlot
from kdgui.gui.qt_bars import QtBars, stages_from_summary
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_loss_plot import QtLossPlot
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_plot_base import QtLivePlot
from kdgui.gui.qt_sparsity_heatmap import QtSparsityHeatmap
from kdgui.gui.run_problems import export_failure, summary_problems

#: Step labels' and progress bar's period (ms): each new value repaints the bar at once (~1 ms).
LABELS_MS = 250
PROBLEM_STYLE = (
    "QLabel#runProblems { background: rgba(255, 176, 0, 0.18); border: 1px solid #e0a000;"
    " border-radius: 4px; padding: 6px; }"
)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _ElidedLabel(QLabel):
    """One line ending in "…" where it is narrower than its text (presentation mode at 1024 px
    cut "Finished: … · 2026112" at the edge); ``text()`` and the tooltip stay whole."""

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, event: Any) -> None:
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             rect.width())
        self.style().drawItemText(QPainter(self), rect, int(self.alignment()), self.palette(),
                                  self.isEnabled(), text, QPalette.ColorRole.WindowText)


class QtRunPanel(QtPanel):
    key = "run"
    title = "6 · Run"
    subtitle = ""
    prefixes = ((),)

    start_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.scroll.setWidgetResizable(True)
        controls = QHBoxLayout()
        self.start_button = QPushButton("▶  Run")
        self.start_button.setObjectName("startButton")
        self.start_button.setToolTip("Distill with the current settings (Ctrl+R)")
        self.pause_button = QPushButton("‖  Pause")
        self.pause_button.setCheckable(False)
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.setToolTip("Stop after the current batch; the run folder stays usable "
                                    "(Ctrl+.)")
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self._pause_clicked)
        self.stop_button.clicked.connect(self.stop_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p%")
        self.eta_label = QLabel("ETA –")
        self.eta_label.setMinimumWidth(90)
        self.status_label = _ElidedLabel("Ready.")
        # A long line must not widen the panel past the window (which pushed the right-hand
        # plots out of view at 1024 px and in presentation mode); word wrap would make the
        # scroll area size the plots by their height-for-width instead, so it is elided.
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                        QSizePolicy.Policy.Preferred)
        self.problems_label = QLabel()
        self.problems_label.setObjectName("runProblems")
        self.problems_label.setStyleSheet(PROBLEM_STYLE)
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        for w in (self.start_button, self.pause_button, self.stop_button):
            controls.addWidget(w)
        controls.addWidget(self.progress, 1)
        controls.addWidget(self.eta_label)
        self.body_layout.addLayout(controls)
        self.body_layout.addWidget(self.status_label)
        self.body_layout.addWidget(self.problems_label)

        self.loss_plot = QtLossPlot()
        self.accuracy_plot = QtAccuracyPlot()
        self.heatmap = QtSparsityHeatmap()
        self.bars = QtBars()
        plots = QWidget()
        grid = QGridLayout(plots)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0)
        grid.addWidget(self.accuracy_plot, 0, 1)
        grid.addWidget(self.heatmap, 1, 0)
        grid.addWidget(self.bars, 1, 1)
        for p in self.plots():
            p.setMinimumHeight(220)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(8)
        self.log.setFont(mono)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(plots)
        splitter.addWidget(self.log)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([560, 70])
        self.body_layout.addWidget(splitter, 1)

        self.run_dir: str = ""
        self.summary: dict[str, Any] = {}
        self.artifacts: list[ArtifactEvent] = []
        self.problems: list[str] = []
        self.stopped = False
        self.event_count = 0
        self.last_step: StepEvent | None = None
        self._step_sparsity = False
        self._started_at: float | None = None
        self._running = self._paused = False
        self._label_timer = QTimer(self)
        self._label_timer.setSingleShot(True)
        self._label_timer.setInterval(LABELS_MS)
        self._label_timer.timeout.connect(self._show_step)
        self.set_running(False)
        self.show_issues()

    def plots(self) -> list[QtLivePlot]:
        return [self.loss_plot, self.accuracy_plot, self.heatmap, self.bars]

    def show_issues(self) -> None:  # the Run panel lists every issue: it is where Run is pressed
        super().show_issues()

    # -- buttons -------------------------------------------------------------------------------
    def set_running(self, running: bool, paused: bool = False) -> None:
        self.start_button.setEnabled(not running and self.state.valid)
        self.start_button.setToolTip(
            "Distill with the current settings (Ctrl+R)" if self.state.valid else
            "Fix the problems listed above first:\n" + "\n".join(
                f"• {i.what}" for i in self.state.issues)
        )
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.setText("▶  Resume" if paused else "‖  Pause")
        if running and paused:
            self.status_label.setText("Paused.")
        elif running and self._paused and self.status_label.text() == "Paused.":
            self.status_label.setText("Running…")  # the next step replaces it
        self._running, self._paused = running, paused

    def _pause_clicked(self) -> None:
        if self._paused:
            self.resume_requested.emit()
        else:
            self.pause_requested.emit()

    # -- events --------------------------------------------------------------------------------
    def reset(self) -> None:
        for plot in self.plots():
            plot.clear()
        self.log.clear()
        self.progress.setValue(0)
        self.eta_label.setText("ETA –")
        self.summary = {}
        self.artifacts = []
        self.problems = []
        self.stopped = False
        self.problems_label.hide()
        self.event_count = 0
        self.last_step = None
        self._step_sparsity = False
        self.run_dir = ""
        self._started_at = time.monotonic()

    def handle(self, ev: Event) -> None:
        """Route one engine event to the plots and labels."""
        self.event_count += 1
        if isinstance(ev, StepEvent):
            self.last_step = ev
            self.loss_plot.add(ev.step, ev.losses)
            names = getattr(ev, "layer_names", None)
            if names:  # the engine reports sparsity with each step: follow it step by step
                self._step_sparsity = True
                self.heatmap.add(names, ev.sparsity, getattr(ev, "stage", ""), ev.step, "step")
            if not self._label_timer.isActive():  # labels, like plots, change once a frame
                self._label_timer.start()
        elif isinstance(ev, EpochEvent):
            self.accuracy_plot.set_teacher(ev.teacher_accuracy)
            self.accuracy_plot.add(ev.train_accuracy, ev.val_accuracy, ev.stage)
            if not self._step_sparsity:
                self.heatmap.add(ev.layer_names, ev.sparsity, ev.stage, None, "epoch")
            if self.loss_plot.point_count() == 0 and ev.train_loss == ev.train_loss:
                # Fewer steps than log_every: no step event came; the epoch's mean loss is the
                # one point there is (a short run would otherwise show an empty plot).
                self.loss_plot.add(ev.step, {"total": ev.train_loss})
            self._log(f"epoch {ev.epoch} [{ev.stage}] val {100 * ev.val_accuracy:.2f}% "
                      f"train {100 * ev.train_accuracy:.2f}% agreement "
                      f"{100 * ev.agreement:.1f}% ({ev.duration_s:.1f} s)")
        elif isinstance(ev, StageEvent):
            self.bars.set_stage(ev.name, ev.metrics)
            self._stage_sparsity(ev)
            self._log(f"measured {ev.name}: " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in ev.metrics.items()
                if k in ("accuracy", "params", "size_bytes", "macs", "latency_ms")))
        elif isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir
            self.accuracy_plot.set_teacher(ev.teacher.get("val_accuracy"))
            self.status_label.setText(
                f"Running on {ev.device} · {ev.epochs} epochs × {ev.steps_per_epoch} steps · "
                f"teacher outputs {'cached' if ev.teacher_cached else 'computed each step'}"
            )
            self._log(f"run folder: {ev.run_dir}")
            # The x axes span the planned run (after a teacher's training; steps count globally).
            steps = (self.last_step.step if self.last_step else 0) + ev.epochs * ev.steps_per_epoch
            self.loss_plot.plan_x(steps)
            self.accuracy_plot.plan_x(len(self.accuracy_plot.x) + ev.epochs)
            self.heatmap.plan_x(len(self.heatmap.xs) + ev.epochs, "epoch")
            self.heatmap.plan_x(steps, "step")
        elif isinstance(ev, ArtifactEvent):
            self.artifacts.append(ev)
            failed = export_failure(ev.what, ev.details)
            if failed:
                self._add_problem(failed)
                self._log(f"error: {failed}")
            else:
                self._log(f"wrote {ev.what}: {ev.path}")
        elif isinstance(ev, StateEvent):
            self._log(f"run {ev.state}")
            if ev.state == "paused":
                self.status_label.setText("Paused.")
            elif ev.state == "resumed" and self.status_label.text() == "Paused.":
                self.status_label.setText("Running…")
        elif isinstance(ev, LogEvent):
            self._log(f"{ev.level}: {ev.message}")
            if ev.level in ("error", "warning"):
                self._add_problem(ev.message)
        elif isinstance(ev, RunFinished):
            self._label_timer.stop()
            self._show_step()
            self.summary = ev.summary
            self.stopped = ev.stopped
            self.run_dir = ev.run_dir or self.run_dir
            for text in summary_problems(ev.summary):
                self._add_problem(text)
            for name, metrics in stages_from_summary(ev.summary).items():
                if name not in self.bars.stages:
                    self.bars.set_stage(name, metrics)
            if not ev.stopped:
                self.progress.setValue(1000)
            # The plan becomes what was trained: a stopped run's curves fill their plots again.
            steps = [b.view()[-1] for b in self.loss_plot.steps.values() if len(b)]
            self.loss_plot.plan_x(max(steps) if steps else None)
            self.accuracy_plot.plan_x(len(self.accuracy_plot.x) or None)
            self.heatmap.plan_x(self.heatmap.xs[-1] if self.heatmap.xs else None,
                                self.heatmap.unit)
            self.eta_label.setText("ETA –")
            self.status_label.setText(self._finished_text(ev))
            self._log(self._finished_text(ev))
        elif isinstance(ev, RunFailed):
            self.status_label.setText(f"Failed: {ev.error.get('what', '')}")
            self._log(f"error: {ev.error.get('message') or ev.error.get('what')}")

    # -- problems ------------------------------------------------------------------------------
    def _add_problem(self, text: str) -> None:
        """A failed export or an engine warning: listed in the yellow box, never only logged."""
        text = text.strip()
        if not text or any(text in p for p in self.problems):
            return
        shorter = [i for i, p in enumerate(self.problems) if p in text]
        if shorter:  # the summary's "onnx export failed: …" names what the log line said
            self.problems[shorter[0]] = text
        else:
            self.problems.append(text)
        rows = "".join(f"<li>{_esc(p)}</li>" for p in self.problems)
        self.problems_label.setText(f"<b>⚠ {len(self.problems)} problem"
                                    f"{'s' if len(self.problems) > 1 else ''} in this run</b>"
                                    f"<ul style='margin:0; margin-left:-20px'>{rows}</ul>")
        self.problems_label.show()

    def finished_status(self) -> str:
        """The status bar's words for a run that ended normally (names any failure)."""
        if not self.problems:
            return "Run finished."
        first = self.problems[0]
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"Run finished with problems: {first}{more} — see 6 · Run."

    def _stage_sparsity(self, ev: StageEvent) -> None:
        """A compression stage's per-layer sparsity as a heatmap column, so one-shot pruning
        without fine-tuning (which sends no epoch or step) still shows in the heatmap."""
        if ev.name in ("teacher", "student", "before"):
            return
        names, values = [], []
        for layer in ev.layers or []:
            if isinstance(layer, dict) and "sparsity" in layer and layer.get("name"):
                names.append(str(layer["name"]))
                values.append(float(layer["sparsity"]))
        if not names:
            return
        xs = self.heatmap.xs
        step = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else 1.0
        self.heatmap.add(names, values, ev.name, (xs[-1] + step) if xs else 1.0,
                         self.heatmap.unit)

    def _show_step(self) -> None:
        ev = self.last_step
        if ev is None:
            return
        self.progress.setValue(int(1000 * min(max(ev.progress, 0.0), 1.0)))
        self.eta_label.setText(f"ETA {fmt_duration(ev.eta_s)}")
        self.status_label.setText(
            f"Epoch {ev.epoch} · step {ev.step} · loss {ev.losses.get('total', 0):.4g} · "
            f"{ev.samples_per_s:,.0f} samples/s · lr {ev.lr:.3g}"
        )

    def _finished_text(self, ev: RunFinished) -> str:
        s = ev.summary
        student = s.get("student", {}) if isinstance(s.get("student"), dict) else {}
        teacher = s.get("teacher", {}) if isinstance(s.get("teacher"), dict) else {}
        head = "Stopped" if ev.stopped else "Finished"
        acc = student.get("accuracy")
        if acc is not None and acc != acc and student.get("agreement") is not None:
            return (f"{head}: the student agrees with the teacher on "
                    f"{100 * student['agreement']:.1f}% of the validation images (no labels: "
                    f"accuracy not measured) · {Path(ev.run_dir).name}")
        if student.get("accuracy") is not None and teacher.get("accuracy") is not None:
            ratio = s.get("compression_ratio") or 0
            # teacher / student params: a student bigger than its teacher has more, not 0.0×
            fewer = (f" with {ratio:.1f}× fewer parameters" if ratio >= 1 else
                     f" with {1 / ratio:.1f}× more parameters" if ratio > 0 else "")
            return (f"{head}: student {100 * student['accuracy']:.2f}% vs teacher "
                    f"{100 * teacher['accuracy']:.2f}%{fewer} · {Path(ev.run_dir).name}")
        return f"{head} · {Path(ev.run_dir).name}"

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def flush(self) -> None:
        if self._label_timer.isActive():
            self._label_timer.stop()
            self._show_step()
        for plot in self.plots():
            plot.flush()
