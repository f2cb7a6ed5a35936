"""One Netron graph in the window: a title, Netron embedded (or the browser, with a notice), and
the colours kdgui paints on the graph (:mod:`kdgui.gui.qt_graph_paint`). The Models view shows
one, its compare mode two.

The pane owns its Netron server (127.0.0.1 only, stopped in :meth:`shutdown`) and its web view,
created on first use. Paint requests made before the graph is drawn are kept and applied when
it is; a periodic check repaints when Netron redrew the graph and lost the marks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from kdgui.gui.qt_graph_paint import (
    PAINTED_SCRIPT,
    SELECTED_SCRIPT,
    focus_script,
    node_of,
    paint_script,
)


def _jobs() -> Any:
    from kdgui.engine import jobs

    return jobs


class QtGraphPane(QWidget):
    """A titled Netron view of one ONNX file; emits ``nodeClicked(node name)``."""

    nodeClicked = Signal(str)
    drawn = Signal()
    loadFailed = Signal(str)

    def __init__(self, title: str, parent: QWidget | None = None, *, embed: bool = True,
                 open_url: Callable[[str], Any] | None = None,
                 placeholder: str = "Press Compare to draw the two models.",
                 cannot_draw: str = "The graph cannot be drawn; the diff table still works."
                 ) -> None:
        super().__init__(parent)
        self.embed = embed
        self._open_url = open_url or (lambda url: None)
        self.server: Any = None
        self.web: Any = None
        self.painted = 0
        self._paint: tuple[dict[str, str], dict[str, str]] = ({}, {})
        self._selected = ""
        self._cannot_draw = cannot_draw
        self.title = QLabel(title)
        self.title.setStyleSheet("font-weight: bold")
        self.title.setVisible(bool(title))
        self.placeholder = QLabel(placeholder)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.title)
        self._layout.addWidget(self.placeholder, 1)

    def show_file(self, onnx_path: Path, title: str = "") -> list[str]:
        """Serve ``onnx_path`` and draw it here (or in the browser); returns notices."""
        jobs = _jobs()
        self.title.setText(title)
        self._stop_server()
        info = jobs.netron_info()
        if not info.usable:
            self._placeholder(self._cannot_draw)
            return [info.message]
        notes = [info.message] if info.problem else []
        try:
            self.server = jobs.netron_server(onnx_path)
            url = self.server.start()
        except Exception as exc:
            self.server = None
            return [*notes, f"Netron could not start: {exc}"]
        web = self._web_view() if self.embed else None
        if web is None:
            from kdgui.gui.qt_netron_web import webengine_status

            why = webengine_status()[1] if self.embed else "the embedded viewer is turned off"
            self._placeholder(f"Opened in your browser: {url}")
            self._open_url(url)
            return [*notes, f"{title + ' opens' if title else 'The graph opens'} in your web "
                            f"browser ({why or 'the embedded viewer could not start'})."]
        self.painted = 0
        web.show()
        web.load(url)
        return notes

    def _web_view(self) -> Any:
        from kdgui.gui.qt_netron_web import NetronWebView, webengine_status

        if self.web is None and webengine_status()[0]:
            try:
                self.web = NetronWebView(self)
            except Exception:
                return None
            self.web.graphShown.connect(self._on_drawn)
            self.web.loadFailed.connect(self.loadFailed)
            self.placeholder.hide()
            self._layout.addWidget(self.web, 1)
        return self.web

    def _placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.show()
        if self.web is not None:
            self.web.hide()

    def _run(self, script: str, callback: Callable[[Any], None] | None = None) -> None:
        if self.web is not None and self.web.drawn and self.web.view is not None:
            page = self.web.view.page()
            if callback is None:
                page.runJavaScript(script, 0)
            else:
                page.runJavaScript(script, 0, callback)

    def _on_drawn(self) -> None:
        self.apply_paint()
        self.drawn.emit()

    # -- colours and selection -------------------------------------------------------------------
    def paint(self, fills: dict[str, str], borders: dict[str, str]) -> None:
        """Fill node headers and outline nodes (by ONNX node name), now or once drawn."""
        self._paint = (dict(fills), dict(borders))
        self.apply_paint()

    def apply_paint(self) -> None:
        self._run(paint_script(*self._paint), self._on_painted)

    def _on_painted(self, count: Any) -> None:
        self.painted = int(count) if isinstance(count, (int, float)) else 0

    def focus(self, nodes: list[str]) -> None:
        self._run(focus_script(nodes))

    def poll(self) -> None:
        """Check Netron's selection (emits ``nodeClicked`` when it changed) and the marks."""
        self._run(SELECTED_SCRIPT, self._on_selected)
        if any(self._paint):
            self._run(PAINTED_SCRIPT, lambda ok: None if ok else self.apply_paint())

    def _on_selected(self, element_id: Any) -> None:
        node = node_of(str(element_id or ""))
        if node != self._selected:
            self._selected = node
            if node:
                self.nodeClicked.emit(node)

    # -- cleanup ---------------------------------------------------------------------------------
    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def shutdown(self) -> None:
        self._stop_server()
        if self.web is not None:
            self.web.shutdown()
            self.web = None


__all__ = ["QtGraphPane"]
