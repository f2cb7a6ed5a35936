"""What every step of the flow shares: a heading, a scrollable body and inline config issues.

A panel names the config sections it edits (``prefixes``); whenever the config changes it lists
the issues under those sections in a red box at its top, so an invalid value is explained where it
was entered, not only in a dialog after Run was pressed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from kdgui.gui.qt_config_state import Issue, Path, QtConfigState

ISSUE_STYLE = (
    "QLabel#issues { background: rgba(214, 39, 40, 0.12); border: 1px solid #d62728;"
    " border-radius: 4px; padding: 6px; }"
)


class QtPanel(QWidget):
    """Base of the flow panels."""

    #: Short key used by ``--panel NAME`` and the sidebar.
    key = "panel"
    title = "Panel"
    subtitle = ""
    #: Config sections whose issues this panel shows.
    prefixes: tuple[Path, ...] = ()

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"panel:{self.key}")
        self.state = state
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 8, 12, 8)
        heading = QLabel(f"<h2 style='margin:0'>{self.title}</h2>")
        outer.addWidget(heading)
        if self.subtitle:
            sub = QLabel(self.subtitle)
            sub.setWordWrap(True)
            outer.addWidget(sub)
        self.issues_label = QLabel()
        self.issues_label.setObjectName("issues")
        self.issues_label.setStyleSheet(ISSUE_STYLE)
        self.issues_label.setWordWrap(True)
        self.issues_label.setTextFormat(Qt.TextFormat.RichText)
        self.issues_label.hide()
        outer.addWidget(self.issues_label)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 4, 0, 0)
        self.scroll.setWidget(self.body)
        outer.addWidget(self.scroll, 1)
        state.changed.connect(self.show_issues)

    def issues(self) -> list[Issue]:
        seen: list[Issue] = []
        for prefix in self.prefixes:
            seen.extend(i for i in self.state.issues_under(prefix) if i not in seen)
        return seen

    def show_issues(self) -> None:
        issues = self.issues()
        if issues:
            rows = "".join(
                f"<li><b>{_esc(i.what)}</b>{'<br>' + _esc(i.fix) if i.fix else ''}</li>"
                for i in issues
            )
            self.issues_label.setText(f"<ul style='margin:0; margin-left:-20px'>{rows}</ul>")
        self.issues_label.setVisible(bool(issues))

    def finish(self) -> None:
        """Call at the end of a subclass's ``__init__``: push content up, show issues."""
        self.body_layout.addStretch(1)
        self.show_issues()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
