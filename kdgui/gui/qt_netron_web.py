"""Netron embedded through QtWebEngine, allowed to talk to the loopback server and nothing else.

Offline, Netron's page first asks ``ipinfo.io`` where the user is and sends Google Analytics
hits, then waits on a cookie-consent dialog before drawing anything. Here every request that is
not to ``127.0.0.1`` is blocked by a :class:`QWebEngineUrlRequestInterceptor` (and recorded, so
tests can check nothing left the machine), and the ``consent`` cookie Netron looks for is set
before the page loads, so the graph appears at once and no data leaves the machine.

QtWebEngine is optional (PySide6-Addons, plus system libraries): :func:`webengine_status` says
whether it can be used, and why not, without failing. As root, Chromium needs ``--no-sandbox``;
without a display (offscreen) it needs ``--disable-gpu``: :func:`configure_chromium_flags` adds
them to ``QTWEBENGINE_CHROMIUM_FLAGS`` before QtWebEngine starts. The page is deleted before its
profile, otherwise the process crashes at exit.
"""

from __future__ import annotations

import os
import time
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

ALLOWED_HOSTS = ("127.0.0.1",)
_STATUS: tuple[bool, str] | None = None


def configure_chromium_flags() -> None:
    """Add the Chromium flags this machine needs (root: no sandbox; no display: no GPU)."""
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
    wanted = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        wanted.append("--no-sandbox")
    headless = os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal") or (
        os.name == "posix" and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY"))
    if headless:
        wanted.append("--disable-gpu")
    for flag in wanted:
        if flag not in flags:
            flags.append(flag)
    if flags:
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags)


def webengine_status() -> tuple[bool, str]:
    """``(True, "")`` when QtWebEngine can be used, else ``(False, why)`` (cached)."""
    global _STATUS
    if _STATUS is None:
        configure_chromium_flags()
        try:
            from PySide6 import QtWebEngineCore, QtWebEngineWidgets  # noqa: F401
        except ImportError as exc:
            _STATUS = (False, f"QtWebEngine is not available ({exc}); install PySide6-Addons "
                              "and the system libraries scripts/setup.sh lists")
        else:
            _STATUS = (True, "")
    return _STATUS


def is_allowed(url: QUrl) -> bool:
    """Only the loopback Netron server (and the page's own data: and blob: URLs)."""
    if url.scheme() in ("data", "blob", "about"):
        return True
    return url.scheme() in ("http", "https", "ws") and url.host() in ALLOWED_HOSTS


class NetronWebView(QWidget):
    """A web view showing one Netron URL; emits ``graphShown`` once the graph is drawn."""

    graphShown = Signal()
    loadFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        ok, why = webengine_status()
        if not ok:
            raise RuntimeError(why)
        from PySide6.QtCore import QTimer
        from PySide6.QtWebEngineCore import (
            QWebEnginePage,
            QWebEngineProfile,
            QWebEngineUrlRequestInterceptor,
        )
        from PySide6.QtWebEngineWidgets import QWebEngineView

        view_self = self
        self.allowed: list[str] = []
        self.blocked: list[str] = []

        class Interceptor(QWebEngineUrlRequestInterceptor):
            def interceptRequest(self, info: Any) -> None:
                url = info.requestUrl()
                if is_allowed(url):
                    view_self.allowed.append(url.toString())
                else:
                    view_self.blocked.append(url.toString())
                    info.block(True)

        # Off the record (no cookies or cache on disk). Parented after the page, so that Qt,
        # which deletes children in order, deletes the page first.
        self._profile: Any = QWebEngineProfile()
        self._interceptor = Interceptor(self)
        self._profile.setUrlRequestInterceptor(self._interceptor)
        self._page: Any = QWebEnginePage(self._profile, self)
        self._profile.setParent(self)
        self.view: Any = QWebEngineView(self)
        self.view.setPage(self._page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._poll = QTimer(self)
        self._poll.setInterval(250)
        self._poll.timeout.connect(self._check_drawn)
        self._polls = 0
        self.drawn = False
        self.url = ""
        self._page.loadFinished.connect(self._on_load)

    def load(self, url: str) -> None:
        """Show ``url`` (a loopback Netron server), with the consent cookie already set."""
        from PySide6.QtNetwork import QNetworkCookie

        qurl = QUrl(url)
        cookie = QNetworkCookie(b"consent", str(int(time.time() * 1000)).encode())
        cookie.setDomain(qurl.host())
        cookie.setPath("/")
        self._profile.cookieStore().setCookie(cookie, qurl)
        self.url, self.drawn, self._polls = url, False, 0
        self.view.load(qurl)

    def _on_load(self, ok: bool) -> None:
        if not ok:
            self.loadFailed.emit(f"Netron's page did not load from {self.url}")
            return
        self._poll.start()

    def _check_drawn(self) -> None:
        self._polls += 1
        if self._polls > 240:  # 60 s
            self._poll.stop()
            self.loadFailed.emit("Netron did not draw the graph within 60 s")
            return
        script = ("(document.querySelectorAll('g.node').length || 0) + '|' + "
                  "document.body.className")
        self._page.runJavaScript(script, 0, self._on_probe)

    def _on_probe(self, result: Any) -> None:
        count, _, state = str(result).partition("|")
        if count.isdigit() and int(count) > 0 and not self.drawn:
            self.drawn = True
            self._poll.stop()
            self.graphShown.emit()
        elif "welcome" in state and "spinner" not in state and self._polls > 8:
            self._poll.stop()  # Netron shows its start page: the model could not be opened
            self.loadFailed.emit("Netron could not open the model (it shows its start page)")

    def shutdown(self) -> None:
        """Delete view, page, then profile now (a profile deleted first crashes at exit)."""
        import shiboken6

        self._poll.stop()
        for obj in (self.view, self._page, self._profile):
            if obj is not None and shiboken6.isValid(obj):
                shiboken6.delete(obj)
        self.view = self._page = self._profile = None
