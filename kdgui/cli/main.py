"""The ``kdgui`` command: the window (no subcommand) and the headless subcommands.

Exit codes: 0 success; 2 a user error, printed as one line naming the file or field and the fix
(no traceback unless ``--debug``); 1 an internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdgui import __version__
from kdgui.core.errors import UserError

CLI_FLAGS = ("-h", "--help", "--version", "--debug")


def build_parser() -> argparse.ArgumentParser:
    from kdgui.cli import commands

    parser = argparse.ArgumentParser(
        prog="kdgui",
        description="KD Studio: knowledge distillation and model compression for PyTorch. "
        "Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"kdgui {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.register_all(sub)
    return parser


def _wants_window(argv: list[str]) -> bool:
    """No subcommand means the window: ``kdgui``, ``kdgui --demo --autorun``, ``kdgui exp.yaml``."""
    if not argv:
        return True
    first = argv[0]
    if first in CLI_FLAGS:
        return False
    if first.startswith("-"):
        return True  # a window flag (--demo, --panel, --screenshot, ...)
    # A config opened from a file manager or a .desktop entry.
    return first.lower().endswith((".yaml", ".yml", ".json")) and Path(first).is_file()


def _gui_available() -> bool:
    return importlib.util.find_spec("PySide6") is not None


def _no_display(argv: list[str]) -> str | None:
    """On Linux without a display, Qt aborts the process; say so instead, or go offscreen
    when the window is only needed for a screenshot."""
    import os

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


def _open_window(argv: list[str]) -> int:
    problem = _no_display(argv)
    if problem is not None:
        print(f"kdgui: {problem}", file=sys.stderr)
        return 2
    # Imported by name so the CLI never imports the GUI package statically (layering contract).
    app = importlib.import_module("kdgui.gui.app")
    return int(app.main(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if _wants_window(argv):
        if _gui_available() and importlib.util.find_spec("kdgui.gui.app") is not None:
            try:
                return _open_window(argv)
            except UserError as exc:
                print(f"kdgui: {exc.one_line()}", file=sys.stderr)
                return 2
        if argv:
            print("kdgui: the window needs PySide6: pip install 'kdgui[gui]'", file=sys.stderr)
            return 2
        build_parser().print_help()
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler: Callable[[argparse.Namespace], int] = args.handler
    return guarded(handler, args, debug=debug)


def guarded(handler: Callable[[argparse.Namespace], int], args: Any, *, debug: bool) -> int:
    """Run a command, mapping errors to exit codes and one-line messages."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"kdgui: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nkdgui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head` that closed early: not an error of ours.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        print(
            f"kdgui: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    raise SystemExit(main())
