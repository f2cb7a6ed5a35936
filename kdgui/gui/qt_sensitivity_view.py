"""Pruning sensitivity as a heatmap: which layers tolerate sparsity, which collapse early.

Each cell is the accuracy lost (points) when only that layer is pruned to that sparsity. The
computation runs on a worker thread (it evaluates the model layers × ratios times); the view
only draws the result, with a fixed colour scale from 0 to the largest drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.gui.qt_plot_base import background, foreground
from kdgui.gui.run_source import first_run, run_source

if TYPE_CHECKING:
    from kdgui.gui.view_host import ViewHost


class QtSensitivityView(QWidget):
    """Pick the model and the ratios, press Analyze, read the heatmap."""

    def __init__(self, window: ViewHost) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window_ = window
        self.result: dict[str, Any] | None = None
        self._task: Any = None
        layout = QVBoxLayout(self)
        intro = QLabel(
            "<b>Pruning sensitivity</b> — each layer is pruned <i>alone</i> to each sparsity and "
            "the model re-evaluated: bright cells are layers that lose accuracy early (prune "
            "them less, or exclude them); dark cells show how far each layer can go.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.source = run_source(first_run(window), None)
        self.source_label = QLabel(self.source.label())
        self.source_label.setObjectName("runSource")
        self.source_label.setWordWrap(True)
        layout.addWidget(self.source_label)
        row = QHBoxLayout()
        row.addWidget(QLabel("model"))
        self.model_box = QComboBox()
        self.model_box.addItems(["student of this run", "teacher of this run"])
        row.addWidget(self.model_box)
        row.addWidget(QLabel("sparsities"))
        self.ratios_edit = QLineEdit("0.3, 0.5, 0.7, 0.8, 0.9, 0.95")
        row.addWidget(self.ratios_edit, 1)
        self.analyze_button = QPushButton("Analyze")
        self.analyze_button.clicked.connect(self.analyze)
        row.addWidget(self.analyze_button)
        layout.addLayout(row)
        self.status = QLabel("Press Analyze (takes a few seconds on the demo).")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.plot_widget = pg.PlotWidget(background=background())
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setTitle("Accuracy drop (points) when one layer is pruned", color=foreground())
        self.plot.setLabel("bottom", "sparsity of that layer")
        self.plot.invertY(True)
        self.plot.setMouseEnabled(x=False, y=False)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("inferno"))
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("inferno"),
                                        interactive=False, label="points lost")
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        layout.addWidget(self.plot_widget, 1)
        self.hover_label = QLabel("Hover over a cell to read its value.")
        layout.addWidget(self.hover_label)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        results = getattr(window, "results_panel", None)
        if results is not None:
            results.run_selected.connect(self.set_run)

    def cell_text(self, x: float, y: float) -> str | None:
        """The layer, sparsity and accuracy lost of the cell at data point (x, y)."""
        if self.result is None:
            return None
        layers, ratios = self.result["layers"], self.result["ratios"]
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < len(layers) and 0 <= col < len(ratios)):
            return None
        drop = 100 * float(np.asarray(self.result["accuracy_drop"])[row, col])
        return f"{layers[row]} pruned to {ratios[col]:.0%}: −{drop:.2f} accuracy points"

    def _mouse_moved(self, scene_pos: Any) -> None:
        view = self.plot.getViewBox()
        point = view.mapSceneToView(scene_pos)
        text = self.cell_text(point.x(), point.y())
        if text:
            self.hover_label.setText(text)

    def set_run(self, run_dir: str | None) -> None:
        """Analyse ``run_dir`` from now on (selected under Results, or just finished), with the
        config it was made with; a shown result of another run is cleared."""
        source = run_source(run_dir, None)
        if source.run_dir == self.source.run_dir and source.status == self.source.status:
            return
        self.source = source
        self.source_label.setText(source.label())
        if self.result is not None and self.result.get("run_dir") != source.run_dir:
            self.result = None
            self.image.clear()
            self.status.setText("Press Analyze for this run.")

    def ratios(self) -> list[float]:
        from kdgui.core.errors import ConfigError

        try:
            values = [float(v) for v in self.ratios_edit.text().replace(";", ",").split(",")
                      if v.strip()]
        except ValueError:
            raise ConfigError("the sparsities are not numbers",
                              "Write them like 0.5, 0.7, 0.9.") from None
        if not values or any(not 0 <= v < 1 for v in values):
            raise ConfigError("each sparsity must be in [0, 1)", "Write them like 0.5, 0.7, 0.9.")
        return values

    def analyze(self) -> None:
        from kdgui.core.errors import UserError
        from kdgui.engine import jobs
        from kdgui.gui.qt_worker import QtWorker

        window = self.window_
        try:
            ratios = self.ratios()
        except UserError as exc:
            self.status.setText(exc.one_line())
            return
        source = self.source
        if source.run_dir is None:  # no run yet: the teacher of the window's config
            source = run_source(None, window.state.config)
        config = source.config
        if config is None:
            self.status.setText(source.problem if source.run_dir else
                                "Fix the config's problems first (⚠ in the sidebar).")
            return
        which = "teacher" if self.model_box.currentIndex() == 1 or source.run_dir is None \
            else "student"
        run_dir = source.run_dir

        self.analyze_button.setEnabled(False)
        self.status.setText(f"Analyzing the {which}…")
        self._task = QtWorker(lambda: jobs.sensitivity_of_run(config, which, ratios, run_dir),
                              owner=self)
        self._task.returned.connect(
            lambda result: self.show_result(dict(result, run_dir=run_dir)))
        self._task.errored.connect(self._failed)
        self._task.finished.connect(lambda: self.analyze_button.setEnabled(True))
        self._task.start()

    def _failed(self, error: dict[str, str]) -> None:
        self.status.setText(f"{error.get('what', 'failed')}. {error.get('fix', '')}")

    def show_result(self, result: dict[str, Any]) -> None:
        """Draw a sensitivity result (``layers``, ``ratios``, ``accuracy_drop``, ``baseline``)."""
        self.result = result
        drops = 100 * np.asarray(result["accuracy_drop"], dtype=np.float32)
        top = max(1.0, float(drops.max()) if drops.size else 1.0)
        self.image.setImage(drops, levels=(0.0, top), autoLevels=False)
        self.colorbar.setLevels((0.0, top))
        layers, ratios = result["layers"], result["ratios"]
        self.image.setRect(0, 0, len(ratios), len(layers))
        self.plot.getAxis("left").setTicks([[(i + 0.5, n) for i, n in enumerate(layers)]])
        self.plot.getAxis("bottom").setTicks(
            [[(i + 0.5, f"{r:.0%}") for i, r in enumerate(ratios)]])
        self.plot.setXRange(0, len(ratios), padding=0)
        self.plot.setYRange(0, len(layers), padding=0)
        worst = int(np.argmax(drops[:, -1])) if drops.size else 0
        of_run = f" of {Path(result['run_dir']).name}" if result.get("run_dir") else ""
        self.status.setText(
            f"{result.get('model', 'model')}{of_run} ({result.get('source', '')}): baseline accuracy "
            f"{100 * result['baseline']:.1f}%. Most sensitive at {ratios[-1]:.0%}: "
            f"{layers[worst]} (−{drops[worst, -1]:.1f} points).")
