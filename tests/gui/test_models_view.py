"""The Models view: Netron embedded (offscreen render), the layer table, and the fallbacks."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from kdgui.engine import jobs
from kdgui.engine import netron_server as ns
from kdgui.gui import qt_netron_web, qt_worker
from kdgui.gui.qt_models_view import COLUMNS, ModelsView
from tests.engine.netron_run import make_run

PREPARE_TIMEOUT_MS = 120_000
DRAW_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root)
    return root


def _layer_names(view: ModelsView) -> list[str]:
    """The layer table's first column (the TinyNet of tests/engine/netron_run.py)."""
    return [view.layer_model.index(r, 0).data() for r in range(view.layer_model.rowCount())]


@pytest.fixture
def make_view(qtbot, runs_root: Path):
    made: list[ModelsView] = []
    opened: list[str] = []

    def make(**kwargs) -> ModelsView:
        view = ModelsView(runs_root=runs_root, open_url=opened.append, **kwargs)
        view.opened = opened  # type: ignore[attr-defined]
        qtbot.addWidget(view)
        view.resize(1400, 800)
        view.show()
        qtbot.waitExposed(view)
        made.append(view)
        return view

    yield make
    for view in made:
        view.close()


def show_and_wait(qtbot, view: ModelsView, index: int | None = None):
    """Show the selected model and return *its* preparation (one the view was already
    preparing, e.g. the run's final one on opening, is superseded and never shown)."""
    if index is not None:
        view.model_combo.setCurrentIndex(index)
    wanted = view.model_combo.currentText()
    with qtbot.waitSignal(view.prepared, timeout=PREPARE_TIMEOUT_MS,
                          check_params_cb=lambda p: p.source.label == wanted) as blocker:
        view.show_selected()
    return blocker.args[0]


def non_blank(image: QImage) -> bool:
    """More than a handful of colours, and dark pixels (node boxes, text) on the background."""
    small = image.scaled(200, 200)
    colours = {small.pixel(x, y) for x in range(small.width()) for y in range(small.height())}
    dark = sum(1 for x in range(small.width()) for y in range(small.height())
               if small.pixelColor(x, y).lightness() < 120)
    return len(colours) > 20 and dark > 50


def test_embedded_netron_renders_the_graph_offscreen_and_stays_on_loopback(
        qtbot, make_view, tmp_path: Path) -> None:
    ok, why = qt_netron_web.webengine_status()
    if not ok:
        pytest.skip(f"QtWebEngine cannot run here: {why}")
    view = make_view()
    assert [view.model_combo.itemText(i) for i in range(view.model_combo.count())] == [
        "stage 0: before", "stage 1: prune", "stage 2: int8"]
    prepared = show_and_wait(qtbot, view, 1)
    assert view.web is not None, view.notice.text()
    # Wait until the page of the one asked for has fetched its graph from its server and drawn it.
    qtbot.waitUntil(lambda: view._task is None or not view._task.running, timeout=PREPARE_TIMEOUT_MS)
    qtbot.waitUntil(lambda: view.web.drawn and any(
        u.startswith(f"http://127.0.0.1:{view.server.port}/data/") for u in view.web.allowed),
        timeout=DRAW_TIMEOUT_MS)
    qtbot.wait(500)  # let the last layout pass paint
    image = view.web.grab().toImage()
    path = tmp_path / "netron.png"
    assert image.save(str(path)) and path.stat().st_size > 5_000
    assert non_blank(image)
    port = view.server.port
    # every request went to a loopback Netron server (one per model shown), nothing else
    assert view.web.allowed and all(u.startswith("http://127.0.0.1:") for u in view.web.allowed)
    assert all("127.0.0.1" not in u.split("/")[2] for u in view.web.blocked)
    assert any("/data/" in u for u in view.web.allowed)  # (the waits above saw it on its port)
    assert view.layer_model.rowCount() == len(prepared.layers)
    view.close()
    assert view.server is None and ns.port_is_free(port)


def test_layer_table_sorts_numerically_and_selection_emits_the_layer(qtbot, make_view) -> None:
    view = make_view(embed=False)
    prepared = show_and_wait(qtbot, view, 1)
    names = [view.layer_proxy.index(r, 0).data() for r in range(view.layer_proxy.rowCount())]
    assert names[:2] == ["conv1", "bn1"]  # module order until a header is clicked
    params = COLUMNS.index("params")
    view.layer_table.sortByColumn(params, Qt.SortOrder.DescendingOrder)
    column = [view.layer_proxy.index(r, 0).data() for r in range(view.layer_proxy.rowCount())]
    by_params = sorted(prepared.layers, key=lambda r: r["params"], reverse=True)
    assert column[0] == by_params[0]["name"] and column[-1] == by_params[-1]["name"]
    with qtbot.waitSignal(view.layerSelected, timeout=2000) as blocker:
        assert view.select_layer("conv2")
    assert blocker.args == ["conv2"]
    sparsity = view.layer_proxy.index(
        [view.layer_proxy.index(r, 0).data() for r in range(view.layer_proxy.rowCount())]
        .index("conv2"), COLUMNS.index("sparsity")).data()
    assert sparsity.endswith("%") and float(sparsity[:-1]) > 30
    summary = {view.summary_table.verticalHeaderItem(r).text(): view.summary_table.item(r, 2)
               .text() for r in range(view.summary_table.rowCount())}
    assert summary["params"] and summary["non-zero params"]


def test_without_qtwebengine_the_view_opens_the_browser_with_a_notice(
        qtbot, make_view, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qt_netron_web, "_STATUS", (False, "QtWebEngine is not available "
                                                          "(simulated)"))
    view = make_view()
    show_and_wait(qtbot, view, 0)
    assert view.web is None
    assert view.opened and view.opened[-1].startswith("http://127.0.0.1:")
    assert "web browser" in view.notice.text() and "simulated" in view.notice.text()
    assert view.placeholder.isVisible() and "Opened in your browser" in view.placeholder.text()
    assert {"conv1", "conv2", "fc1", "fc2"} <= set(_layer_names(view))  # the rest of the view works


@pytest.mark.parametrize("problem", ["missing", "expired"])
def test_missing_or_expired_netron_leaves_the_table_working(
        qtbot, make_view, monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    if problem == "missing":
        monkeypatch.setattr(ns, "netron_dir", lambda: None)
        expected = "pip install netron"
    else:
        real = ns.netron_info()
        late = ns.netron_info(now=real.expires + ns.dt.timedelta(days=2))
        monkeypatch.setattr(ns, "netron_info", lambda now=None: late)
        expected = "pip install --upgrade netron"
    view = make_view()
    show_and_wait(qtbot, view, 0)
    assert view.server is None and not view.opened
    assert expected in view.notice.text()
    assert {"conv1", "conv2", "fc1", "fc2"} <= set(_layer_names(view))
    assert not view.browser_button.isEnabled()


def test_a_bad_path_is_a_notice_not_a_crash(qtbot, make_view, tmp_path: Path) -> None:
    view = make_view(embed=False)
    view.show_path(tmp_path / "missing.pt")
    assert "does not exist" in view.notice.text()


# -- one preparation per model asked for (the latest request wins) -------------------------------
FINAL, PICKED = "stage 2: int8", "stage 1: prune"


def _record_prepares(monkeypatch: pytest.MonkeyPatch, hold: str = "") -> tuple[list, threading.Event]:
    """Record every model the engine prepares; with ``hold``, that model's first preparation
    waits for the returned event (it is exporting when the test picks another)."""
    calls: list[str] = []
    release, real = threading.Event(), jobs.prepare_model

    def prepare(source, out, *args, **kwargs):
        calls.append(source.label)
        if source.label == hold and calls.count(hold) == 1:
            release.wait(60)
        return real(source, out, *args, **kwargs)

    monkeypatch.setattr(jobs, "prepare_model", prepare)
    return calls, release


def _shown(view: ModelsView) -> list[str]:
    shown: list[str] = []
    view.prepared.connect(lambda p: shown.append(p.source.label))
    return shown


def _until_idle(qtbot, view: ModelsView) -> None:
    qtbot.waitUntil(lambda: not view._task.running, timeout=PREPARE_TIMEOUT_MS)
    qtbot.wait(300)  # nothing more is queued after it


def test_a_pick_while_the_opening_model_waits_for_the_engine_prepares_only_the_pick(
        qtbot, make_view, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view opens on the final model; the user picks another before the engine is warm.
    Before: both were prepared and shown (final first). Now: only the pick."""
    warm = threading.Event()
    real_ensure = qt_worker.ensure_engine
    monkeypatch.setattr(qt_worker, "ensure_engine", lambda: (warm.wait(60), real_ensure()))
    calls, _ = _record_prepares(monkeypatch)
    view = make_view(embed=False)
    shown = _shown(view)
    qtbot.waitUntil(lambda: view._task is not None and view._task.running, timeout=5000)
    view.model_combo.setCurrentIndex(1)
    view.show_selected()  # what Show does (it is pressable while a model is being prepared)
    warm.set()
    _until_idle(qtbot, view)
    assert calls == [PICKED] and shown == [PICKED]
    assert view._current.source.label == PICKED and "Preparing" not in view.notice.text()


def test_a_pick_while_the_opening_model_exports_drops_its_late_result(
        qtbot, make_view, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final model is already exporting when the user picks another: it cannot be cut
    off, but it is not shown (before: shown, then replaced) and the pick is prepared once."""
    calls, release = _record_prepares(monkeypatch, hold=FINAL)
    view = make_view(embed=False)
    shown = _shown(view)
    qtbot.waitUntil(lambda: calls == [FINAL], timeout=PREPARE_TIMEOUT_MS)
    view.model_combo.setCurrentIndex(1)
    view.show_selected()
    view.show_selected()  # pressed twice: still one preparation
    release.set()
    _until_idle(qtbot, view)
    assert calls == [FINAL, PICKED] and shown == [PICKED]
    assert {"conv1", "fc2"} <= set(_layer_names(view)) and view._current.source.label == PICKED


def test_picking_in_the_list_draws_it_and_a_new_run_is_prepared_once(
        qtbot, monkeypatch: pytest.MonkeyPatch, runs_root: Path, tmp_path: Path) -> None:
    """A model picked in the list is drawn without pressing Show, and Show stays usable;
    ``set_run`` to another run prepared its model twice (the third, unexplained reload)."""
    for name in ("a", "b"):
        shutil.copytree(runs_root / "run", tmp_path / name)
    calls, _ = _record_prepares(monkeypatch)
    view = ModelsView(runs_root=tmp_path, embed=False, open_url=lambda url: None)
    qtbot.addWidget(view)
    shown = _shown(view)
    view.show()
    qtbot.waitUntil(lambda: shown == [FINAL], timeout=PREPARE_TIMEOUT_MS)
    _until_idle(qtbot, view)
    view.model_combo.setCurrentIndex(0)
    view.model_combo.activated.emit(0)  # the user picks stage 0 in the list
    assert view.open_button.isEnabled()
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=PREPARE_TIMEOUT_MS)
    _until_idle(qtbot, view)
    other = next(i for i in range(view.run_combo.count()) if i != view.run_combo.currentIndex())
    view.set_run(view.run_combo.itemData(other))
    _until_idle(qtbot, view)
    qtbot.waitUntil(lambda: len(shown) == 3, timeout=PREPARE_TIMEOUT_MS)
    _until_idle(qtbot, view)
    assert calls == shown == [FINAL, "stage 0: before", FINAL]
    assert view._current.source.run_dir == Path(view.run_combo.itemData(other))
    view.close()
