"""The "what to try" hint shown above the panels until the user dismisses it.

First impressions decide whether a teaching tool gets used: the window opens on the demo with
five concrete things to try, the same five as the user guide's *First run* page. Dismissing it is
remembered in QSettings; *Help › What to try* brings it back.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

HINT_HTML = (
    "<b>What to try</b> — the embedded demo is loaded (a CNN teacher on handwritten digits, "
    "nothing to download). "
    "<b>1.</b> Press <b>Run</b> (Ctrl+R) and watch the student approach the teacher's line. "
    "<b>2.</b> Raise the temperature T in <i>Distillation</i> and run again. "
    "<b>3.</b> Set α to 0 (no teacher) and compare in <i>Results</i>. "
    "<b>4.</b> Add magnitude pruning in <i>Compression</i>: zip size shrinks, dense latency "
    "does not. "
    "<b>5.</b> Export to ONNX from <i>Results</i>: the file is reloaded and checked."
)

SETTINGS_KEY = "first_run/hint_dismissed"


class QtFirstRunHint(QFrame):
    """A slim, dismissible banner."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstRunHint")
        self.setStyleSheet(
            "QFrame#firstRunHint { background: palette(alternate-base); "
            "border: 1px solid palette(mid); border-radius: 4px; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel(HINT_HTML)
        self.label.setWordWrap(True)
        layout.addWidget(self.label, 1)
        close = QPushButton("Got it")
        close.setToolTip("Hide this hint (Help › What to try shows it again)")
        close.clicked.connect(self._dismiss)
        layout.addWidget(close)

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
