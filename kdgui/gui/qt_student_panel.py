"""Step 3, the student: a preset scaled by width, or derived from the teacher's family.

Presets come from :mod:`kdgui.core.presets` (specs, no torch), so this panel can list them and
their descriptions instantly. A drawing editor for custom students comes later.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QVBoxLayout, QWidget

from kdgui.core.config import StudentConfig
from kdgui.core.params import describe
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamForm
from kdgui.gui.qt_panel_base import QtPanel


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
        self.body_layout.addWidget(box)
        sizing = QGroupBox("Size")
        s_layout = QVBoxLayout(sizing)
        self.form = QtParamForm(specs, state, ("student",), skip=("preset",))
        s_layout.addWidget(self.form)
        self.body_layout.addWidget(sizing)
        state.replaced.connect(self.refresh)
        self.refresh()
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
        self.state.set(("student", "preset"), self.preset_combo.itemData(index))
        self._show_help()

    def _show_help(self) -> None:
        text = self.preset_combo.currentData(3)
        self.preset_help.setText(str(text or ""))
