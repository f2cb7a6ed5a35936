"""The ``kdgui`` headless subcommands (``kdgui.launcher`` decides between them and the window).

Exit codes: 0 success; 2 a user error, printed as one line naming the file or field and the fix
(no traceback unless ``--debug``); 1 an internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

from kdgui import __version__
from kdgui.core.errors import InternalError, UserError, printable


def build_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """The commands' parser; ``epilog`` (the launcher passes the window's options) is printed
    as given below the commands."""
    from kdgui.cli import commands

    parser = argparse.ArgumentParser(
        prog="kdgui",
        description="KD Studio: knowledge distillation and model compression for PyTorch.\n"
        "Without a command, opens the window.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kdgui {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.register_all(sub)
    return parser


def main(argv: list[str] | None = None, *, epilog: str | None = None) -> int:
    """Run one headless command (``kdgui COMMAND ...``). The window is opened by
    :mod:`kdgui.launcher`, which calls this for everything else (with the window's options as
    ``epilog`` of the top-level help)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser(epilog)
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
            engine_traceback = getattr(exc, "engine_traceback", "")
            if engine_traceback:  # the bug happened inside a job: its own traceback first
                print(engine_traceback, file=sys.stderr)
            raise
        label = "" if isinstance(exc, InternalError) else f"{type(exc).__name__}: "
        print(
            f"kdgui: internal error: {label}{printable(str(exc), 400)} "
            "(run with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    raise SystemExit(main())
