"""The window's entry point: ``main(argv)`` sets up Qt, shows the window, and optionally runs.

The package's launcher calls :func:`main` (the CLI and the window are separate front ends:
neither imports the other). Torch is *not* imported here: the window paints first, then its
engine warm-up imports torch on a worker thread, once, before any view uses it.

Unattended use (docs screenshots, CI)::

    kdgui --demo --autorun --screenshot shot.png --exit-when-done --panel run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdgui", description="KD Studio window.")
    p.add_argument("config", nargs="?", help="experiment config (YAML/JSON) to open")
    p.add_argument("--demo", action="store_true", help="start on the embedded demo (default)")
    p.add_argument("--autorun", action="store_true", help="start the run as soon as the "
                   "window is shown")
    p.add_argument("--screenshot", metavar="PATH", help="save a PNG of the window after the run")
    p.add_argument("--exit-when-done", action="store_true", help="exit when the run ends "
                   "(code 0 on success)")
    p.add_argument("--panel", metavar="NAME", help="panel shown first (and in the screenshot): "
                   "teacher, data, student, distill, compress, run, results, or a view: "
                   "models, explorer, sensitivity, sweeps, classroom, history")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. training.epochs=2 (repeatable)")
    p.add_argument("--runs-root", metavar="DIR", help="folder for run folders (default: runs)")
    p.add_argument("--theme", choices=("system", "light", "dark"), default="system",
                   help="colour scheme (default: follow the system)")
    p.add_argument("--size", default="1280x800", help="window size WxH (default 1280x800)")
    p.add_argument("--screenshot-delay", type=int, default=300, metavar="MS",
                   help="without --autorun: wait this long before the screenshot (default 300; "
                   "on the models panel, counted from when the graph is drawn)")
    p.add_argument("--compare", action="store_true",
                   help="with --panel models: the newest run's last two models side by side, "
                   "measured (as Compare… does)")
    p.add_argument("--hint", action=argparse.BooleanOptionalAction, default=None,
                   help="show or hide the 'what to try' hint (default: until dismissed)")
    p.add_argument("--exit-after-paint", action="store_true",
                   help="print the time to first paint and exit (startup benchmark)")
    return p


def apply_theme(app: object, theme: str = "system") -> None:
    """Fusion style with the system's light or dark palette (or a forced one)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    assert isinstance(app, QApplication)
    app.setStyle("Fusion")
    dark = theme == "dark"
    if theme == "system":
        hints = app.styleHints()
        scheme = getattr(hints, "colorScheme", lambda: None)()
        dark = scheme == Qt.ColorScheme.Dark
    if dark:
        pal = QPalette()
        roles = QPalette.ColorRole
        for role, color in (
            (roles.Window, "#2b2b2b"), (roles.WindowText, "#e6e6e6"), (roles.Base, "#1e1e1e"),
            (roles.AlternateBase, "#2f2f2f"), (roles.Text, "#e6e6e6"), (roles.Button, "#353535"),
            (roles.ButtonText, "#e6e6e6"), (roles.Highlight, "#3d7bd9"),
            (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#2b2b2b"),
            (roles.ToolTipText, "#e6e6e6"), (roles.PlaceholderText, "#8a8a8a"),
            (roles.Mid, "#8a8a8a"), (roles.Link, "#6ea8ff"),
        ):
            pal.setColor(role, QColor(color))
        pal.setColor(QPalette.ColorGroup.Disabled, roles.ButtonText, QColor("#777777"))
        pal.setColor(QPalette.ColorGroup.Disabled, roles.Text, QColor("#777777"))
        app.setPalette(pal)
    elif theme == "light":
        app.setPalette(app.style().standardPalette())


def _set_icon(app: object) -> None:
    """The window icon from resources/icons (no icon rather than no window if it is missing)."""
    from PySide6.QtGui import QIcon

    from kdgui.core.resources import resource_path

    path = resource_path("icons", "kdgui.svg")
    if path.is_file():
        app.setWindowIcon(QIcon(str(path)))  # type: ignore[attr-defined]


def _initial_config(args: argparse.Namespace) -> object:
    from kdgui.core.config import demo_config
    from kdgui.core.config_io import apply_overrides, load_config

    config = load_config(args.config) if args.config and not args.demo else demo_config()
    if args.overrides:
        config = apply_overrides(config, args.overrides)
    return config


def configure_application(app: object) -> None:
    """What every window process sets up after its theme (the bench calls it too, so that it
    measures the window as users run it): garbage collection on the UI thread only, the start-up
    heap frozen once torch is in (:mod:`kdgui.gui.ui_thread`), plots that follow the palette."""
    import pyqtgraph as pg

    from kdgui.gui import ui_thread
    from kdgui.gui.qt_plot_base import background, foreground

    ui_thread.install()
    # Every plot, including those made by views created later, follows the palette.
    pg.setConfigOptions(antialias=True, background=background(), foreground=foreground())


def main(argv: list[str] | None = None) -> int:
    """Open the window; with ``--autorun`` run the experiment, and so on (see ``--help``)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    from kdgui.core.errors import UserError

    app = QApplication.instance() or QApplication(["kdgui"])
    assert isinstance(app, QApplication)
    app.setApplicationName("KD Studio")
    app.setOrganizationName("kdgui")
    app.setDesktopFileName("org.kdgui.KDStudio")
    _set_icon(app)
    apply_theme(app, args.theme)
    configure_application(app)
    try:
        config = _initial_config(args)
    except UserError as exc:
        print(f"kdgui: {exc.one_line()}", file=sys.stderr)
        return 2

    from kdgui.gui.main_window import PANEL_KEYS, QtMainWindow

    if args.panel and args.panel not in PANEL_KEYS:
        print(f"kdgui: unknown panel '{args.panel}'. Use one of: {', '.join(PANEL_KEYS)}.",
              file=sys.stderr)
        return 2
    window = QtMainWindow(config, runs_root=args.runs_root)  # type: ignore[arg-type]
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        window.resize(w, h)
    except ValueError:
        pass
    if args.config and not args.demo:
        window.config_path = Path(args.config)
    if args.hint is not None:
        window.hint.setVisible(args.hint)
    window.show_panel(args.panel or ("run" if args.autorun else "teacher"))
    drawn: Any = None  # the Models view's "graph drawn" signal: a screenshot waits for it
    if args.panel == "models":
        models: Any = window.view("models")
        drawn = models.graph.drawn
        if args.compare:
            models.set_compare(True)
            drawn = models.compare_view.graphsDrawn
            models.compare_view.colour_combo.setCurrentText("quantization error")
            models.compare_view.compare(measure=True)
    result = {"code": 0}

    class _FirstPaint(QObject):
        done = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not self.done:
                self.done = True
                ms = 1000 * (time.perf_counter() - _T0)
                print(f"first paint after {ms:.0f} ms (since kdgui.gui.app was imported)",
                      flush=True)
                if args.exit_after_paint:
                    QTimer.singleShot(0, lambda: app.exit(0))
            return False

    painter = _FirstPaint()
    window.installEventFilter(painter)

    def finish(ok: bool) -> None:
        window.run_panel.flush()
        if args.panel:
            window.show_panel(args.panel)
        app.processEvents()
        if args.screenshot:
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(args.screenshot):
                print(f"kdgui: cannot write screenshot '{args.screenshot}'", file=sys.stderr)
                result["code"] = 1
            else:
                print(f"screenshot: {args.screenshot}", flush=True)
        if not ok:
            result["code"] = result["code"] or 1
            for err in window.errors[-1:]:
                print(f"kdgui: {err.get('what', '')}. {err.get('fix', '')}", file=sys.stderr)
        if args.exit_when_done:
            window.save_settings()
            app.exit(result["code"])  # not quit(): Qt 6 would close the window first

    if args.autorun:
        window.run_ended.connect(finish)

        def start() -> None:
            if not window.start_run():
                issues = "; ".join(i.text() for i in window.state.issues)
                print(f"kdgui: cannot run: {issues}", file=sys.stderr)
                result["code"] = 2
                if args.exit_when_done:
                    app.exit(2)

        QTimer.singleShot(0, start)
    elif args.screenshot:
        def shot() -> None:
            if result.get("shot"):
                return
            result["shot"] = 1
            window.grab().save(args.screenshot)
            if args.exit_when_done:
                app.exit(0)

        if drawn is not None:  # the delay counts from when the graph is drawn (2 min at most)
            drawn.connect(lambda: QTimer.singleShot(max(0, args.screenshot_delay), shot))
            QTimer.singleShot(120_000, shot)
        else:
            QTimer.singleShot(max(0, args.screenshot_delay), shot)

    window.show()
    code = app.exec()
    if window.runner.running:
        window.runner.stop()
        window.runner.wait(10000)
    from kdgui.gui.qt_worker import wait_for_workers

    wait_for_workers(10000)  # a worker still importing torch ends before Qt is torn down
    window.removeEventFilter(painter)
    return int(code or result["code"])


if __name__ == "__main__":
    raise SystemExit(main())
