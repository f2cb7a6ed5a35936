"""Step 5, compression and export: an ordered pipeline of registered steps, each with its form.

Methods and their parameters come from the registries (:mod:`kdgui.core.registry`), so a plugin's
pruner appears here with its sliders without any window code. Each step's parameters are checked
against its component when the config changes, and problems are shown on that step's card.
"""

from __future__ import annotations

from typing import Any, get_args

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.components.compression import method_component, methods_of
from kdgui.core.config import CompressionStep, ExportConfig
from kdgui.core.params import describe
from kdgui.core.registry import REGISTRIES
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamForm
from kdgui.gui.qt_panel_base import ISSUE_STYLE, QtPanel, _esc

STEP_KINDS = get_args(CompressionStep.model_fields["kind"].annotation)
KIND_TITLES = {"prune": "Prune", "quantize": "Quantize", "lowrank": "Low-rank",
               "finetune": "Fine-tune"}


def methods_for(kind: str) -> list[Any]:
    """The registered methods of a step kind (none for finetune), as declared in core."""
    return [method_component(kind, name) for name in methods_of(kind)]


class QtStepCard(QFrame):
    """One compression step: kind, method, the method's parameters, fine-tuning, reorder."""

    def __init__(self, panel: QtCompressPanel, index: int) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.panel, self.index = panel, index
        state = panel.state
        step = state.get(("compression", "steps", index)) or {}
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(QLabel(f"<b>Step {index + 1}</b>"))
        self.kind_combo = QComboBox()
        for kind in STEP_KINDS:
            self.kind_combo.addItem(KIND_TITLES.get(kind, kind), kind)
        self.kind_combo.setCurrentIndex(max(0, self.kind_combo.findData(step.get("kind"))))
        self.kind_combo.currentIndexChanged.connect(self._kind_changed)
        self.method_combo = QComboBox()
        components = methods_for(step.get("kind", "prune"))
        for comp in components:
            self.method_combo.addItem(comp.title, comp.name)
            self.method_combo.setItemData(self.method_combo.count() - 1, comp.summary, 3)
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(step.get("method"))))
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        self.method_combo.setVisible(bool(components))
        head.addWidget(self.kind_combo)
        head.addWidget(self.method_combo, 1)
        for text, tip, slot in (
            ("↑", "Move up", lambda: panel.move_step(index, -1)),
            ("↓", "Move down", lambda: panel.move_step(index, 1)),
            ("✕", "Remove this step", lambda: panel.remove_step(index)),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setFixedWidth(32)
            button.clicked.connect(slot)
            head.addWidget(button)
        layout.addLayout(head)
        comp = next((c for c in components if c.name == step.get("method")), None)
        if comp is not None:
            about = QLabel(f"{comp.summary}" + (f"<br><i>{comp.formula}</i>" if comp.formula
                                                 else ""))
            about.setWordWrap(True)
            layout.addWidget(about)
            layout.addWidget(QtParamForm(comp.param_specs(), state,
                                         ("compression", "steps", index, "params")))
        layout.addWidget(QtParamForm(describe(CompressionStep), state,
                                     ("compression", "steps", index),
                                     skip=("kind", "method", "params")))
        self.issues = QLabel()
        self.issues.setObjectName("issues")
        self.issues.setStyleSheet(ISSUE_STYLE)
        self.issues.setWordWrap(True)
        layout.addWidget(self.issues)
        self.show_issues()

    def show_issues(self) -> None:
        found = self.panel.state.issues_under(("compression", "steps", self.index))
        self.issues.setText("<br>".join(f"<b>{_esc(i.what)}</b> {_esc(i.fix)}" for i in found))
        self.issues.setVisible(bool(found))

    def _kind_changed(self, _i: int) -> None:
        kind = self.kind_combo.currentData()
        methods = methods_for(kind)
        step = {"kind": kind, "method": methods[0].name if methods else kind, "params": {},
                "finetune_epochs": 1 if kind == "finetune" else 0}
        self.panel.replace_step(self.index, step)

    def _method_changed(self, _i: int) -> None:
        step = self.panel.state.get(("compression", "steps", self.index)) or {}
        step.update(method=self.method_combo.currentData(), params={})
        self.panel.replace_step(self.index, step)


class QtCompressPanel(QtPanel):
    key = "compress"
    title = "5 · Compression & export"
    subtitle = ("Optional steps applied to the distilled student, in order: prune, quantize, "
                "factorize, fine-tune. Each stage is measured for the before/after bars.")
    prefixes = (("compression",), ("export",))

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        steps_box = QGroupBox("Pipeline")
        self.steps_layout = QVBoxLayout(steps_box)
        self.cards: list[QtStepCard] = []
        self.empty_label = QLabel("No compression: the distilled student is the result.")
        self.steps_layout.addWidget(self.empty_label)
        add_row = QHBoxLayout()
        for kind in STEP_KINDS:
            button = QPushButton(f"+ {KIND_TITLES.get(kind, kind)}")
            button.setObjectName(f"add:{kind}")
            button.clicked.connect(lambda _c=False, k=kind: self.add_step(k))
            add_row.addWidget(button)
        add_row.addStretch(1)
        self.body_layout.addWidget(steps_box)
        self.body_layout.addLayout(add_row)

        export = QGroupBox("Export at the end of the run")
        e_layout = QVBoxLayout(export)
        row = QHBoxLayout()
        self.format_boxes: dict[str, QCheckBox] = {}
        for comp in REGISTRIES["exporter"]:
            box = QCheckBox(comp.name)
            box.setToolTip(f"{comp.title}: {comp.summary}")
            box.toggled.connect(self._formats_changed)
            row.addWidget(box)
            self.format_boxes[comp.name] = box
        row.addStretch(1)
        e_layout.addLayout(row)
        e_layout.addWidget(QtParamForm(describe(ExportConfig), state, ("export",)))
        self.body_layout.addWidget(export)
        state.replaced.connect(self.rebuild)
        state.changed.connect(self._show_card_issues)
        self.rebuild()
        self.finish()

    # -- steps -----------------------------------------------------------------------------------
    def steps(self) -> list[dict[str, Any]]:
        return list(self.state.get(("compression", "steps")) or [])

    def add_step(self, kind: str) -> None:
        methods = methods_for(kind)
        step = CompressionStep(kind=kind, method=methods[0].name if methods else kind,
                               finetune_epochs=1 if kind == "finetune" else 0)
        defaults = methods[0].params().model_dump(mode="json") if methods else {}
        self._set_steps([*self.steps(), {**step.model_dump(mode="json"), "params": defaults}])

    def remove_step(self, index: int) -> None:
        steps = self.steps()
        del steps[index]
        self._set_steps(steps)

    def move_step(self, index: int, delta: int) -> None:
        steps = self.steps()
        j = index + delta
        if 0 <= j < len(steps):
            steps[index], steps[j] = steps[j], steps[index]
            self._set_steps(steps)

    def replace_step(self, index: int, step: dict[str, Any]) -> None:
        steps = self.steps()
        if methods_of(step.get("kind", "")) and not step.get("params"):
            comp = method_component(step["kind"], step["method"])
            step["params"] = comp.params().model_dump(mode="json")
        steps[index] = step
        self._set_steps(steps)

    def _set_steps(self, steps: list[dict[str, Any]]) -> None:
        self.state.set(("compression", "steps"), steps)
        self.rebuild()

    def rebuild(self) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []
        for i in range(len(self.steps())):
            card = QtStepCard(self, i)
            self.steps_layout.addWidget(card)
            self.cards.append(card)
        self.empty_label.setVisible(not self.cards)
        formats = set(self.state.get(("export", "formats")) or [])
        for name, box in self.format_boxes.items():
            box.blockSignals(True)
            box.setChecked(name in formats)
            box.blockSignals(False)

    def _show_card_issues(self) -> None:
        for card in self.cards:
            card.show_issues()

    def _formats_changed(self) -> None:
        chosen = [n for n, b in self.format_boxes.items() if b.isChecked()]
        self.state.set(("export", "formats"), chosen)
