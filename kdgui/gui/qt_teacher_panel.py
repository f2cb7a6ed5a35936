"""Step 1, the teacher: pick a model file (dialog or drag & drop), inspect it, consent to pickles.

Loading a pickled ``nn.Module`` can run arbitrary code, so the ``trust`` flag is only set after an
explicit confirmation dialog — whether the user ticks it or the engine reports that the file
needs it (:class:`kdgui.core.errors.TrustRequired`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.config import ModelRef
from kdgui.core.formatting import fmt_count
from kdgui.core.params import describe
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamForm
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_setup_check import window_words
from kdgui.gui.qt_worker import QtWorker

MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".ts", ".safetensors", ".bin", ".ckpt")
MODEL_FILTER = "Models (*.pt *.pth *.pt2 *.ts *.safetensors *.bin *.ckpt);;All files (*)"
TRUST_TEXT = (
    "Loading this file unpickles Python objects, which can run arbitrary code on this computer."
    "\n\nOnly continue if you made the file yourself or trust where it came from."
)


#: What to do after declining trust, in the window's words (the engine's says "pass --trust").
DECLINED_TRUST_FIX = (
    "This file can only be loaded by unpickling it. If you made it yourself or trust its "
    "source, tick 'Trust this file' and press Inspect model; otherwise ask for a .pt2 "
    "(torch.export) or .safetensors file, which load without running code."
)


def confirm_trust(parent: QWidget, path: str) -> bool:
    """Ask before allowing a pickle to load (replaceable in tests)."""
    answer = QMessageBox.warning(
        parent, "Trust this model file?", f"{path}\n\n{TRUST_TEXT}",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class QtModelSummary(QWidget):
    """Headline numbers plus a per-layer table of a model summary."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.headline = QLabel("Press Inspect to load the model and count its layers, "
                               "parameters and MACs.")
        self.headline.setWordWrap(True)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["layer", "type", "output", "params", "MACs"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(180)
        layout.addWidget(self.headline)
        layout.addWidget(self.table)

    def show_summary(self, summary: dict[str, Any]) -> None:
        layers = summary.get("layers") or []
        if not layers and summary.get("tensors"):  # a weights-only file: list its tensors
            layers = [{"name": t.get("name"), "type": t.get("dtype"), "out_shape": t.get("shape"),
                       "params": _numel(t.get("shape"))} for t in summary["tensors"]]
        params = summary.get("params", summary.get("tensor_params"))
        parts = [f"<b>{fmt_count(params)}</b> parameters"]
        if summary.get("macs") is not None:
            parts.append(f"<b>{fmt_count(summary.get('macs'))}</b> MACs")
        parts.append(f"{len(layers)} layers")
        if summary.get("input_shape"):
            parts.append(f"input {summary['input_shape']}")
        if summary.get("format_title") or summary.get("format"):
            parts.append(str(summary.get("format_title") or summary.get("format")))
        text = " · ".join(parts)
        if summary.get("note"):
            text += f"<br><i>{summary['note']}</i>"
        self.headline.setText(text)
        self.table.setRowCount(len(layers))
        for r, row in enumerate(layers):
            for c, key in enumerate(("name", "type", "out_shape", "params", "macs")):
                value = row.get(key)
                text = fmt_count(value) if key in ("params", "macs") else str(value or "")
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()


def _numel(shape: Any) -> int:
    n = 1
    for s in shape or []:
        n *= int(s)
    return n


class QtTeacherPanel(QtPanel):
    key = "teacher"
    title = "1 · Teacher"
    subtitle = ("The trained model whose knowledge is distilled. 'demo' is the bundled digits "
                "teacher; drop a model file here or browse for one.")
    prefixes = (("teacher",),)
    error = Signal(dict)

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.setAcceptDrops(True)
        self.confirm_trust = confirm_trust
        self._task: QtWorker | None = None
        self._retry = False

        source = QGroupBox("Model file")
        row = QHBoxLayout(source)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("demo, or a .pt / .pt2 / .safetensors file")
        self.path_edit.setToolTip(describe(ModelRef)[0].help)
        self.path_edit.editingFinished.connect(
            lambda: self.set_path(self.path_edit.text().strip() or None)
        )
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        demo = QPushButton("Use demo teacher")
        demo.clicked.connect(lambda: self.set_path("demo"))
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        row.addWidget(demo)
        self.body_layout.addWidget(source)

        options = QGroupBox("Architecture and options")
        opt_layout = QVBoxLayout(options)
        self.form = QtParamForm(describe(ModelRef), state, ("teacher",), skip=("path", "trust"))
        self.trust_box = QCheckBox("Trust this file (allow pickled code to run when loading)")
        self.trust_box.setToolTip(TRUST_TEXT)
        self.trust_box.toggled.connect(self._on_trust_toggled)
        opt_layout.addWidget(self.form)
        opt_layout.addWidget(self.trust_box)
        self.body_layout.addWidget(options)

        summary_box = QGroupBox("Summary")
        s_layout = QVBoxLayout(summary_box)
        self.inspect_button = QPushButton("Inspect model")
        self.inspect_button.clicked.connect(self.inspect)
        self.summary = QtModelSummary()
        s_layout.addWidget(self.inspect_button)
        s_layout.addWidget(self.summary)
        self.body_layout.addWidget(summary_box, 1)
        state.replaced.connect(self.refresh)
        self.refresh()
        self.finish()

    def refresh(self) -> None:
        self.path_edit.setText(self.state.get(("teacher", "path")) or "")
        self.trust_box.blockSignals(True)
        self.trust_box.setChecked(bool(self.state.get(("teacher", "trust"))))
        self.trust_box.blockSignals(False)

    def set_path(self, path: str | None) -> None:
        self.path_edit.setText(path or "")
        self.state.set(("teacher", "path"), path)
        if self.state.get(("teacher", "trust")):
            # Consent was for the previous file, not this one.
            self.state.set(("teacher", "trust"), False)
            self.refresh()

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open teacher model", "", MODEL_FILTER)
        if path:
            self.set_path(path)

    def _on_trust_toggled(self, on: bool) -> None:
        if on and not self.confirm_trust(self, self.state.get(("teacher", "path")) or "this file"):
            self.trust_box.blockSignals(True)
            self.trust_box.setChecked(False)
            self.trust_box.blockSignals(False)
            return
        self.state.set(("teacher", "trust"), on)

    # -- drag & drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _model_path(event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _model_path(event.mimeData().urls())
        if path:
            self.set_path(path)
            event.acceptProposedAction()

    def showEvent(self, event: Any) -> None:
        """Summarise the bundled demo teacher by itself the first time the panel is shown (it
        is safe to load); other files wait for Inspect, which may have to ask for trust."""
        super().showEvent(event)
        if not getattr(self, "_auto_inspected", False) and self.state.get(("teacher", "path")) \
                == "demo":
            self._auto_inspected = True
            from PySide6.QtCore import QTimer

            # After the first paint: the window must appear before torch is imported.
            QTimer.singleShot(500, self._inspect_if_shown)

    def _inspect_if_shown(self) -> None:
        """The automatic inspect, unless the window was closed meanwhile (no orphan worker)."""
        if self.window().isVisible():
            self.inspect()

    # -- inspection ------------------------------------------------------------------------------
    def inspect(self) -> None:
        if self._task is not None and self._task.running:
            return
        ref = self.state.get(("teacher",))
        self.inspect_button.setEnabled(False)
        self.summary.headline.setText("Loading the model…")
        from kdgui.engine import jobs  # the facade only: torch loads on the worker

        task = QtWorker(lambda: jobs.inspect_model(ref), owner=self)
        task.returned.connect(self.summary.show_summary)
        task.errored.connect(self._on_inspect_error)
        task.finished.connect(self._inspect_ended)
        self._task = task
        task.start()

    def _inspect_ended(self) -> None:
        self.inspect_button.setEnabled(True)
        if self._retry:
            self._retry = False
            self.inspect()

    def _on_inspect_error(self, error: dict[str, str]) -> None:
        # The previous model's layers must not stay under "Could not load…".
        self.summary.table.setRowCount(0)
        self.summary.headline.setText("Could not load the model (see the message).")
        path = self.state.get(("teacher", "path")) or "this file"
        if error.get("type") == "TrustRequired" and not self.state.get(("teacher", "trust")):
            if self.confirm_trust(self, path):
                self.state.set(("teacher", "trust"), True)
                self.refresh()
                self._retry = True  # once this load's thread has ended
                return
            error = dict(error, fix=DECLINED_TRUST_FIX)
            self.summary.headline.setText("Not loaded: you chose not to trust this file.")
        else:
            error = dict(error, what=window_words(error.get("what", "")),
                         fix=window_words(error.get("fix", "")))
        self.error.emit(error)


def _model_path(urls: list[Any]) -> str | None:
    for url in urls:
        if url.isLocalFile():
            path = url.toLocalFile()
            if Path(path).suffix.lower() in MODEL_SUFFIXES:
                return path
    return None
