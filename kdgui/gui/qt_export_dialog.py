"""Export a run's final model to another format and show the verification result.

Formats come from the exporter registry (the same list as the config's ``export.formats``); the
export and its verification (reload and compare outputs with PyTorch) run on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.registry import REGISTRIES
from kdgui.gui.qt_task import QtTask

SUFFIX = {"state_dict": ".pt", "safetensors": ".safetensors", "pt2": ".pt2", "onnx": ".onnx",
          "torchscript": ".torchscript.pt"}


def export_from_run(run_dir: str, fmt: str, out: str, verify: bool) -> dict[str, Any]:
    """Load the run's distilled student and export it (runs on a worker thread)."""
    import torch

    from kdgui.core.config import ModelRef
    from kdgui.core.errors import ExportError
    from kdgui.engine.export import export_model, read_metadata
    from kdgui.engine.models import load_model

    student = Path(run_dir) / "student" / "student.safetensors"
    if not student.is_file():
        raise ExportError(
            f"'{run_dir}' holds no saved student ({student.name} is missing)",
            "Open a run that finished, or set export formats before running (a quantized "
            "student is exported during the run only).",
        )
    try:
        metadata = read_metadata(student)
    except Exception:
        metadata = {}
    # load_model rebuilds a kdgui student from the architecture stored in the file.
    loaded = load_model(ModelRef(path=str(student)))
    module, shape = loaded.module, loaded.input_shape or metadata.get("input_shape")
    if not shape:
        raise ExportError(f"the input shape of '{student}' is unknown",
                          "Export it from the CLI with an explicit input shape.")
    example = torch.zeros(1, *[int(s) for s in shape])
    result = export_model(module, fmt, out, example, metadata=metadata, verify=verify)
    return result.to_dict()


def describe_result(result: dict[str, Any]) -> str:
    lines = [f"Wrote <b>{result.get('path', '')}</b> ({result.get('size_bytes', 0):,} bytes)"]
    diff, tol = result.get("max_abs_diff"), result.get("tolerance")
    if diff is None:
        lines.append("Not verified.")
    elif result.get("verified"):
        lines.append(f"✓ verified: max |Δ| = {diff:.3g} (tolerance {tol:.3g})")
    else:
        lines.append(f"✗ verification failed: max |Δ| = {diff:.3g} (tolerance {tol:.3g})")
    if result.get("ort_latency_ms") is not None:
        lines.append(f"onnxruntime latency: {result['ort_latency_ms']:.3g} ms")
    lines += [f"⚠ {w}" for w in result.get("warnings", [])]
    return "<br>".join(lines)


class QtExportDialog(QDialog):
    def __init__(self, run_dir: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export model")
        self.run_dir = run_dir
        self._task: QtTask | None = None
        self.result_data: dict[str, Any] | None = None
        self.error_data: dict[str, str] | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.format_combo = QComboBox()
        for comp in REGISTRIES["exporter"]:
            self.format_combo.addItem(f"{comp.name} — {comp.title}", comp.name)
            self.format_combo.setItemData(self.format_combo.count() - 1, comp.summary, 3)
        self.format_combo.currentIndexChanged.connect(self._suggest_path)
        self.path_edit = QLineEdit()
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.verify_box = QCheckBox("Reload the file and compare its outputs with PyTorch")
        self.verify_box.setChecked(True)
        form.addRow("Format", self.format_combo)
        form.addRow("File", row)
        form.addRow("", self.verify_box)
        layout.addLayout(form)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        layout.addWidget(self.result_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.ApplyRole)
        self.export_button.clicked.connect(self.export)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._suggest_path()
        self.resize(560, 220)

    def _suggest_path(self) -> None:
        fmt = self.format_combo.currentData()
        self.path_edit.setText(str(Path(self.run_dir) / "export" / f"model{SUFFIX.get(fmt, '')}"))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text())
        if path:
            self.path_edit.setText(path)

    def export(self) -> None:
        if self._task is not None and self._task.running:
            return
        args = (self.run_dir, self.format_combo.currentData(), self.path_edit.text(),
                self.verify_box.isChecked())
        self.export_button.setEnabled(False)
        self.result_label.setText("Exporting…")
        self.result_data = self.error_data = None
        task = QtTask(lambda: export_from_run(*args), self)
        task.done.connect(self._done)
        task.errored.connect(self._failed)
        task.finished.connect(lambda: self.export_button.setEnabled(True))
        self._task = task
        task.start()

    def _done(self, result: dict[str, Any]) -> None:
        self.result_data = result
        self.result_label.setText(describe_result(result))

    def _failed(self, error: dict[str, str]) -> None:
        self.error_data = error
        self.result_label.setText(f"<b>{error.get('what', '')}</b><br>{error.get('fix', '')}")
