"""The Models view: Netron embedded (offscreen render), the layer table, and the fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from kdgui.engine import netron_server as ns
from kdgui.gui import qt_netron_web
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
    """Show the selected model and return *its* preparation: a model the view was already
    preparing (e.g. the run's final one on opening) is shown first, then the one asked for."""
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
    # The model the view was preparing when it opened (the final one) is drawn first, on its
    # own server: wait until the page of the one asked for has fetched its graph and drawn it.
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
