"""Where bundled files (the demo teacher, icons) live, in a checkout and in an installation.

A checkout keeps them in the repository's top-level ``resources/``; an installed copy finds them
under ``sys.prefix/share/kdgui/resources``; ``KDGUI_RESOURCES`` overrides both (tests, packagers).
A PyInstaller bundle (``packaging/kdgui.spec``) unpacks them into ``sys._MEIPASS/resources``: the
frozen app has no checkout, so that folder comes right after ``KDGUI_RESOURCES``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resource_roots() -> list[Path]:
    """Candidate resource folders, most specific first."""
    roots: list[Path] = []
    env = os.environ.get("KDGUI_RESOURCES")
    if env:
        roots.append(Path(env).expanduser())
    bundle = getattr(sys, "_MEIPASS", None)  # set only inside a PyInstaller-frozen app
    if bundle:
        roots.append(Path(bundle) / "resources")
    roots.append(Path(__file__).resolve().parents[2] / "resources")
    roots.append(Path(sys.prefix) / "share" / "kdgui" / "resources")
    return roots


def resource_path(*parts: str) -> Path:
    """The first existing ``ROOT/parts...`` over :func:`resource_roots`.

    When none exists the path under the first root is returned, so error messages name a
    concrete place to look instead of failing here.
    """
    roots = resource_roots()
    for root in roots:
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return roots[0].joinpath(*parts)
