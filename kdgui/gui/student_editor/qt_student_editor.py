"""The student editor: palette, canvas, layer list, parameter form and pairing view on one model.

Integration API (used by the Student panel)::

    editor = StudentEditor()
    editor.set_context((1, 8, 8), 10, teacher_params=141_000)
    editor.set_spec(spec)            # a new document (history cleared)
    editor.specChanged.connect(...)  # after every edit made in the editor
    editor.spec(); editor.is_valid()

Every view observes one :class:`EditorModel`; the editor only wires actions (undo, delete,
duplicate, wrap, presets, derive, files, code) to model methods and shows the totals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.errors import UserError
from kdgui.core.formatting import fmt_count
from kdgui.core.presets import PRESETS
from kdgui.core.student_codegen import to_pytorch_source
from kdgui.core.student_spec import StudentSpec
from kdgui.core.student_spec_io import load_spec, save_spec
from kdgui.gui.student_editor.layers import LayerPath
from kdgui.gui.student_editor.model import EditorModel
from kdgui.gui.student_editor.qt_canvas import QtStudentCanvas
from kdgui.gui.student_editor.qt_layer_form import QtLayerForm
from kdgui.gui.student_editor.qt_layer_list import QtLayerList
from kdgui.gui.student_editor.qt_pairing_view import QtPairingView
from kdgui.gui.student_editor.qt_palette import QtLayerPalette

SPEC_FILTER = "Student specs (*.yaml *.yml *.json);;All files (*)"


class StudentEditor(QWidget):
    """Draw, check and size a student network; see the module docstring for the API."""

    #: The current spec (a :class:`StudentSpec`) after each edit made in the editor.
    specChanged = Signal(object)
    #: The user changed the distillation pairs: (kind 'feature'|'attention', pairs or None).
    pairsChanged = Signal(str, object)

    def __init__(self, spec: StudentSpec | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = EditorModel(spec)
        self.teacher_module: Any = None
        self.teacher_spec: StudentSpec | None = None

        self.palette_list = QtLayerPalette()
        self.canvas = QtStudentCanvas(self.model)
        self.layer_list = QtLayerList(self.model)
        self.form = QtLayerForm(self.model)
        self.pairing = QtPairingView(self.model)
        self.pairing.pairsChanged.connect(self.pairsChanged)
        self.palette_list.addRequested.connect(self.add_layer)

        self._build_actions()
        self.summary = QLabel()
        self.summary.setObjectName("studentSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.canvas, "Canvas")
        self.tabs.addTab(self.pairing, "Pairing with teacher")
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.layer_list)
        right.addWidget(self.form)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        self.form.setMinimumHeight(190)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("<b>Layers</b> — drag onto the canvas"))
        left_layout.addWidget(self.palette_list, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.tabs)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 2)
        split.setSizes([170, 430, 380])
        self.splitter = split

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._toolbar())
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addWidget(self.message)
        self.setMinimumHeight(560)

        self.model.changed.connect(self._model_changed)
        self.model.selection_changed.connect(lambda _p: self._update_actions())
        self._model_changed("init")

    # -- building --------------------------------------------------------------------------------
    def _action(self, key: str, text: str, slot: Any, shortcut: Any, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions_by_key[key] = action
        return action

    def _build_actions(self) -> None:
        self.actions_by_key: dict[str, QAction] = {}
        self._action("undo", "Undo", self.model.undo, QKeySequence.StandardKey.Undo, "Undo")
        self._action("redo", "Redo", self.model.redo, "Ctrl+Shift+Z", "Redo")
        self._action("delete", "Delete", self._on_selected(self.model.remove),
                     QKeySequence.StandardKey.Delete, "Delete the selected layer")
        self._action("duplicate", "Duplicate", self._on_selected(self.model.duplicate),
                     "Ctrl+D", "Duplicate the selected layer")
        self._action("wrap", "Wrap in skip connection",
                     self._on_selected(lambda p: self.model.wrap([p])), "Ctrl+G",
                     "Put the selected layer in a residual block (add layers to it by dragging)")
        self._action("unwrap", "Remove skip connection", self._on_selected(self.model.unwrap),
                     "Ctrl+Shift+G", "Replace the selected residual block by its layers")
        self._action("up", "Move up", self._on_selected(lambda p: self.model.move_by(p, -1)),
                     "Ctrl+Up", "Move the selected layer up")
        self._action("down", "Move down", self._on_selected(lambda p: self.model.move_by(p, 1)),
                     "Ctrl+Down", "Move the selected layer down")
        self._action("copy_code", "Copy as PyTorch code", self.copy_code, "Ctrl+Shift+C",
                     "Copy a standalone nn.Module for this student to the clipboard")
        self._action("save", "Save spec…", self.save_dialog, "Ctrl+Shift+S",
                     "Save the student as YAML or JSON")
        self._action("load", "Open spec…", self.load_dialog, "Ctrl+Shift+O",
                     "Open a student spec (YAML/JSON, or a config with student.spec)")
        self.canvas.menu_actions = self.actions_by_key

    def _on_selected(self, fn: Any) -> Any:
        def run() -> None:
            path = self.model.selected
            if path is None:
                self._say("Select a layer first.")
                return
            try:
                fn(path)
            except UserError as exc:
                self._say(f"{exc.what}. {exc.fix}")
        return run

    def _toolbar(self) -> QVBoxLayout:
        rows = QVBoxLayout()
        bar = QHBoxLayout()
        for key in ("undo", "redo", "delete", "duplicate", "wrap", None, "load", "save",
                    "copy_code"):
            if key is None:
                bar.addStretch(1)
                continue
            button = QToolButton()
            button.setDefaultAction(self.actions_by_key[key])
            bar.addWidget(button)
        rows.addLayout(bar)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Start from:"))
        self.preset_combo = QComboBox()
        for name, preset in PRESETS.items():
            self.preset_combo.addItem(name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, preset.description,
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setToolTip("A ready-made architecture to open in the editor")
        self.width_spin = QDoubleSpinBox()
        self.width_spin.setRange(0.125, 4.0)
        self.width_spin.setSingleStep(0.125)
        self.width_spin.setValue(1.0)
        self.width_spin.setPrefix("width ×")
        self.width_spin.setToolTip("Width multiplier for the preset or the derived student")
        open_preset = QToolButton()
        open_preset.setText("Open preset")
        open_preset.clicked.connect(lambda: self.open_preset(self.preset_combo.currentData()))
        self.depth_spin = QDoubleSpinBox()
        self.depth_spin.setRange(0.25, 1.0)
        self.depth_spin.setSingleStep(0.25)
        self.depth_spin.setValue(0.5)
        self.depth_spin.setPrefix("depth ×")
        self.depth_spin.setToolTip("Fraction of the teacher's repeatable blocks kept")
        self.derive_button = QToolButton()
        self.derive_button.setText("Derive from teacher")
        self.derive_button.setToolTip("A narrower, shallower copy of the teacher's architecture")
        self.derive_button.clicked.connect(self.derive_from_teacher)
        for w in (self.preset_combo, self.width_spin, open_preset, self.depth_spin,
                  self.derive_button):
            bar.addWidget(w)
        bar.addStretch(1)
        rows.addLayout(bar)
        return rows

    # -- the integration API ---------------------------------------------------------------------
    def set_context(self, input_shape: tuple[int, ...], num_classes: int,
                    teacher_params: int | None = None, teacher_module: Any = None,
                    teacher_spec: StudentSpec | None = None) -> None:
        """What the student is checked against: the data, and the teacher (optional)."""
        if teacher_module is not None and teacher_spec is None:
            teacher_spec = getattr(teacher_module, "kdgui_spec", None)
        self.teacher_module, self.teacher_spec = teacher_module, teacher_spec
        self.pairing.set_teacher(teacher_module, teacher_spec)
        self.model.set_context(tuple(input_shape), num_classes, teacher_params)  # type: ignore

    def set_spec(self, spec: StudentSpec) -> None:
        """Open ``spec`` as a new document (the undo history starts afresh)."""
        self.model.reset(spec)
        i = self.preset_combo.findData(spec.name)
        if i >= 0:
            self.preset_combo.setCurrentIndex(i)

    def spec(self) -> StudentSpec:
        return self.model.spec

    def is_valid(self) -> bool:
        return self.model.is_valid()

    # -- actions ---------------------------------------------------------------------------------
    def add_layer(self, layer_type: str) -> LayerPath:
        """Add a layer after the selection (keyboard alternative to dragging)."""
        path = self.model.append(layer_type)
        self.canvas.setFocus()
        return path

    def open_preset(self, name: str, width: float | None = None) -> None:
        width = self.width_spin.value() if width is None else width
        spec = PRESETS[name].build(self.model.input_shape, self.model.num_classes,  # type: ignore
                                   width)
        self.model.replace(spec, f"Open preset {name}")
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(name)))
        self._say(f"Opened preset {name} at width {width:g}.")

    def derive_from_teacher(self) -> None:
        if self.teacher_spec is None:
            self._say("Deriving needs a teacher built by kdgui (like the demo teacher); pick a "
                      "preset instead.")
            return
        from kdgui.engine import jobs
        from kdgui.gui.qt_worker import run_off_ui_thread

        teacher, shape, classes = self.teacher_spec, self.model.input_shape, self.model.num_classes
        width, depth = self.width_spin.value(), self.depth_spin.value()
        try:
            spec = run_off_ui_thread(lambda: jobs.derive_spec(teacher, shape, classes, width,
                                                              depth))
        except UserError as exc:
            self._say(f"{exc.what}. {exc.fix}")
            return
        self.model.replace(spec, "Derive from teacher")
        self._say(f"Derived from the teacher: width ×{self.width_spin.value():g}, depth "
                  f"×{self.depth_spin.value():g}.")

    def code(self) -> str:
        """The PyTorch source of the current student (raises ConfigError when invalid)."""
        return to_pytorch_source(self.model.spec, self.model.input_shape,  # type: ignore
                                 self.model.num_classes)

    def copy_code(self) -> bool:
        try:
            text = self.code()
        except UserError as exc:
            self._say(f"Cannot generate code: {exc.what}. {exc.fix}")
            return False
        QApplication.clipboard().setText(text)
        self._say(f"Copied {len(text.splitlines())} lines of PyTorch code to the clipboard.")
        return True

    def save(self, path: str | Path) -> bool:
        try:
            save_spec(self.model.spec, path)
        except UserError as exc:
            self._say(f"{exc.what}. {exc.fix}")
            return False
        self._say(f"Saved {path}.")
        return True

    def load(self, path: str | Path) -> bool:
        try:
            spec = load_spec(path)
        except UserError as exc:
            self._say(f"{exc.what}. {exc.fix}")
            return False
        self.model.replace(spec, f"Open {Path(path).name}")
        self._say(f"Opened {path}.")
        return True

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save student", f"{self.model.spec.name}"
                                              ".yaml", SPEC_FILTER)
        if path:
            self.save(path)

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open student", "", SPEC_FILTER)
        if path:
            self.load(path)

    # -- reacting to the model -------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.message.setText(text)

    def _model_changed(self, reason: str) -> None:
        report = self.model.report
        n_err = len(report.errors)
        ratio = self.model.size_ratio()
        head = ("<span style='color:#2ca02c'><b>✓ valid</b></span>" if report.ok else
                f"<span style='color:#d62728'><b>✗ {n_err} problem{'s' * (n_err != 1)}</b>"
                f" — Run is disabled until fixed</span>")
        parts = [head, f"<b>{fmt_count(report.total_params)}</b> parameters",
                 f"<b>{fmt_count(report.total_macs)}</b> MACs",
                 f"{len(report.layers)} layers"]
        if ratio and report.ok:
            parts.append(f"teacher {fmt_count(self.model.teacher_params)} params = "
                         f"<b>{ratio:.1f}×</b> the student")
        shape = "×".join(map(str, self.model.input_shape))
        parts.append(f"input {shape}, {self.model.num_classes} classes")
        self.summary.setText(" · ".join(parts))
        if not report.ok:
            first = report.errors[0]
            self._say(f"⚠ {first.one_line()}")
        elif self.message.text().startswith("⚠"):
            self._say("")
        self._update_actions()
        if reason not in ("reset", "context", "init"):
            self.specChanged.emit(self.model.spec)

    def _update_actions(self) -> None:
        sel = self.model.selected
        a = self.actions_by_key
        a["undo"].setEnabled(self.model.can_undo())
        a["redo"].setEnabled(self.model.can_redo())
        a["undo"].setToolTip(f"Undo {self.model.undo_text()} (Ctrl+Z)")
        a["redo"].setToolTip(f"Redo {self.model.redo_text()} (Ctrl+Shift+Z)")
        for key in ("delete", "duplicate", "wrap", "up", "down"):
            a[key].setEnabled(sel is not None)
        a["unwrap"].setEnabled(sel is not None and self.model.layer(sel).type == "residual")
        a["copy_code"].setEnabled(self.model.is_valid())
        self.derive_button.setEnabled(self.teacher_spec is not None)
