"""Step 3, the student: a preset scaled by width, or derived from the teacher's family.

Presets come from :mod:`kdgui.core.presets` (specs, no torch), so this panel can list them and
their descriptions instantly. Below them the drawing editor (:mod:`kdgui.gui.student_editor`)
shows the student that will be trained — the preset, or ``student.spec`` once the user edits it —
and its problems become config issues, so Run stays disabled while the drawn student is invalid.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from kdgui.core.config import StudentConfig
from kdgui.core.errors import UserError
from kdgui.core.params import describe
from kdgui.gui.qt_config_state import Issue, QtConfigState
from kdgui.gui.qt_forms import QtParamForm
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_terms_editor import set_term_pairs
from kdgui.gui.student_editor import StudentEditor
from kdgui.gui.student_editor.context import data_context, demo_teacher_spec, spec_params


def preset_items() -> list[tuple[str, str]]:
    """(name, description) of every student preset."""
    from kdgui.core.presets import PRESETS

    return [(name, getattr(p, "summary", "") or getattr(p, "description", ""))
            for name, p in PRESETS.items()]


class QtStudentPanel(QtPanel):
    key = "student"
    title = "3 · Student"
    subtitle = ("The small model that learns from the teacher. Pick a preset and scale its "
                "width, or derive a narrower, shallower copy of the teacher's family.")
    prefixes = (("student",),)

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        specs = describe(StudentConfig)
        box = QGroupBox("Preset")
        layout = QVBoxLayout(box)
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip(next(s.help for s in specs if s.name == "preset"))
        for name, text in preset_items():
            self.preset_combo.addItem(name, name)
            if text:
                self.preset_combo.setItemData(self.preset_combo.count() - 1, text, 3)
        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        self.preset_help = QLabel("")
        self.preset_help.setWordWrap(True)
        layout.addWidget(self.preset_combo)
        layout.addWidget(self.preset_help)
        sizing = QGroupBox("Size")
        s_layout = QVBoxLayout(sizing)
        self.form = QtParamForm(specs, state, ("student",), skip=("preset",))
        s_layout.addWidget(self.form)
        top = QHBoxLayout()
        top.addWidget(box, 1)
        top.addWidget(sizing, 1)
        self.body_layout.addLayout(top)
        self.editor = StudentEditor()
        self._syncing = False
        self.editor.specChanged.connect(self._spec_edited)
        self.editor.pairsChanged.connect(
            lambda kind, pairs: set_term_pairs(self.state, kind, pairs))
        self.body_layout.addWidget(self.editor, 1)
        state.replaced.connect(self.refresh)
        state.changed.connect(self._sync_editor)  # before the window's slot: issues first
        self.refresh()
        self._sync_editor()
        self.finish()

    def refresh(self) -> None:
        preset = self.state.get(("student", "preset"))
        i = self.preset_combo.findData(preset)
        if i < 0 and preset:
            self.preset_combo.addItem(preset, preset)
            i = self.preset_combo.count() - 1
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(i)
        self.preset_combo.blockSignals(False)
        self._show_help()

    def _preset_chosen(self, index: int) -> None:
        if self.state.get(("student", "spec")) is not None:
            self.state.set(("student", "spec"), None)  # a preset replaces the drawn student
        self.state.set(("student", "preset"), self.preset_combo.itemData(index))
        self._show_help()

    # -- the drawing editor ----------------------------------------------------------------------
    def _spec_edited(self, spec: object) -> None:
        if not self._syncing:
            self.state.set(("student", "spec"), spec.model_dump(mode="json"))  # type: ignore

    def _sync_editor(self) -> None:
        """Show the student the run will use, and turn its shape errors into config issues."""
        from kdgui.core.presets import PRESETS
        from kdgui.core.student_spec import StudentSpec

        student = self.state.get(("student",), {}) or {}
        context = data_context(self.state.get(("data",), {}) or {})
        shape, classes = context or (self.editor.model.input_shape, self.editor.model.num_classes)
        teacher = demo_teacher_spec() if self.state.get(("teacher", "path")) == "demo" else None
        self._syncing = True
        try:
            self.editor.set_context(shape, classes,
                                    spec_params(teacher, shape, classes) if teacher else None,
                                    teacher_spec=teacher)
            try:
                if student.get("spec") is not None:
                    spec = StudentSpec.model_validate(student["spec"])
                elif student.get("preset") in PRESETS and not student.get("model"):
                    spec = PRESETS[student["preset"]].build(shape, classes,
                                                            float(student.get("width") or 1.0))
                else:
                    spec = None
            except (ValueError, UserError):
                spec = None
            if spec is not None and spec != self.editor.spec():
                self.editor.set_spec(spec)
        finally:
            self._syncing = False
        if student.get("spec") is not None and context is not None:
            for err in self.editor.model.report.errors[:3]:
                self.state.issues.append(Issue(("student", "spec"), err.one_line(), ""))
            self.show_issues()

    def _show_help(self) -> None:
        text = self.preset_combo.currentData(3)
        self.preset_help.setText(str(text or ""))
