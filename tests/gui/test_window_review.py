"""What a new user met in the window this wave (review): each test is one thing seen on screen."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QPoint, Qt

from kdgui.core.events import RunFinished
from tests.gui.test_deep_compression_view import table


def _run(folder: Path, summary: dict) -> Path:
    folder.mkdir()
    (folder / "config.yaml").write_text(f"name: {folder.name}\n", encoding="utf-8")
    (folder / "metrics.jsonl").write_text("", encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_a_student_bigger_than_its_teacher_is_not_called_0x_fewer(window, tmp_path) -> None:
    """LeNet-300-100 beside a tiny teacher: the run's end line read '0.0× fewer parameters' and
    Results' 'compression ratio' 0.05× beside a 29× Deep Compression."""
    summary = {"student": {"accuracy": 0.9}, "teacher": {"accuracy": 0.5},
               "compression_ratio": 0.05, "completed": True}
    line = window.run_panel._finished_text(RunFinished(run_dir=str(tmp_path / "r"),
                                                        summary=summary))
    assert "20.0× more parameters" in line and "fewer" not in line
    summary["compression_ratio"] = 4.0
    assert "4.0× fewer parameters" in window.run_panel._finished_text(
        RunFinished(run_dir=str(tmp_path / "r"), summary=summary))
    panel = window.results_panel
    panel.open_run(_run(tmp_path / "big-student", summary))
    labels = [panel.compare.verticalHeaderItem(r).text() for r in range(panel.compare.rowCount())]
    assert "teacher ÷ student params" in labels and "compression ratio" not in labels


def test_choosing_the_deep_compression_tab_brings_it_into_view(window, qtbot, tmp_path) -> None:
    window.resize(1024, 640)
    window.show_panel("results")
    panel = window.results_panel
    panel.open_run(_run(tmp_path / "dc-run", {"deep_compression": table()}))
    qtbot.wait(50)
    tabs, viewport = panel.result_tabs, panel.scroll.viewport()

    def bottom_in_view() -> int:
        return viewport.height() - tabs.mapTo(viewport, QPoint(0, tabs.height())).y()

    assert bottom_in_view() < 0, "test set-up: the tabs should start below the fold"
    bar = tabs.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    assert tabs.currentIndex() == 1
    qtbot.waitUntil(lambda: bottom_in_view() >= 0, timeout=3000)


def test_the_models_view_follows_the_run_picked_after_a_model_is_shown(qtbot, tmp_path) -> None:
    """With a model on screen, picking another run (or a run finishing in the window) left the
    graph, the layer table and the overlay on the previous run's model."""
    from kdgui.gui.qt_models_view import ModelsView
    from tests.engine.netron_run import make_run

    first, second = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    view = ModelsView(runs_root=tmp_path / "a", embed=False, open_url=lambda _url: None)
    qtbot.addWidget(view)
    view.show()
    with qtbot.waitSignal(view.prepared, timeout=120_000) as shown:
        pass  # the view draws the newest run's final model when first shown
    assert shown.args[0].source.run_dir == first
    with qtbot.waitSignal(view.prepared, timeout=120_000) as shown:
        view.set_run(second)
    assert shown.args[0].source.run_dir == second and view._current.source.run_dir == second
    view.close()


def test_term_cards_keep_the_distillation_panel_within_a_1280_window(window, qtbot) -> None:
    """Adding DKD + RKD + CRD widened the Loss column (the loss picker sized by its longest
    title, a range column on every card, the formula on one line): the Training column went
    off a 1280×800 window behind a horizontal scroll bar."""
    window.resize(1280, 800)
    window.show_panel("distill")
    panel = window.panels["distill"]
    shorthand = panel.body.minimumSizeHint().width()
    for key in ("dkd", "rkd", "crd"):
        panel.terms_editor.add_term(key)
    qtbot.wait(50)
    assert [t.key for t in window.state.config.distill.terms][-3:] == ["dkd", "rkd", "crd"]
    assert panel.body.minimumSizeHint().width() <= shorthand
    assert panel.scroll.horizontalScrollBar().maximum() == 0
    card = panel.terms_editor.cards[-1]
    assert "Allowed" in card.weight_form.findChildren(type(panel.formula))[0].toolTip()
