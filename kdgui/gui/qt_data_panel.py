"""Step 2, the data: which dataset, how it is split, and a grid preview of labelled samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.config import DataConfig
from kdgui.core.params import describe
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamForm
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_worker import QtWorker

#: Suggestions for the dataset field; any spec the engine understands can be typed.
DATASET_SUGGESTIONS = (
    "digits", "mnist:data", "fashionmnist:data", "kmnist:data", "cifar10:data", "cifar100:data",
    "svhn:data", "folder:PATH",
)
TILE = 56
#: Config names that are not the user's own choice (the demo's and the schema's defaults).
DEFAULT_NAMES = ("demo", "experiment")


def data_run_name(spec: str) -> str:
    """A run name from a dataset spec: ``mnist:data`` → ``mnist``, ``folder:/x/flowers`` →
    ``flowers``."""
    kind, _, rest = spec.strip().partition(":")
    if kind == "folder" and rest.strip():
        return Path(rest.strip().rstrip("/\\")).name or "folder"
    return kind or "data"


def to_pixmap(image: np.ndarray, size: int = TILE) -> QPixmap:
    """A ``H×W×C`` uint8 image as a pixmap scaled to ``size`` (nearest, so pixels stay crisp)."""
    img = np.ascontiguousarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = np.ascontiguousarray(img[:, :, 0])
    h, w = img.shape[:2]
    if img.ndim == 2:
        qimg = QImage(img.data, w, h, w, QImage.Format.Format_Grayscale8)
    else:
        rgb = np.ascontiguousarray(img[:, :, :3])
        qimg = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg.copy()).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class QtSampleGrid(QWidget):
    """Sample images with their class names underneath."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setSpacing(6)
        self.tiles: list[QLabel] = []

    def show_samples(self, images: np.ndarray, labels: list[int], class_names: list[str]) -> None:
        for tile in self.tiles:
            tile.deleteLater()
        self.tiles = []
        cols = 8
        for i, (image, label) in enumerate(zip(images, labels, strict=False)):
            cell = QLabel()
            cell.setPixmap(to_pixmap(image))
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            name = (class_names[label] if 0 <= label < len(class_names) else
                    "unlabelled" if label < 0 else str(label))
            text = QLabel(name)
            text.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.grid.addWidget(cell, 2 * (i // cols), i % cols)
            self.grid.addWidget(text, 2 * (i // cols) + 1, i % cols)
            self.tiles += [cell, text]


class QtDataPanel(QtPanel):
    key = "data"
    title = "2 · Data"
    subtitle = ("The images both models see. 'digits' is embedded and works offline; "
                "the validation split measures teacher and student alike.")
    prefixes = (("data",),)
    error = Signal(dict)

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self._task: QtWorker | None = None
        specs = describe(DataConfig)
        box = QGroupBox("Dataset")
        row = QHBoxLayout(box)
        self.spec_combo = QComboBox()
        self.spec_combo.setEditable(True)
        self.spec_combo.addItems(DATASET_SUGGESTIONS)
        self.spec_combo.setToolTip(next(s.help for s in specs if s.name == "spec"))
        self.spec_combo.lineEdit().editingFinished.connect(self._spec_edited)
        self.spec_combo.activated.connect(lambda _i: self._spec_edited())
        browse = QPushButton("Image folder…")
        browse.setToolTip("A folder with one sub-folder of images per class (labelled), or "
                          "with images directly in it (unlabelled: only the teacher teaches), "
                          "or both (a few labelled classes beside many unlabelled images).")
        browse.clicked.connect(self.browse_folder)
        row.addWidget(self.spec_combo, 1)
        row.addWidget(browse)
        self.body_layout.addWidget(box)

        split = QGroupBox("Split and preprocessing")
        split_layout = QVBoxLayout(split)
        self.form = QtParamForm(specs, state, ("data",), skip=("spec",))
        split_layout.addWidget(self.form)
        self.body_layout.addWidget(split)

        preview = QGroupBox("Preview")
        p_layout = QVBoxLayout(preview)
        self.preview_button = QPushButton("Show samples")
        self.preview_button.clicked.connect(self.preview)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.samples = QtSampleGrid()
        p_layout.addWidget(self.preview_button)
        p_layout.addWidget(self.info)
        p_layout.addWidget(self.samples)
        self.body_layout.addWidget(preview)
        state.replaced.connect(self.refresh)
        self.refresh()
        self.finish()

    def refresh(self) -> None:
        self.spec_combo.setEditText(self.state.get(("data", "spec")) or "")

    def _spec_edited(self) -> None:
        spec = self.spec_combo.currentText().strip()
        old = self.state.get(("data", "spec")) or ""
        if spec == old:
            return
        # Run folders are named after the config's name: follow the data unless the user
        # named the experiment (every folder used to end in "-demo" whatever the data).
        if (self.state.get(("name",)) or "") in ("", *DEFAULT_NAMES, data_run_name(old)):
            self.state.set(("name",), data_run_name(spec))
        self.state.set(("data", "spec"), spec)

    def browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Image folder (one sub-folder per class, or unlabelled images)")
        if path:
            self.spec_combo.setEditText(f"folder:{path}")
            self._spec_edited()

    def preview(self) -> None:
        if self._task is not None and self._task.running:
            return
        data = self.state.get(("data",))
        self.preview_button.setEnabled(False)
        self.info.setText("Loading the dataset…")
        from kdgui.engine import jobs  # the facade only: torch loads on the worker

        task = QtWorker(lambda: jobs.data_preview(data), owner=self)
        task.returned.connect(self._show)
        task.errored.connect(self._failed)
        task.finished.connect(lambda: self.preview_button.setEnabled(True))
        self._task = task
        task.start()

    def _show(self, result: dict[str, Any]) -> None:
        info = result["info"]
        unlabelled = int(info.get("n_unlabelled") or 0)
        n_train, n_val = int(info.get("n_train") or 0), int(info.get("n_val") or 0)
        if not info.get("num_classes"):  # no label anywhere: validation is unlabelled too
            classes = "no labels: the classes come from the teacher"
            note = (f"<br><b>unlabelled: {n_train + n_val:,} images</b> (the teacher teaches "
                    f"on {n_train:,}; {n_val:,} held out to compare the student with it)")
        else:
            classes = f"{info.get('num_classes')} classes"
            note = (f"<br><b>unlabelled: {unlabelled:,} images</b> (only the teacher teaches on "
                    f"them; the hard loss uses the {n_train - unlabelled:,} labelled ones)"
                    if unlabelled else "")
        self.info.setText(
            f"<b>{info.get('name')}</b> · {n_train} training / {n_val} validation samples · "
            f"input {info.get('input_shape')} · {classes}{note}"
        )
        self.samples.show_samples(result["images"], result["labels"],
                                  list(info.get("class_names", [])))

    def _failed(self, error: dict[str, str]) -> None:
        self.info.setText("Could not load the dataset (see the message).")
        self.error.emit(error)
