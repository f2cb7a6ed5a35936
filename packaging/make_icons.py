"""Render KD Studio's icon from its one SVG into every size desktops and installers ask for.

The SVG (``resources/icons/kdgui.svg``) is the only drawing; the PNGs, the Windows ``.ico`` and the
macOS ``.icns`` are generated from it with Qt's own SVG renderer, so they never drift from it and
building them needs nothing beyond the ``gui`` extra (PySide6). Run it after editing the SVG::

    .venv/bin/python packaging/make_icons.py            # writes resources/icons/
    .venv/bin/python packaging/make_icons.py --check    # exit 1 if a file is missing

Output: ``kdgui-N.png`` for N in :data:`SIZES` (the freedesktop hicolor sizes plus 512 for
AppStream and macOS), ``kdgui.ico`` and ``kdgui.icns`` where Qt's image plugins can write them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "resources" / "icons"
SVG = ICONS / "kdgui.svg"
#: freedesktop hicolor sizes (16–256) and 512 for AppStream/macOS; 24 and 48 are also Windows'.
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def png_path(size: int) -> Path:
    """Where the PNG of ``size`` pixels goes."""
    return ICONS / f"kdgui-{size}.png"


def render(svg: Path, size: int) -> object:
    """The SVG drawn into a transparent ``size``×``size`` QImage (anti-aliased)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def write_all(svg: Path = SVG) -> list[Path]:
    """Write every PNG, and the .ico/.icns when this Qt can encode them; return what was written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QImageWriter

    _app = QGuiApplication.instance() or QGuiApplication(["make_icons"])
    written: list[Path] = []
    for size in SIZES:
        out = png_path(size)
        if not render(svg, size).save(str(out), "PNG"):  # type: ignore[attr-defined]
            raise SystemExit(f"make_icons: cannot write {out}")
        written.append(out)
    formats = {bytes(f).decode() for f in QImageWriter.supportedImageFormats()}
    # Qt's ICO/ICNS writers store the one image they are given: the 256 px one scales best.
    for suffix in ("ico", "icns"):
        if suffix in formats:
            out = ICONS / f"kdgui.{suffix}"
            if render(svg, 256).save(str(out), suffix.upper()):  # type: ignore[attr-defined]
                written.append(out)
    return written


def missing() -> list[Path]:
    """Expected PNGs that are absent (``--check``)."""
    return [p for p in (png_path(s) for s in SIZES) if not p.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the PNGs exist")
    args = parser.parse_args(argv)
    if args.check:
        absent = missing()
        for path in absent:
            print(f"missing: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if absent else 0
    for path in write_all():
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
