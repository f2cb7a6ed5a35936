"""Forms built from :class:`kdgui.core.params.ParamSpec` records — never from hard-coded ranges.

Each numeric parameter becomes a slider with its value, allowed range and unit beside it and a
tooltip with the help text and formula. Ranges, steps and units come from the one declaration in
the config or component (``describe(model)``), so the window, the CLI flags and the YAML file
cannot disagree. A wide positive range (learning rate, batch size) gets a logarithmic slider so
that small values stay reachable; the spin box beside it always takes any exact value.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QWidget,
)

from kdgui.core.params import ParamSpec
from kdgui.gui.qt_choice_sources import choice_items, follow_source
from kdgui.gui.qt_config_state import Path, QtConfigState

#: Slider positions used for continuous (step-less) or logarithmic ranges.
_FINE = 1000
#: A range at least this wide (max / min) gets a logarithmic slider.
_LOG_RATIO = 1000.0

#: Friendlier labels for a few terse field names; everything else is derived from the name.
LABELS = {
    "alpha": "α  soft-target weight",
    "beta": "β  feature-hint weight",
    "gamma": "γ  attention weight",
    "temperature": "T  temperature",
    "p": "p  attention exponent",
    "lr": "Learning rate",
    "val_fraction": "Validation fraction",
    "num_threads": "CPU threads",
    "amp": "Mixed precision",
    "log_every": "Log every N steps",
}


def label_for(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def tooltip_for(spec: ParamSpec) -> str:
    """Help text, formula, range and unit, as rich text for the tooltip."""
    parts = [f"<b>{spec.name}</b>: {spec.help}"]
    if spec.formula:
        parts.append(f"<br><i>{spec.formula}</i>")
    if spec.range_text():
        unit = f" {spec.unit}" if spec.unit else ""
        parts.append(f"<br>Allowed: {spec.range_text()}{unit}")
    parts.append(f"<br>Default: {spec.default!r}")
    return "".join(parts)


class _SliderScale:
    """Maps integer slider positions to parameter values: linear by step, or logarithmic."""

    def __init__(self, spec: ParamSpec) -> None:
        assert spec.minimum is not None and spec.maximum is not None
        self.is_int = spec.kind == "int"
        lo, hi = float(spec.minimum), float(spec.maximum)
        step = float(spec.step) if spec.step else (1.0 if self.is_int else 0.0)
        # An exclusive bound is never a slider position: move one step (or one fine tick) in.
        if spec.exclusive_min:
            lo += step if step else (hi - lo) / _FINE
        if spec.exclusive_max:
            hi -= step if step else (hi - lo) / _FINE
        self.zero = False
        raw_lo = float(spec.minimum)
        floor = hi * 1e-6
        if isinstance(spec.default, (int, float)) and spec.default > 0:
            floor = min(floor, spec.default / 100)  # the default and well below it stay reachable
        positive_lo = raw_lo if raw_lo > 0 else (1.0 if self.is_int else floor)
        self.log = not spec.step and hi > 0 and hi / positive_lo >= _LOG_RATIO
        if self.log:
            # position 0 means exactly 0 when 0 is allowed (weight decay, epochs of pre-training)
            self.zero = raw_lo <= 0 and not spec.exclusive_min
            lo = positive_lo
        self.lo, self.hi, self.step = lo, hi, step
        if self.log:
            self.positions = _FINE
        elif step:
            self.positions = max(1, round((hi - lo) / step))
        else:
            self.positions = _FINE

    def value(self, pos: int) -> float | int:
        if self.log:
            if self.zero and pos == 0:
                return 0
            first = 1 if self.zero else 0
            frac = (pos - first) / max(1, self.positions - first)
            v = math.exp(math.log(self.lo) + frac * (math.log(self.hi) - math.log(self.lo)))
            v = float(f"{v:.2g}") if not self.is_int else v
        elif self.step:
            v = self.lo + pos * self.step
        else:
            v = self.lo + pos / self.positions * (self.hi - self.lo)
        if self.is_int:
            return round(v)
        return round(v, 10)

    def position(self, value: float | None) -> int:
        if value is None:
            return 0
        v = float(value)
        if self.log:
            if self.zero and v <= 0:
                return 0
            first = 1 if self.zero else 0
            v = min(max(v, self.lo), self.hi)
            frac = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
            return first + round(frac * (self.positions - first))
        if self.step:
            return min(self.positions, max(0, round((v - self.lo) / self.step)))
        span = self.hi - self.lo
        return min(self.positions, max(0, round((v - self.lo) / span * self.positions)))


class _FloatSpin(QDoubleSpinBox):
    """A spin box that shows values as ``%g`` (3e-3, not 0.00300) and keeps full precision."""

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        from PySide6.QtGui import QValidator

        stripped = text.strip()
        if stripped in ("", "-", ".", "e", "-."):
            return QValidator.State.Intermediate, text, pos
        try:
            float(stripped)
        except ValueError:
            if stripped[-1:] in "eE-+":
                return QValidator.State.Intermediate, text, pos
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Acceptable, text, pos


class QtParamField(QWidget):
    """The editor of one parameter; emits :attr:`value_changed` with the new plain value."""

    value_changed = Signal(object)

    def __init__(self, spec: ParamSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.slider: QSlider | None = None
        self.spin: QSpinBox | QDoubleSpinBox | None = None
        self.enabled_box: QCheckBox | None = None
        self.editor: QWidget
        self._scale: _SliderScale | None = None
        self._updating = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.setToolTip(tooltip_for(spec))
        if spec.kind in ("int", "float"):
            self._build_number(layout)
        elif spec.kind == "bool":
            box = QCheckBox()
            box.toggled.connect(lambda on: self._emit(bool(on)))
            layout.addWidget(box)
            layout.addStretch(1)
            self.editor = box
        elif spec.kind == "choice":
            combo = QComboBox()
            for value, text in choice_items(spec):
                combo.addItem(text, value)
            follow_source(combo, spec)  # e.g. this machine's GPUs, after the engine warm-up
            combo.currentIndexChanged.connect(lambda i: self._emit(combo.itemData(i)))
            layout.addWidget(combo)
            layout.addStretch(1)
            self.editor = combo
        else:
            edit = QLineEdit()
            edit.editingFinished.connect(
                lambda: self._emit(edit.text() if edit.text() or not spec.optional else None)
            )
            layout.addWidget(edit)
            self.editor = edit
        self.set_value(spec.default)

    # -- numbers -----------------------------------------------------------------------------
    def _build_number(self, layout: QHBoxLayout) -> None:
        spec = self.spec
        if spec.optional:
            self.enabled_box = QCheckBox()
            self.enabled_box.setToolTip("Unchecked: automatic (no value).")
            self.enabled_box.toggled.connect(self._on_enabled)
            layout.addWidget(self.enabled_box)
        if spec.minimum is not None and spec.maximum is not None:
            self._scale = _SliderScale(spec)
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, self._scale.positions)
            slider.setMinimumWidth(120)
            slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            slider.valueChanged.connect(self._on_slider)
            layout.addWidget(slider, 1)
            self.slider = slider
        spin: QSpinBox | QDoubleSpinBox
        if spec.kind == "int":
            spin = QSpinBox()
            lo = int(spec.minimum) + (1 if spec.exclusive_min else 0) if spec.minimum is not None \
                else -(2**31) + 1
            hi = int(spec.maximum) - (1 if spec.exclusive_max else 0) if spec.maximum is not None \
                else 2**31 - 1
            # QSpinBox holds a C int: a schema bound beyond it (a "no limit" 2**63) is clamped.
            spin.setRange(max(lo, -(2**31) + 1), min(hi, 2**31 - 1))
            spin.valueChanged.connect(self._on_spin)
        else:
            spin = _FloatSpin()
            spin.setDecimals(10)
            lo_f = spec.minimum if spec.minimum is not None else -1e12
            hi_f = spec.maximum if spec.maximum is not None else 1e12
            if spec.exclusive_min:
                lo_f += spec.step or 1e-9
            if spec.exclusive_max:
                hi_f -= spec.step or 1e-9
            spin.setRange(lo_f, hi_f)
            if spec.step:
                spin.setSingleStep(spec.step)
            else:
                spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
            spin.valueChanged.connect(self._on_spin)
        spin.setKeyboardTracking(False)
        spin.setMinimumWidth(84)
        spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        layout.addWidget(spin)
        if self.slider is None:
            spin.setMinimumWidth(120)
            layout.addStretch(1)
        self.spin = spin
        self.editor = spin

    def _on_enabled(self, on: bool) -> None:
        for w in (self.slider, self.spin):
            if w is not None:
                w.setEnabled(on)
        if not self._updating:
            self._emit(self._number() if on else None)

    def _number(self) -> float | int:
        assert self.spin is not None
        v = self.spin.value()
        return int(v) if self.spec.kind == "int" else float(v)

    def _on_slider(self, pos: int) -> None:
        if self._updating or self._scale is None or self.spin is None:
            return
        value = self._scale.value(pos)
        self._updating = True
        self.spin.setValue(value)
        self._updating = False
        self._emit(value)

    def _on_spin(self, _value: float) -> None:
        if self._updating:
            return
        value = self._number()
        if self.slider is not None and self._scale is not None:
            self._updating = True
            self.slider.setValue(self._scale.position(value))
            self._updating = False
        self._emit(value)

    # -- common ------------------------------------------------------------------------------
    def _emit(self, value: Any) -> None:
        if not self._updating:
            self.value_changed.emit(value)

    def value(self) -> Any:
        """The value the editor shows now (``None`` for an unset optional)."""
        if self.spec.kind in ("int", "float"):
            if self.enabled_box is not None and not self.enabled_box.isChecked():
                return None
            return self._number()
        if isinstance(self.editor, QCheckBox):
            return self.editor.isChecked()
        if isinstance(self.editor, QComboBox):
            return self.editor.currentData()
        assert isinstance(self.editor, QLineEdit)
        text = self.editor.text()
        return None if (not text and self.spec.optional) else text

    def set_value(self, value: Any) -> None:
        """Show ``value`` without emitting :attr:`value_changed`."""
        self._updating = True
        try:
            if self.spec.kind in ("int", "float"):
                assert self.spin is not None
                if self.enabled_box is not None:
                    self.enabled_box.setChecked(value is not None)
                    for w in (self.slider, self.spin):
                        if w is not None:
                            w.setEnabled(value is not None)
                if value is None:
                    value = self.spec.minimum if self.spec.minimum is not None else 0
                    if self.spec.kind == "int":
                        value = max(int(value), self.spin.minimum())
                self.spin.setValue(value)
                if self.slider is not None and self._scale is not None:
                    self.slider.setValue(self._scale.position(value))
            elif isinstance(self.editor, QCheckBox):
                self.editor.setChecked(bool(value))
            elif isinstance(self.editor, QComboBox):
                i = self.editor.findData(value)
                if i < 0 and value is not None and self.spec.extra.get("more_choices"):
                    self.editor.addItem(str(value), value)  # cuda:1 on a machine without it
                    i = self.editor.count() - 1
                self.editor.setCurrentIndex(max(0, i))
            elif isinstance(self.editor, QLineEdit):
                self.editor.setText("" if value is None else str(value))
        finally:
            self._updating = False

    def range_text(self) -> str:
        return "" if self.spec.kind == "choice" else self.spec.range_text()


EDITABLE_KINDS = ("int", "float", "bool", "choice", "str")


class QtParamForm(QWidget):
    """A grid of :class:`QtParamField` rows bound to one section of a :class:`QtConfigState`.

    ``path`` is where the section lives in the config (``("distill",)``,
    ``("compression", "steps", 0, "params")``); each field writes ``path + (name,)``.
    """

    def __init__(
        self,
        specs: list[ParamSpec],
        state: QtConfigState,
        path: Path,
        *,
        skip: tuple[str, ...] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.path = tuple(path)
        self.fields: dict[str, QtParamField] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        grid.setColumnStretch(1, 1)
        row = 0
        for spec in specs:
            if spec.name in skip or spec.kind not in EDITABLE_KINDS:
                continue
            name_label = QLabel(label_for(spec.name))
            name_label.setToolTip(tooltip_for(spec))
            field = QtParamField(spec)
            field.setObjectName(f"field:{'.'.join(map(str, (*self.path, spec.name)))}")
            unit = QLabel(spec.unit)
            rng = QLabel(field.range_text())
            rng.setObjectName("rangeLabel")
            rng.setStyleSheet("color: palette(mid);")
            grid.addWidget(name_label, row, 0)
            grid.addWidget(field, row, 1)
            grid.addWidget(unit, row, 2)
            grid.addWidget(rng, row, 3)
            field.value_changed.connect(
                lambda value, name=spec.name: self.state.set((*self.path, name), value)
            )
            self.fields[spec.name] = field
            row += 1
        self.refresh()
        state.replaced.connect(self.refresh)

    def refresh(self) -> None:
        """Re-read every value from the state (after a config was opened)."""
        for name, field in self.fields.items():
            value = self.state.get((*self.path, name), field.spec.default)
            field.set_value(value)
