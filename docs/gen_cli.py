"""The command-line reference, generated from the argparse parsers the ``kdgui`` command uses.

Each subcommand's ``--help`` text is rendered at every ``mkdocs build`` (``docs/hooks.py``
replaces ``<!-- gen: cli -->`` in ``docs/cli.md``), so a new flag or a new subcommand (a module
listed in ``kdgui.cli.commands.register_all``) appears in the guide without editing it. The
window's own flags (``kdgui --demo --panel ...``) come from ``kdgui.gui.app.build_parser``, which
imports no Qt at module level.

Run it directly to see the Markdown: ``.venv/bin/python docs/gen_cli.py``.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

#: Help is wrapped at this width whatever the terminal that builds the docs.
WIDTH = "100"


@contextmanager
def _fixed_width() -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser``, in the order they were registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _block(text: str) -> list[str]:
    return ["```text", text.rstrip(), "```", ""]


def render() -> str:
    """``kdgui --help``, the window's flags, then one section per subcommand."""
    from kdgui.cli.main import build_parser

    with _fixed_width():
        parser = build_parser()
        out = ["## `kdgui`", ""]
        out += _block(parser.format_help())
        try:
            app = importlib.import_module("kdgui.gui.app")
        except ImportError:  # a GUI-less install documents what it has
            app = None
        if app is not None:
            window = app.build_parser()
            out += ["## `kdgui` (the window)", "",
                    "With no subcommand, or with one of these flags first, `kdgui` opens the "
                    "window. The flags also drive it unattended (screenshots, classes, tests).", ""]
            out += _block(window.format_help())
        for name, sub in subcommands(parser).items():
            out += [f"## `kdgui {name}`", ""]
            out += _block(sub.format_help())
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
