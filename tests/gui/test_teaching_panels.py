"""The sweep panel, the history panel and presentation mode (fake engine, fast)."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QApplication

from kdgui.core.config import demo_config
from kdgui.core.events import RunFinished
from kdgui.engine.sweep import run_sweep
from kdgui.gui.presentation import set_presentation_mode
from kdgui.gui.qt_history_panel import QtHistoryPanel
from kdgui.gui.qt_soft_target_explorer import QtSoftTargetExplorer
from kdgui.gui.qt_sweep_panel import QtSweepPanel
from tests.engine.test_history import make_run


def fake_run(gate: threading.Event | None = None):
    """Accuracy grows with T, size too; with ``gate``, the run for T=4 waits for it."""

    def run(cfg, out_dir, control=None):
        t = cfg.distill.temperature
        out_dir.mkdir(parents=True)
        if gate is not None and t == 4:
            gate.wait(10)
        m = {"accuracy": 0.5 + t / 20, "size_bytes": 1024 * t, "zip_size_bytes": 1024 * t,
             "latency_ms": 1.0, "params": 1, "nonzero_params": 1}
        stopped = bool(control and control.stop_requested)
        yield RunFinished(run_dir=str(out_dir), stopped=stopped,
                          summary={"teacher": m, "student": m, "stages": []})

    return run


def test_sweep_panel_runs_in_the_background_and_draws_the_front(qtbot, tmp_path) -> None:
    panel = QtSweepPanel(config_provider=demo_config,
                         sweep_fn=functools.partial(run_sweep, run_fn=fake_run()))
    qtbot.addWidget(panel)
    panel.key.setCurrentText("T")
    panel.values.setText("1, 2, 8")
    with qtbot.waitSignal(panel.sweep_finished, timeout=20000):
        assert panel.start(tmp_path / "s")
    qtbot.waitUntil(lambda: not panel.running, timeout=10000)
    assert [r["label"] for r in panel.rows] == ["1", "2", "8"]
    assert panel.table.rowCount() == 3
    _x, y = panel.curve.getData()
    np.testing.assert_allclose(y, [55.0, 60.0, 90.0])
    fx, fy = panel.pareto_points("size")
    assert fx[0] == pytest.approx(1.0) and fy[-1] == pytest.approx(90.0)
    assert (tmp_path / "s" / "sweep.csv").is_file()


def test_sweep_panel_stop_keeps_finished_runs(qtbot, tmp_path) -> None:
    gate = threading.Event()
    panel = QtSweepPanel(sweep_fn=functools.partial(run_sweep, run_fn=fake_run(gate)))
    qtbot.addWidget(panel)
    panel.key.setCurrentText("T")
    panel.values.setText("1, 4, 8")
    assert panel.start(tmp_path / "s")
    qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=10000)
    panel.stop()
    gate.set()
    qtbot.waitUntil(lambda: not panel.running, timeout=10000)
    assert [r["label"] for r in panel.rows] == ["1"]
    assert "stopped" in panel.status.text()


def test_sweep_panel_reports_a_bad_value_without_starting(qtbot) -> None:
    panel = QtSweepPanel()
    qtbot.addWidget(panel)
    panel.key.setCurrentText("distill.temperature")
    panel.values.setText("1,,2")
    assert not panel.start()
    assert panel.last_error and not panel.running
    panel.load_lesson("bits")
    assert panel.key.currentText() == "quantize.bits" and "How few bits" in panel.explanation.text()


def test_history_panel_search_tag_compare_delete_report(qtbot, tmp_path) -> None:
    root = tmp_path / "runs"
    make_run(root / "a", "alpha-run", accuracy=0.9, temperature=1.0)
    make_run(root / "b", "beta-run", accuracy=0.8, temperature=8.0)
    panel = QtHistoryPanel(root)
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 2
    panel.search_box.setText("beta")
    assert [r.name for r in panel.records] == ["beta-run"]
    panel.search_box.setText("")
    panel.select_ids([r.id for r in panel.records])
    result = panel.compare_selected()
    assert result["config_diff"] == {"distill.temperature": [8.0, 1.0]} or result[
        "config_diff"] == {"distill.temperature": [1.0, 8.0]}
    panel.tag_selected(["lecture"])
    assert panel.tag_filter.count() == 2
    report = panel.report_selected(tmp_path / "r.html")
    assert report is not None and "data:image/png;base64," in report.read_text()
    panel.select_ids([next(r.id for r in panel.records if r.name == "beta-run")])
    panel.delete_selected(delete_files=True)
    assert not (root / "b").exists() and [r.name for r in panel.records] == ["alpha-run"]
    (root / "history.sqlite").write_bytes(b"junk" * 50)
    again = QtHistoryPanel(root)
    qtbot.addWidget(again)
    assert [r.name for r in again.records] == ["alpha-run"] and "rebuilt" in again.message.text()
    assert again.records[0].tags == ["lecture"]


def test_presentation_mode_scales_fonts_and_lines_and_restores(qtbot) -> None:
    panel = QtSweepPanel()
    explorer = QtSoftTargetExplorer(panel)
    qtbot.addWidget(panel)
    app = QApplication.instance()
    size = app.font().pointSizeF()
    width = panel.curve.opts["pen"].widthF()
    set_presentation_mode(panel, True)
    assert app.font().pointSizeF() == pytest.approx(size * 1.5)
    assert pg.mkPen(panel.curve.opts["pen"]).widthF() > width
    set_presentation_mode(panel, True)  # twice: no double scaling
    assert app.font().pointSizeF() == pytest.approx(size * 1.5)
    set_presentation_mode(panel, False)
    assert app.font().pointSizeF() == pytest.approx(size)
    assert pg.mkPen(panel.curve.opts["pen"]).widthF() == pytest.approx(width)
    assert explorer.parent() is panel
