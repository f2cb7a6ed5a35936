"""The distillation panel edits the loss's term list, and the config follows every edit."""

from __future__ import annotations

import pytest

from kdgui.core.config_io import config_from_dict, config_to_dict


def test_adding_and_removing_terms_rewrites_distill_terms(window) -> None:
    panel = window.panels["distill"]
    editor = panel.terms_editor
    window.show_panel("distill")
    # The shorthand's defaults, shown as its terms; the shorthand sliders are in use.
    assert window.state.config.distill.terms is None
    assert editor.cards[0].title().startswith("hard")
    assert not panel.form.isHidden()

    editor.loss_combo.setCurrentIndex(editor.loss_combo.findData("dkd"))
    editor.add_button.click()
    cfg = window.state.config
    assert cfg is not None and window.state.valid
    assert [(t.key, t.weight) for t in cfg.distill.terms] == [
        ("hard", pytest.approx(0.3)), ("soft", pytest.approx(0.7)), ("dkd", 1.0)]
    assert panel.form.isHidden() and panel.shorthand_extra.isHidden()
    assert "1.00·L<sub>dkd</sub>" in panel.formula.text()

    # Each card has the loss's own declared parameters and a weight slider.
    dkd = editor.cards[2]
    assert set(dkd.params_form.fields) == {"alpha", "beta", "temperature", "warmup_epochs",
                                           "standardize"}
    dkd.params_form.fields["beta"].spin.setValue(4.0)
    dkd.weight_form.fields["weight"].spin.setValue(2.0)
    term = window.state.config.distill.terms[2]
    assert term.params["beta"] == 4.0 and term.weight == 2.0
    assert "2.00·L<sub>dkd</sub>" in panel.formula.text()

    # The same loss twice gets its own label; removing a term drops it from the config.
    editor.add_term("dkd")
    assert [t.key for t in window.state.config.distill.terms] == ["hard", "soft", "dkd", "dkd-2"]
    editor.cards[1].remove_button.click()
    assert [t.key for t in window.state.config.distill.terms] == ["hard", "dkd", "dkd-2"]
    assert "L<sub>soft</sub>" not in panel.formula.text()

    # A bad parameter (as from a config file) is an inline issue on the panel.
    window.state.set(("distill", "terms", 1, "params", "temperature"), 0)
    assert not window.state.valid
    assert "parameter 'temperature' of loss 'dkd'" in panel.issues_label.text()
    editor.cards[1].params_form.fields["temperature"].spin.setValue(5.0)
    assert window.state.valid

    # What the window saves loads as the same list; back to the shorthand restores the sliders.
    again = config_from_dict(config_to_dict(window.state.config))
    assert [t.key for t in again.distill.terms] == ["hard", "dkd", "dkd-2"]
    editor.shorthand_button.click()
    assert window.state.config.distill.terms is None
    assert window.state.config.distill.alpha == pytest.approx(0.7)
    assert not panel.form.isHidden()


def test_pairs_from_the_pairing_tool_go_where_the_loss_keeps_them(qtbot) -> None:
    from kdgui.gui.qt_config_state import QtConfigState
    from kdgui.gui.qt_terms_editor import set_term_pairs

    state = QtConfigState()
    set_term_pairs(state, "feature", [["layer1", "features.2"]])
    assert state.config.distill.feature.pairs == [("layer1", "features.2")]
    data = state.data
    data["distill"] = {"terms": [{"name": "hard"}, {"name": "feature", "weight": 0.5}]}
    state.replace(data)
    set_term_pairs(state, "feature", [["layer2", "features.4"]])
    assert state.valid
    assert state.config.distill.terms[1].pairs == [("layer2", "features.4")]
    assert state.config.distill.feature.pairs is None


def test_the_student_editors_pairing_tool_writes_into_a_term_list(window) -> None:
    """With a term list, pairs chosen in the Student panel's pairing view go to the terms of
    that loss (writing distill.attention.pairs beside a list is refused as mixing forms)."""
    editor = window.panels["distill"].terms_editor
    editor.add_term("attention")
    assert [t.key for t in window.state.config.distill.terms] == ["hard", "soft", "attention"]
    student_panel = window.panels["student"]
    student_panel.editor.pairsChanged.emit("attention", [["layers.0", "layers.0"]])
    cfg = window.state.config
    assert cfg is not None and window.state.valid
    assert cfg.distill.terms[2].pairs == [("layers.0", "layers.0")]
