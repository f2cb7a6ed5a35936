"""Table headers that are never cut off, whatever the font (presentation mode scales it 1.5×).

Each column gets a *floor*: its header's text in the font the header has now, with the style's
margins (``QHeaderView.sectionSizeFromContents``). How a table honours the floors depends on it:

* ``scroll=True`` (History's run table): columns narrower than their floor are widened to it and
  the table scrolls sideways.
* ``scroll=False`` (the Models view's summaries): stretched columns share the table's width
  equally, so the table's *minimum width* becomes the number of columns times the widest floor,
  and the splitter or layout around it keeps it that wide. (The Classroom's table shares its
  width its own way, from the same floors: :mod:`kdgui.gui.qt_lesson_table`.)

Either way the floors are measured again when the header's font changes. One owner: three
tables each had their own copy of "cut at 1.5×" ("ompressio", "inal stage", "ublished").
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QTableView


def header_floors(table: QTableView) -> list[int]:
    """Each column's floor (px) in the header's current font."""
    header = table.horizontalHeader()
    return [header.sectionSizeFromContents(col).width() for col in range(header.count())]


class _Refit(QObject):
    """Applies the floors to ``table`` now and whenever its header's font changes."""

    def __init__(self, table: QTableView, scroll: bool) -> None:
        super().__init__(table)
        self.table, self.scroll = table, scroll
        table.horizontalHeader().installEventFilter(self)
        self.apply()

    def apply(self) -> list[int]:
        table, floors = self.table, header_floors(self.table)
        header = table.horizontalHeader()
        if self.scroll:
            for col, floor in enumerate(floors):
                header.resizeSection(col, max(header.sectionSize(col), floor))
        else:
            # Stretched columns are equal: each must be as wide as the widest floor.
            rows = table.verticalHeader()  # row names, unless hidden (isVisible: not before show)
            table.setMinimumWidth(len(floors) * max(floors, default=0)
                                  + (0 if rows.isHidden() else rows.sizeHint().width())
                                  + table.verticalScrollBar().sizeHint().width()
                                  + 2 * table.frameWidth())
        return floors

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.Show):  # show: rows laid out
            self.apply()
        return super().eventFilter(watched, event)


def keep_headers_whole(table: QTableView, *, scroll: bool) -> list[int]:
    """Keep every header of ``table`` readable (see the module docstring); returns the floors."""
    refit = table.findChild(_Refit)
    if refit is None:
        refit = _Refit(table, scroll)
    return refit.apply()


__all__ = ["header_floors", "keep_headers_whole"]
