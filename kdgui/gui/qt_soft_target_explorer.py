"""The soft-target explorer: one image, the teacher's and the student's softmax at temperature T.

Moving the T slider (1–20) re-applies ``softmax(z / T)`` to logits computed once
(:func:`kdgui.engine.soft_targets.explorer_data`), so the bars follow the slider without running
a model. At T = 1 the teacher is nearly one-hot; as T grows the non-target classes — the "dark
knowledge" — rise into view. The panel also shows the mass on non-target classes and the soft
loss for this image, ``T²·KL(p_t ‖ p_s)``, the term distillation minimises.

The widget holds no torch: ``softmax_at_temperature`` is numpy (imported on first use from the
engine, which the data came from anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kdgui.gui.run_source import RunSource, run_source

T_MIN, T_MAX = 1, 20
TEACHER_COLOR = "#1f77b4"
STUDENT_COLOR = "#ff7f0e"
TARGET_EDGE = "#2ca02c"


def _softmax_fn() -> Callable[[np.ndarray, float], np.ndarray]:
    from kdgui.engine.jobs import softmax_at_temperature  # called once the data is loaded

    return softmax_at_temperature


def soft_loss(teacher_probs: np.ndarray, student_probs: np.ndarray, temperature: float) -> float:
    """``T² · KL(p_t ‖ p_s)`` for one image, as the distillation loss weighs it."""
    p = np.clip(np.asarray(teacher_probs, dtype=np.float64), 1e-12, 1.0)
    q = np.clip(np.asarray(student_probs, dtype=np.float64), 1e-12, 1.0)
    return float(temperature**2 * np.sum(p * (np.log(p) - np.log(q))))


class QtSoftTargetExplorer(QWidget):
    """Pick an image; see the teacher's and student's probabilities at temperature T."""

    temperature_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None,
                 data_loader: Callable[[RunSource], Any] | None = None,
                 run_dir: str | None = None,
                 fallback_config: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self._data: Any = None
        self._loader = data_loader
        self._fallback = fallback_config or (lambda: None)
        self.source = run_source(run_dir, None) if run_dir else RunSource(None, None)
        self._stale = True  # the loaded images are not of self.source (yet)
        self._teacher_p = np.zeros(0)
        self._student_p: np.ndarray | None = None
        self._loss: float | None = None

        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setFixedSize(168, 168)
        self.image.setStyleSheet("background:#000")
        self.index = QSpinBox(minimum=0, maximum=0)
        self.index.valueChanged.connect(self._refresh)
        prev_btn, next_btn = QPushButton("◀"), QPushButton("▶")
        prev_btn.clicked.connect(lambda: self.index.setValue(self.index.value() - 1))
        next_btn.clicked.connect(lambda: self.index.setValue(self.index.value() + 1))
        self.caption = QLabel(wordWrap=True)

        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=T_MIN, maximum=T_MAX, value=4)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.valueChanged.connect(self._on_slider)
        self.t_label = QLabel()
        self.log_scale = QCheckBox("log scale (see the small probabilities)")
        self.log_scale.toggled.connect(self._refresh)
        self.readout = QLabel(wordWrap=True)
        # Room for the readout's two sentences and the caption's three lines: squeezed by the
        # plot, they showed one line each (the soft loss and the student's guess were hidden).
        lines = self.fontMetrics().lineSpacing()
        self.readout.setMinimumHeight(3 * lines + 6)
        self.caption.setMinimumHeight(4 * lines + 6)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        from kdgui.gui.qt_plot_base import background, foreground

        self.plot = pg.PlotWidget(background=background())
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTextPen(foreground())
            self.plot.getAxis(axis).setPen(foreground())
        self.plot.setMouseEnabled(False, False)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "probability")
        self.plot.addLegend(offset=(-10, 10))
        self.teacher_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=TEACHER_COLOR,
                                            name="teacher")
        self.student_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=STUDENT_COLOR,
                                            name="student")
        self.plot.addItem(self.teacher_bars)
        self.plot.addItem(self.student_bars)

        left = QVBoxLayout()
        left.addWidget(self.image)
        nav = QHBoxLayout()
        nav.addWidget(prev_btn)
        nav.addWidget(self.index, 1)
        nav.addWidget(next_btn)
        left.addLayout(nav)
        left.addWidget(self.caption)
        left.addStretch(1)
        self.load_button = QPushButton("Load images")
        self.load_button.setVisible(data_loader is not None)
        self.load_button.clicked.connect(self.load)
        left.addWidget(self.load_button)
        right = QVBoxLayout()
        self.source_label = QLabel(self.source.label(), wordWrap=True)
        self.source_label.setObjectName("runSource")
        right.addWidget(self.source_label)
        t_row = QHBoxLayout()
        t_row.addWidget(QLabel("temperature T"))
        t_row.addWidget(self.slider, 1)
        t_row.addWidget(self.t_label)
        right.addLayout(t_row)
        right.addWidget(self.plot, 1)
        right.addWidget(self.log_scale)
        right.addWidget(self.readout)
        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(right, 1)
        self._on_slider(self.slider.value())

    def showEvent(self, event: Any) -> None:
        """Load the images when the explorer is shown and its run changed since (nothing to
        click first); a hidden explorer never loads models."""
        super().showEvent(event)
        if self._stale and self._loader is not None:
            self._stale = False
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, self._load_quietly)

    def set_run(self, run_dir: str | None) -> None:
        """Follow ``run_dir`` (selected under Results, or just finished): its student, with the
        config it was made with. Reloads now if visible, else when next shown."""
        source = run_source(run_dir, None)
        if run_dir and self.source.run_dir and Path(run_dir) == Path(self.source.run_dir) \
                and source.status == self.source.status and not self._stale:
            return  # already showing this run as it is now
        self.source = source
        self.source_label.setText(self.source.label())
        self._stale = True
        if self.isVisible() and self._loader is not None:
            self._stale = False
            self._load_quietly()

    def _load_quietly(self) -> None:
        try:
            self.load()
        except Exception as exc:  # shown in the widget; the button lets the user retry
            self.readout.setText(f"Cannot load images: {getattr(exc, 'what', exc)}")

    # -- data -----------------------------------------------------------------------------------
    def load(self) -> None:
        """Call the data loader given at construction (loads models: may take seconds)."""
        if self._loader is None:
            return
        source = self.source
        if source.run_dir is None:  # no run: the teacher on the window's current data
            source = run_source(None, self._fallback())
        elif source.config is None:
            raise RuntimeError(source.problem)
        self.set_data(self._loader(source))
        self._stale = False

    def set_data(self, data: Any) -> None:
        """Show ``data`` (:class:`kdgui.engine.soft_targets.ExplorerData` or alike)."""
        self._data = data
        n = len(data.labels)
        names = list(data.class_names)
        self.plot.getAxis("bottom").setTicks([list(enumerate(names))])
        self.plot.setXRange(-0.6, len(names) - 0.4, padding=0)
        self.index.setMaximum(max(0, n - 1))
        self.index.setValue(min(self.index.value(), max(0, n - 1)))
        self._refresh()

    # -- state the tests (and the window) read ------------------------------------------------------
    @property
    def temperature(self) -> float:
        return float(self.slider.value())

    def set_temperature(self, t: float) -> None:
        self.slider.setValue(round(t))

    def set_index(self, i: int) -> None:
        self.index.setValue(i)

    def teacher_probs(self) -> np.ndarray:
        return self._teacher_p.copy()

    def student_probs(self) -> np.ndarray | None:
        return None if self._student_p is None else self._student_p.copy()

    def soft_loss_value(self) -> float | None:
        return self._loss

    # -- drawing --------------------------------------------------------------------------------
    def _on_slider(self, value: int) -> None:
        self.t_label.setText(f"{value:>2d}")
        self._refresh()
        self.temperature_changed.emit(float(value))

    def _refresh(self) -> None:
        data = self._data
        if data is None:
            self.readout.setText("No images loaded.")
            return
        i = self.index.value()
        t = self.temperature
        softmax = _softmax_fn()
        self._teacher_p = softmax(np.asarray(data.teacher_logits[i], dtype=np.float64), t)
        s_logits = getattr(data, "student_logits", None)
        self._student_p = None if s_logits is None else softmax(
            np.asarray(s_logits[i], dtype=np.float64), t)
        label = int(data.labels[i])
        k = len(self._teacher_p)
        xs = np.arange(k, dtype=float)
        floor = 1e-6
        log = self.log_scale.isChecked()

        def shown(p: np.ndarray) -> np.ndarray:
            return np.log10(np.maximum(p, floor)) - np.log10(floor) if log else p

        pens = [pg.mkPen(TARGET_EDGE, width=3) if c == label else pg.mkPen(None) for c in range(k)]
        self.teacher_bars.setOpts(x=xs - 0.2, height=shown(self._teacher_p), pens=pens)
        if self._student_p is not None:
            self.student_bars.setOpts(x=xs + 0.2, height=shown(self._student_p), pens=pens)
        else:
            self.student_bars.setOpts(x=[], height=[])
        if log:
            ticks = [(e - np.log10(floor), f"1e{e}") for e in range(-6, 1)]
            self.plot.getAxis("left").setTicks([ticks])
            self.plot.setYRange(0, -np.log10(floor), padding=0.02)
            self.plot.setLabel("left", "probability (log)")
        else:
            self.plot.getAxis("left").setTicks(None)
            self.plot.setYRange(0, 1, padding=0.06)  # room for the "1.0" tick label
            self.plot.setLabel("left", "probability")
        self._update_image(data.images[i])
        names = list(data.class_names)
        t_pred = int(np.argmax(self._teacher_p))
        dark = 1.0 - float(self._teacher_p[label])
        text = (f"T = {t:g}: the teacher gives the true class '{names[label]}' "
                f"{100 * self._teacher_p[label]:.1f}% and the other classes (dark knowledge) "
                f"{100 * dark:.1f}%; its runner-up is '{names[_runner_up(self._teacher_p)]}' "
                f"({100 * np.sort(self._teacher_p)[-2]:.1f}%).")
        if self._student_p is not None:
            self._loss = soft_loss(self._teacher_p, self._student_p, t)
            text += (f"<br>Soft loss for this image: T²·KL(p_teacher ‖ p_student) = "
                     f"<b>{self._loss:.4f}</b>")
        else:
            self._loss = None
        self.readout.setText(text)
        s_pred = "" if self._student_p is None else (
            f" · student: {names[int(np.argmax(self._student_p))]}")
        source = getattr(data, "student_source", "")
        self.caption.setText(f"image {i}: label {names[label]} · teacher: {names[t_pred]}"
                             f"{s_pred}" + (f"<br><small>{source}</small>" if source else ""))

    def _update_image(self, image: np.ndarray) -> None:
        arr = np.asarray(image, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[0] in (1, 3):
            arr = np.moveaxis(arr, 0, -1)
        arr = np.ascontiguousarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
        h, w = arr.shape[:2]
        if arr.ndim == 3 and arr.shape[2] == 3:
            qimg = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        else:
            arr = np.ascontiguousarray(arr.reshape(h, w))
            qimg = QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8)
        pix = QPixmap.fromImage(qimg.copy()).scaled(
            self.image.size(), Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.FastTransformation)
        self.image.setPixmap(pix)


def _runner_up(p: np.ndarray) -> int:
    return int(np.argsort(p)[-2]) if len(p) > 1 else 0


__all__ = ["QtSoftTargetExplorer", "soft_loss"]
