"""Forms come from ParamSpecs, write through to the config, and show invalid values inline."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from kdgui.core.config import DistillConfig, TrainingConfig
from kdgui.core.params import describe
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_forms import QtParamField, QtParamForm, _SliderScale


def spec(model, name):
    return next(s for s in describe(model) if s.name == name)


def test_slider_moves_change_the_config(window) -> None:
    form = window.panels["distill"].form
    alpha = form.fields["alpha"]
    assert alpha.slider is not None
    alpha.slider.setValue(alpha.slider.value() - 4)  # 4 steps of 0.05 down from 0.7
    assert window.state.config.distill.alpha == pytest.approx(0.5)
    assert alpha.spin.value() == pytest.approx(0.5)
    temp = form.fields["temperature"]
    temp.spin.setValue(8.0)
    assert window.state.config.distill.temperature == 8.0
    assert temp.slider.value() == temp._scale.position(8.0)
    # the formula follows the weights
    assert "0.50·L<sub>hard</sub>" in window.panels["distill"].formula.text()


def test_ranges_units_and_tooltips_come_from_the_declaration(qtbot) -> None:
    state = QtConfigState()
    form = QtParamForm(describe(DistillConfig), state, ("distill",))
    qtbot.addWidget(form)
    alpha = form.fields["alpha"]
    assert alpha.slider.minimum() == 0 and alpha.slider.maximum() == 20  # 0..1 step 0.05
    assert "softmax(z_t/T)" in alpha.toolTip()  # the formula is in the tooltip
    assert "≤ 1" in alpha.range_text()


def test_wide_ranges_get_a_log_slider_and_keep_exact_values(qtbot) -> None:
    lr_spec = spec(TrainingConfig, "lr")
    lr = _SliderScale(lr_spec)
    assert lr.log and lr.value(0) > 0 and lr.value(lr.positions) == pytest.approx(lr_spec.maximum)
    wd = _SliderScale(spec(TrainingConfig, "weight_decay"))
    assert wd.value(0) == 0  # zero stays reachable on a log slider
    field = QtParamField(spec(TrainingConfig, "lr"))
    qtbot.addWidget(field)
    seen = []
    field.value_changed.connect(seen.append)
    field.spin.setValue(3e-4)
    assert seen[-1] == pytest.approx(3e-4)
    field.slider.setValue(field.slider.maximum())
    assert seen[-1] == pytest.approx(lr_spec.maximum)


def test_optional_number_can_be_unset(window) -> None:
    limit = window.panels["data"].form.fields["limit"]
    assert window.state.config.data.limit is None
    limit.enabled_box.setChecked(True)
    limit.spin.setValue(200)
    assert window.state.config.data.limit == 200
    limit.enabled_box.setChecked(False)
    assert window.state.config.data.limit is None


def test_invalid_combination_disables_run_with_an_inline_message(window, qtbot) -> None:
    distill = window.panels["distill"]
    window.show_panel("distill")
    assert window.run_panel.start_button.isEnabled()
    distill.form.fields["beta"].spin.setValue(0.5)  # alpha 0.7 + beta 0.5 > 1
    assert not window.state.valid
    assert not window.run_panel.start_button.isEnabled()
    assert not window.run_action.isEnabled()
    assert distill.issues_label.isVisible()
    assert "must be ≤ 1" in distill.issues_label.text()
    assert window.sidebar.item(3).text().startswith("⚠")
    assert window.start_run() is False
    distill.form.fields["beta"].spin.setValue(0.2)
    assert window.state.valid and window.run_panel.start_button.isEnabled()
    assert not distill.issues_label.isVisible()


def test_compression_step_form_comes_from_the_registry(window) -> None:
    panel = window.panels["compress"]
    panel.add_step("prune")
    assert window.state.config.compression.steps[0].method == "magnitude"
    card = panel.cards[0]
    forms = card.findChildren(QtParamForm)
    sparsity = next(f.fields["sparsity"] for f in forms if "sparsity" in f.fields)
    sparsity.spin.setValue(0.5)
    assert window.state.config.compression.steps[0].params["sparsity"] == 0.5
    # a bad value written into the step (as from a hand-edited file) is shown on its card
    window.state.set(("compression", "steps", 0, "params", "sparsity"), 7)
    assert not window.state.valid
    assert not panel.cards[0].issues.isHidden() and "sparsity" in panel.cards[0].issues.text()
    panel.remove_step(0)
    assert window.state.valid and not panel.cards


def test_export_format_checkboxes(window) -> None:
    boxes = window.panels["compress"].format_boxes
    boxes["onnx"].setChecked(True)
    assert window.state.config.export.formats == ["onnx"]


def test_student_preset_choice(window) -> None:
    panel = window.panels["student"]
    i = panel.preset_combo.findData("mlp-tiny")
    panel.preset_combo.setCurrentIndex(i)
    assert window.state.config.student.preset == "mlp-tiny"
    assert "hidden layer" in panel.preset_help.text()


def test_panels_selected_by_key_and_shortcut(window, qtbot) -> None:
    window.show_panel("results")
    assert window.current_panel() == "results"
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.current_panel() == "data"
    with pytest.raises(ValueError, match="unknown panel"):
        window.show_panel("nope")
