"""Inline editing of the selected layer's parameters, built from the layer class's pydantic fields.

Each field's widget comes from its declaration (type, ``ge``/``le`` bounds, description), so a
new layer type or a changed range needs no GUI change: integers get a spin box and a slider
(logarithmic for wide ranges such as channel counts), floats a double spin box and a slider,
booleans a check box, ``int | 'same'`` and ``int | None`` a spin box with an "auto" check box.
Below the fields the layer's live report: input → output shape, parameters, MACs and, when the
layer is invalid, the problem and its fix in red.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Literal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.errors import ConfigError
from kdgui.core.formatting import fmt_count
from kdgui.core.student_shapes import fmt_shape
from kdgui.core.student_spec import LAYER_TYPES
from kdgui.gui.student_editor.layers import LABELS, LayerPath
from kdgui.gui.student_editor.model import EditorModel

SLIDER_STEPS = 1000
LOG_SPAN = 64  # integer ranges wider than this get a logarithmic slider
DEFAULT_MAX = 11  # upper bound for fields declared without one (padding)


def bounds(field: Any) -> tuple[float | None, float | None]:
    """``(low, high)`` from a pydantic field's ``ge``/``gt``/``le``/``lt`` constraints."""
    lo = hi = None
    for meta in getattr(field, "metadata", []):
        if getattr(meta, "ge", None) is not None:
            lo = meta.ge
        if getattr(meta, "gt", None) is not None:
            lo = meta.gt
        if getattr(meta, "le", None) is not None:
            hi = meta.le
        if getattr(meta, "lt", None) is not None:
            hi = meta.lt - 0.01 if isinstance(meta.lt, float) else meta.lt - 1
    return lo, hi


def field_kind(annotation: Any) -> str:
    """``'int'``, ``'float'``, ``'bool'``, ``'int_or_same'``, ``'int_or_none'`` or ``'other'``."""
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and int in args:
        if type(None) in args:
            return "int_or_none"
        if any(typing.get_origin(a) is Literal for a in args):
            return "int_or_same"
    return "other"


class QtNumberField(QWidget):
    """A spin box with a slider; ``auto`` adds a check box for ``'same'``/``None`` values."""

    def __init__(self, kind: str, lo: float, hi: float, auto: str | None,
                 on_change: Any, on_release: Any) -> None:
        super().__init__()
        self.kind, self.lo, self.hi = kind, lo, hi
        self.on_change = on_change
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.auto: QCheckBox | None = None
        if auto:
            self.auto = QCheckBox(auto)
            self.auto.toggled.connect(self._auto_toggled)
            layout.addWidget(self.auto)
        self.spin: QSpinBox | QDoubleSpinBox
        if kind == "float":
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(2)
            self.spin.setSingleStep(0.05)
            self.spin.setRange(lo, hi)
        else:
            self.spin = QSpinBox()
            self.spin.setRange(int(lo), int(hi))
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(70)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.log = kind != "float" and hi - lo > LOG_SPAN
        self.slider.setRange(0, SLIDER_STEPS if (self.log or kind == "float") else int(hi - lo))
        self.slider.setMinimumWidth(90)
        layout.addWidget(self.spin)
        layout.addWidget(self.slider, 1)
        self.spin.valueChanged.connect(self._spin_changed)
        self.slider.valueChanged.connect(self._slider_moved)
        self.slider.sliderReleased.connect(on_release)

    # slider <-> value
    def _to_slider(self, v: float) -> int:
        if self.kind == "float":
            return round((v - self.lo) / (self.hi - self.lo) * SLIDER_STEPS)
        if self.log:
            a, b = math.log(max(self.lo, 1)), math.log(self.hi)
            return round((math.log(max(v, 1)) - a) / (b - a) * SLIDER_STEPS)
        return int(v - self.lo)

    def _from_slider(self, s: int) -> float:
        if self.kind == "float":
            return round(self.lo + s / SLIDER_STEPS * (self.hi - self.lo), 2)
        if self.log:
            a, b = math.log(max(self.lo, 1)), math.log(self.hi)
            return round(math.exp(a + s / SLIDER_STEPS * (b - a)))
        return int(self.lo + s)

    def value(self) -> Any:
        if self.auto is not None and self.auto.isChecked():
            return "same" if self.kind == "int_or_same" else None
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        for w in (self.spin, self.slider, self.auto):
            if w is not None:
                w.blockSignals(True)
        try:
            is_auto = value is None or value == "same"
            if self.auto is not None:
                self.auto.setChecked(is_auto)
            self.spin.setEnabled(not is_auto)
            self.slider.setEnabled(not is_auto)
            if not is_auto:
                self.spin.setValue(value)
                self.slider.setValue(self._to_slider(value))
        finally:
            for w in (self.spin, self.slider, self.auto):
                if w is not None:
                    w.blockSignals(False)

    def _spin_changed(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(v))
        self.slider.blockSignals(False)
        self.on_change(self.value())

    def _slider_moved(self, s: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self._from_slider(s))
        self.spin.blockSignals(False)
        self.on_change(self.value())

    def _auto_toggled(self, on: bool) -> None:
        self.spin.setEnabled(not on)
        self.slider.setEnabled(not on)
        self.on_change(self.value())


class QtLayerForm(QWidget):
    """Edits the parameters of the model's selected layer; re-reads them after every change."""

    def __init__(self, model: EditorModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.fields: dict[str, QWidget] = {}
        self._form_host = QWidget()
        self.form = QFormLayout(self._form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.problem = QLabel()
        self.problem.setObjectName("layerProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("QLabel#layerProblem { color: #b01c1d; background: "
                                   "rgba(214,39,40,0.10); border: 1px solid #d62728; "
                                   "border-radius: 4px; padding: 4px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self._form_host)
        layout.addWidget(self.info)
        layout.addWidget(self.problem)
        layout.addStretch(1)
        self._shown: tuple[LayerPath | None, str | None] = (None, None)
        model.changed.connect(lambda _reason: self.refresh())
        model.selection_changed.connect(lambda _path: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        path = self.model.selected
        layer = self.model.layer(path) if path is not None else None
        key = (path, layer.type if layer is not None else None)
        if key != self._shown:
            self._build(path, layer)
            self._shown = key
        if layer is not None:
            for name, widget in self.fields.items():
                value = getattr(layer, name)
                if isinstance(widget, QCheckBox):
                    widget.blockSignals(True)
                    widget.setChecked(bool(value))
                    widget.blockSignals(False)
                elif isinstance(widget, QtNumberField):
                    widget.set_value(value)
        self._show_report(path)

    def _build(self, path: LayerPath | None, layer: Any) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        if layer is None:
            self.title.setText("<i>Select a layer to edit its parameters.</i>")
            return
        self.title.setText(f"<b>{LABELS.get(layer.type, layer.type)}</b> · layer "
                           f"{'.'.join(map(str, path))}")
        cls = LAYER_TYPES[layer.type]
        for name, field in cls.model_fields.items():
            if name in ("type", "layers"):
                continue
            kind = field_kind(field.annotation)
            widget: QWidget
            if kind == "bool":
                widget = QCheckBox()
                widget.toggled.connect(lambda v, n=name: self._set(n, v))
            elif kind in ("int", "float", "int_or_same", "int_or_none"):
                lo, hi = bounds(field)
                lo = 0 if lo is None else lo
                hi = DEFAULT_MAX if hi is None else hi
                auto = {"int_or_same": "same", "int_or_none": "= kernel"}.get(kind)
                widget = QtNumberField("float" if kind == "float" else kind, lo, hi, auto,
                                       lambda v, n=name: self._set(n, v), self.model.end_merge)
            else:
                continue
            label = name.replace("_", " ")
            if field.description:
                widget.setToolTip(field.description)
            self.form.addRow(label, widget)
            self.fields[name] = widget
        if layer.type == "residual":
            self.form.addRow(QLabel("Adds the block's input to its output. Drop layers into "
                                    "it; a 1×1 projection is added when the shape changes."))

    def _set(self, name: str, value: Any) -> None:
        path = self.model.selected
        if path is None:
            return
        try:
            self.model.set_param(path, name, value)
        except ConfigError as exc:
            self.problem.setText(f"{exc.what}. {exc.fix}")
            self.problem.show()

    def _show_report(self, path: LayerPath | None) -> None:
        if path is None:
            self.info.setText("")
            self.problem.hide()
            return
        try:
            rep = self.model.report.layer_at(path)
        except KeyError:
            self.info.setText("")
            self.problem.hide()
            return
        text = (f"{fmt_shape(rep.in_shape)} → <b>{fmt_shape(rep.out_shape)}</b> · "
                f"{fmt_count(rep.params)} params · {fmt_count(rep.macs)} MACs")
        if rep.note:
            text += f"<br><i>{rep.note}</i>"
        self.info.setText(text)
        if rep.error:
            self.problem.setText(f"⚠ {rep.error}.\n{rep.fix}.")
            self.problem.show()
        else:
            self.problem.hide()
