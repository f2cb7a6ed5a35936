"""A three-term loss (hard + DKD + RKD) set up in the window runs on the real engine, and the
loss plot draws one curve per term; a feature term's layer pairs are edited on its card."""

from __future__ import annotations

import pytest

from tests.gui.fake_engine import logged_events

pytestmark = pytest.mark.slow


@pytest.fixture
def real_window(make_window):
    return make_window(run_fn=None)  # the real engine, on the demo (digits, bundled teacher)


def test_hard_dkd_rkd_from_the_window_runs_and_plots_each_term(real_window, qtbot, tmp_path):
    window = real_window
    editor = window.panels["distill"].terms_editor
    editor.add_term("dkd")
    editor.add_term("rkd")
    editor.remove_term(1)  # the shorthand's soft term: hard + dkd + rkd remain
    window.state.set(("distill", "terms", 1, "params", "warmup_epochs"), 0)
    window.state.set(("training", "epochs"), 1)
    window.state.set(("training", "log_every"), 5)
    cfg = window.state.config
    assert cfg is not None and window.state.valid, window.state.issues
    assert [t.key for t in cfg.distill.terms] == ["hard", "dkd", "rkd"]
    with qtbot.waitSignal(window.run_ended, timeout=180000) as ended:
        window.run_panel.start_button.click()
    assert ended.args == [True], window.errors
    plot = window.run_panel.loss_plot
    assert set(plot.curves) == {"total", "hard", "dkd", "rkd"}
    steps = [e for e in logged_events(window.run_panel.run_dir) if e.kind == "step"]
    assert steps and list(steps[0].losses) == ["hard", "dkd", "rkd", "total"]
    for term in ("hard", "dkd", "rkd"):
        shown = plot.shown_values(term)
        assert len(shown) == len(steps) and (shown > 0).all(), term
    plot.grab().save(str(tmp_path / "loss-plot.png"))


def test_a_feature_terms_pairs_are_edited_on_its_card(window, qtbot) -> None:
    editor = window.panels["distill"].terms_editor
    window.show_panel("distill")
    editor.add_term("rkd")
    card = editor.cards[-1]
    assert card.pairs_edit is not None and card.pairs_edit.text() == ""
    assert editor.cards[0].pairs_edit is None  # hard reads no feature maps: no pairs row
    card.pairs_edit.setText("layers.4>layers.8 + layers.6 > layers.14")
    card.pairs_edit.editingFinished.emit()
    assert window.state.config.distill.terms[2].pairs == [("layers.4", "layers.8"),
                                                          ("layers.6", "layers.14")]
    card.pairs_edit.setText("layers.4")  # not a pair: said on the card, the config unchanged
    card.pairs_edit.editingFinished.emit()
    assert not card.pairs_error.isHidden() and "TEACHER>STUDENT" in card.pairs_error.text()
    assert len(window.state.config.distill.terms[2].pairs) == 2
    card.pairs_edit.setText("")  # empty: automatic pairing again
    card.pairs_edit.editingFinished.emit()
    assert card.pairs_error.isHidden() and window.state.config.distill.terms[2].pairs is None
    # pairs written elsewhere (the student editor's pairing tool) show on the card
    window.panels["student"].editor.pairsChanged.emit("rkd", [["layers.0", "layers.1"]])
    assert editor.cards[-1].pairs_edit.text() == "layers.0>layers.1"
