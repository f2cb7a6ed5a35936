"""Issue 17.3/17.4 in the window: the Models view's Compare… mode (two graphs, changed layers
outlined, the diff table, synchronised selection) and measured overlays with their legend.

QtWebEngine renders offscreen here (as in test_models_view.py); where it cannot, the graph
checks skip and the rest (diff table, browser fallback) still runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kdgui.engine import jobs
from kdgui.engine import netron_server as ns
from kdgui.gui import qt_netron_web
from kdgui.gui.qt_compare_view import DIFF_COLUMNS
from kdgui.gui.qt_models_view import ModelsView
from tests.engine.netron_run import shared_run
from tests.gui.test_models_view import non_blank

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory).parent  # read only: shared with the engine tests


@pytest.fixture
def view(qtbot, runs_root: Path):
    opened: list[str] = []
    made = ModelsView(runs_root=runs_root, open_url=opened.append)
    made.opened = opened  # type: ignore[attr-defined]
    made._auto_shown = True  # no single-model preparation racing the comparison
    qtbot.addWidget(made)
    made.resize(1600, 850)
    made.show()
    qtbot.waitExposed(made)
    yield made
    made.close()


def _compare(qtbot, view: ModelsView, a: int, b: int, measure: bool):
    view.compare_button.click()
    compare = view.compare_view
    assert compare.isVisible() and not view._split.isVisible()
    compare.a_combo.setCurrentIndex(a)
    compare.b_combo.setCurrentIndex(b)
    compare.measure_box.setChecked(measure)
    with qtbot.waitSignal(compare.compared, timeout=TIMEOUT_MS) as blocker:
        compare.compare_button.click()
    return compare, blocker.args[0]


def _cells(compare, column: str) -> dict[str, str]:
    col = DIFF_COLUMNS.index(column)
    return {compare.table.item(r, 0).text(): compare.table.item(r, col).text()
            for r in range(compare.table.rowCount())}


def _js(qtbot, pane, script: str):
    result: list = []
    pane.web.view.page().runJavaScript(script, 0, result.append)
    qtbot.waitUntil(lambda: bool(result), timeout=10_000)
    return result[0]


def test_compare_before_and_after_int8_outlines_measures_and_syncs_selection(
        qtbot, view: ModelsView, tmp_path: Path) -> None:
    ok, why = qt_netron_web.webengine_status()
    if not ok:
        pytest.skip(f"QtWebEngine cannot run here: {why}")
    compare, result = _compare(qtbot, view, 1, 2, measure=True)
    assert _cells(compare, "change") == {"conv1": "", "bn1": "", "conv2": "", "fc1": "quantized",
                                         "fc2": "quantized"}
    errors = _cells(compare, "quant. error B")
    assert errors["conv1"] == "0" and float(errors["fc1"]) > 0 and float(errors["fc2"]) > 0
    assert "2 of 5 layers differ" in compare.summary.text()
    pane_a, pane_b = compare.panes
    ports = [pane_a.server.port, pane_b.server.port]
    assert ports[0] != ports[1]
    qtbot.waitUntil(lambda: pane_a.web.drawn and pane_b.web.drawn, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(compare.graphsDrawn, timeout=10_000):
        pass  # once drawn, the first change is selected and shown on both sides
    assert compare.table.item(compare.table.currentRow(), 0).text() == "fc1"
    qtbot.waitUntil(lambda: pane_a.painted == 2 and pane_b.painted == 2, timeout=10_000)
    fc1_b = result.b.nodes["fc1"][0]
    stroke = _js(qtbot, pane_b, f"document.getElementById('node-name-{fc1_b}')"
                                ".querySelector('path.node-border').style.stroke")
    assert stroke == "rgb(176, 122, 161)"  # the 'quantized' outline

    compare.colour_combo.setCurrentText("quantization error")
    assert compare.scale_legend.range == ("0", f"{result.b.overlays.scale('quant_error')[1]:.3g}")
    qtbot.waitUntil(lambda: pane_b.painted == 5 - 1, timeout=10_000)  # bn1 is fused into conv1

    # A click in graph A (Netron marks the node 'select') selects the row and finds fc2 in B.
    fc2_a, fc2_b = result.a.nodes["fc2"][0], result.b.nodes["fc2"][0]
    with qtbot.waitSignal(compare.layerSelected, timeout=10_000) as blocker:
        _js(qtbot, pane_a, f"document.getElementById('node-name-{fc2_a}').classList.add('select')")
    assert blocker.args == ["fc2"]
    assert compare.table.item(compare.table.currentRow(), 0).text() == "fc2"
    qtbot.waitUntil(lambda: _js(qtbot, pane_b, "(document.querySelector('[data-kdgui-focus]')"
                                               " || {id: ''}).id") == f"node-name-{fc2_b}",
                    timeout=10_000)
    qtbot.wait(300)
    image = view.grab().toImage()
    assert image.save(str(tmp_path / "compare.png")) and non_blank(image)
    assert all(u.startswith("http://127.0.0.1:") for p in compare.panes for u in p.web.allowed)
    view.close()
    assert pane_a.server is None and all(ns.port_is_free(p) for p in ports)


def test_compare_without_qtwebengine_fills_the_table_and_opens_both_in_the_browser(
        qtbot, view: ModelsView, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qt_netron_web, "_STATUS", (False, "QtWebEngine is not available "
                                                          "(simulated)"))
    compare, _ = _compare(qtbot, view, 0, 1, measure=False)
    changes = _cells(compare, "change")  # magnitude pruning at 50%
    assert changes["conv1"] == changes["conv2"] == changes["fc1"] == changes["fc2"] == "pruned"
    assert len(view.opened) == 2 and all(u.startswith("http://127.0.0.1:") for u in view.opened)
    assert "web browser" in compare.notice.text()
    assert _cells(compare, "latency ms A → B")["fc1"] == ""  # not measured
    compare.colour_combo.setCurrentText("latency")
    assert "no latency measured" in compare.scale_legend.title
    view.compare_button.click()  # back to one model
    assert view._split.isVisible() and not compare.isVisible()


def test_single_model_overlay_measures_on_the_worker_and_shows_a_scale(
        qtbot, runs_root: Path) -> None:
    view = ModelsView(runs_root=runs_root, embed=False, open_url=lambda url: None)
    view._auto_shown = True
    qtbot.addWidget(view)
    view.model_combo.setCurrentIndex(2)  # the int8 stage
    view.overlay_combo.setCurrentText("quantization error")
    with qtbot.waitSignal(view.prepared, timeout=TIMEOUT_MS):
        view.show_selected()
    measured = view._measured
    assert measured is not None and measured.overlays.reference == "stage 1: prune"
    errors = measured.overlays.column("quant_error")
    assert errors["conv1"] == 0.0 and errors["fc1"] > 0.0
    assert view.legend.range == ("0", f"{max(errors.values()):.3g}")
    view.overlay_combo.setCurrentText("latency")
    assert "latency" in view.legend.title and view.legend.range is not None
    view.close()


def _record_compares(monkeypatch: pytest.MonkeyPatch, hold: bool = False):
    """Record every pair the engine compares; with ``hold``, the first waits for the event."""
    calls: list[tuple[str, str]] = []
    release, real = threading.Event(), jobs.compare_models

    def compare_models(a, b, out, **kwargs):
        calls.append((a.label, b.label))
        if hold and len(calls) == 1:
            release.wait(60)
        return real(a, b, out, **kwargs)

    monkeypatch.setattr(jobs, "compare_models", compare_models)
    monkeypatch.setattr(qt_netron_web, "_STATUS", (False, "simulated"))  # the browser: quicker
    return calls, release


def test_one_press_of_compare_shows_the_last_two_models(
        qtbot, view: ModelsView, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compare… compares the run's last two models at once; it took a second press (of
    Compare) before anything showed. A run with one model says why nothing is compared."""
    calls, _ = _record_compares(monkeypatch)
    view.compare_button.click()
    compare = view.compare_view
    with qtbot.waitSignal(compare.compared, timeout=TIMEOUT_MS) as blocker:
        pass
    assert calls == [("stage 1: prune", "stage 2: int8")]
    assert blocker.args[0].a.prepared.source.label == "stage 1: prune"
    assert compare.table.rowCount() == 5 and "2 of 5 layers differ" in compare.summary.text()
    assert [p.title.text() for p in compare.panes] == ["A: stage 1: prune", "B: stage 2: int8"]
    view.compare_button.click()  # back to one model, and compare mode again: nothing redone
    view.compare_button.click()
    qtbot.wait(300)
    assert len(calls) == 1 and compare.compare_button.isEnabled()
    compare.set_sources(view._sources[:1])
    assert "Nothing to compare: this run has 1 model (stage 0: before)" in compare.notice.text()


def test_a_press_while_comparing_supersedes_the_pair_being_compared(
        qtbot, view: ModelsView, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another pair picked while the first is being compared is compared next, after one press
    (the button was disabled meanwhile), and only it is shown."""
    calls, release = _record_compares(monkeypatch, hold=True)
    view.compare_button.click()
    compare = view.compare_view
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=TIMEOUT_MS)
    shown: list[tuple[str, str]] = []
    compare.compared.connect(lambda r: shown.append((r.a.prepared.source.label,
                                                     r.b.prepared.source.label)))
    compare.a_combo.setCurrentIndex(0)
    compare.b_combo.setCurrentIndex(1)
    assert compare.compare_button.isEnabled()
    compare.compare_button.click()
    compare.compare_button.click()  # twice: still one comparison
    release.set()
    qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not compare._task.running, timeout=TIMEOUT_MS)
    qtbot.wait(300)
    assert calls == [("stage 1: prune", "stage 2: int8"), ("stage 0: before", "stage 1: prune")]
    assert shown == [("stage 0: before", "stage 1: prune")]
