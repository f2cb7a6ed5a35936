"""The ``kdgui`` entry point: the window, or a headless command.

``kdgui`` alone, ``kdgui exp.yaml`` (a config opened from a file manager) and ``kdgui --demo
--autorun ...`` (window flags) open the window; ``kdgui COMMAND ...``, ``--help``, ``--version``
and ``--debug`` go to the command line. This module sits above both front ends and imports each
by name, so the layering check sees both edges (the CLI and the window never import each
other). Neither is imported before it is needed: ``kdgui --help`` and every command start
without Qt, and the window without the CLI.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

#: First arguments that belong to the command line, not the window.
CLI_FLAGS = ("-h", "--help", "--version", "--debug")


def wants_window(argv: list[str]) -> bool:
    """No subcommand means the window: ``kdgui``, ``kdgui --demo --autorun``, ``kdgui exp.yaml``."""
    if not argv:
        return True
    first = argv[0]
    if first in CLI_FLAGS:
        return False
    if first.startswith("-"):
        return True  # a window flag (--demo, --panel, --screenshot, ...)
    return first.lower().endswith((".yaml", ".yml", ".json")) and Path(first).is_file()


def gui_available() -> bool:
    """PySide6 is installed (``pip install 'kdgui[gui]'``) and the window package is there."""
    return (importlib.util.find_spec("PySide6") is not None
            and importlib.util.find_spec("kdgui.gui") is not None)


def no_display(argv: list[str]) -> str | None:
    """On Linux without a display, Qt aborts the process; say so instead, or go offscreen
    when the window is only needed for a screenshot."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if any(a.split("=")[0] == "--screenshot" for a in argv) and "--exit-when-done" in argv:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return None
    return (
        "no display to open the window on (DISPLAY is not set). Run it on your desktop, "
        "under 'xvfb-run kdgui', or headless with 'kdgui demo' / 'kdgui run CONFIG'"
    )


def open_window(argv: list[str]) -> int:
    """Start the window (``kdgui.gui.app.main``); user errors print one line, exit 2."""
    from kdgui.core.errors import UserError

    problem = no_display(argv)
    if problem is not None:
        print(f"kdgui: {problem}", file=sys.stderr)
        return 2
    from kdgui.gui.app import main as window_main

    try:
        return int(window_main(argv))
    except UserError as exc:
        print(f"kdgui: {exc.one_line()}", file=sys.stderr)
        return 2


def window_help() -> str:
    """The window's options, for the bottom of ``kdgui --help`` (read from the window's own
    parser, which imports no Qt)."""
    if importlib.util.find_spec("kdgui.gui") is None:
        return "The window is not installed: pip install 'kdgui[gui]'."
    from kdgui.gui.app import build_parser as window_parser

    parser = window_parser()
    formatter = parser._get_formatter()
    formatter.start_section("the window, without a COMMAND (kdgui [CONFIG] [OPTIONS])")
    formatter.add_arguments([a for a in parser._actions
                             if not isinstance(a, argparse._HelpAction)])
    formatter.end_section()
    note = "" if gui_available() else "\n(the window needs PySide6: pip install 'kdgui[gui]')"
    return formatter.format_help().rstrip() + note


def _top_level_help(argv: list[str]) -> bool:
    """``kdgui --help`` (possibly after --debug), not ``kdgui COMMAND --help``."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return True
        if not arg.startswith("-"):
            return False
    return not argv


def main(argv: list[str] | None = None) -> int:
    """The console script ``kdgui`` and ``python -m kdgui``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_window(argv):
        if gui_available():
            return open_window(argv)
        if argv:
            print("kdgui: the window needs PySide6: pip install 'kdgui[gui]'", file=sys.stderr)
            return 2
    from kdgui.cli.main import main as cli_main

    return cli_main(argv, epilog=window_help() if _top_level_help(argv) else None)


if __name__ == "__main__":
    raise SystemExit(main())
