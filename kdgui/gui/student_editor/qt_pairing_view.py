"""Which teacher layer teaches which student layer: the feature/attention pairing, drawn.

Teacher feature layers on the left, the student's on the right, one row per layer that outputs a
feature map, with the stage ends (the last layer at each resolution) in bold. The links are the
pairs the engine will use: the automatic ones (the engine's ``pairing_probe`` job matches the
stages on the same probe the run does, so what is drawn is what will train) until the user
changes them.
Click a teacher row, then a student row, to add that link (or remove it if it exists). Each link
is labelled with the adapter the run will create (a 1×1 convolution from the student's channels to
the teacher's, or nothing when they agree) and the resizing of the student's map.

The probe runs torch off the UI thread, after the engine warm-up, when this view is first shown.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.formatting import fmt_count
from kdgui.core.student_shapes import fmt_shape
from kdgui.gui.student_editor.model import EditorModel

Shape = tuple[int, ...]
Pair = tuple[str, str]
COL_W = 170
ROW_H = 24
LINK_GAP = 150
KINDS = (("feature", "Feature hints (FitNets)"), ("attention", "Attention transfer"))


def adapter_text(student_shape: Shape, teacher_shape: Shape, kind: str) -> str:
    """What the run adds between a student and a teacher feature (mirrors ``hint_adapter``)."""
    parts = []
    if kind == "feature":
        cs, ct = student_shape[0], teacher_shape[0]
        parts.append("no adapter" if cs == ct else
                     f"1×1 conv {cs}→{ct} ({fmt_count(cs * ct + ct)} params)")
    if tuple(student_shape[1:]) != tuple(teacher_shape[1:]):
        s, t = fmt_shape(student_shape[1:]), fmt_shape(teacher_shape[1:])
        bigger = student_shape[1] >= teacher_shape[1]
        parts.append(f"{'avg-pool' if bigger else 'upsample'} {s}→{t}")
    return ", ".join(parts) or "same shape"


class _Row(QGraphicsRectItem):
    def __init__(self, side: str, name: str, shape: Shape, x: float, y: float, end: bool,
                 band: bool) -> None:
        super().__init__(0, 0, COL_W, ROW_H - 3)
        self.side, self.name, self.shape = side, name, shape
        self.setPos(x, y)
        self.setBrush(QBrush(QColor("#eef2f8" if band else "#f7f7f7")))
        self.setPen(QPen(QColor("#b8c2d0"), 1))
        label = QGraphicsSimpleTextItem(f"{name}", self)
        font = QFont()
        font.setBold(end)
        label.setFont(font)
        label.setPos(6, 3)
        shape_item = QGraphicsSimpleTextItem(fmt_shape(shape), self)
        shape_item.setBrush(QBrush(QColor("#0b3d91")))
        shape_item.setPos(COL_W - 6 - shape_item.boundingRect().width(), 3)
        self.setToolTip(f"{side} layer {name}: {fmt_shape(shape)}"
                        + (" (end of a stage)" if end else ""))

    def anchor(self) -> tuple[float, float]:
        x = self.pos().x() + (COL_W if self.side == "teacher" else 0)
        return x, self.pos().y() + (ROW_H - 3) / 2


class QtPairingView(QWidget):
    """Teacher and student feature layers side by side, with the distillation pairs as links."""

    #: (kind, pairs) after the user changed the links; ``None`` pairs means automatic.
    pairsChanged = Signal(str, object)

    def __init__(self, model: EditorModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.teacher_module: Any = None
        self.teacher_spec: Any = None
        self.user_pairs: dict[str, list[Pair] | None] = {"feature": None, "attention": None}
        self.data: dict[str, Any] | None = None
        self._dirty = True
        self._picked: str | None = None
        self.kind_combo = QComboBox()
        for key, text in KINDS:
            self.kind_combo.addItem(text, key)
        self.kind_combo.currentIndexChanged.connect(lambda _i: self.redraw())
        self.reset_button = QPushButton("Reset to automatic")
        self.reset_button.clicked.connect(self.reset_pairs)
        self.status = QLabel()
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.kind_combo)
        top.addWidget(self.reset_button)
        top.addStretch(1)
        self.view = QGraphicsView(QGraphicsScene(self))
        self.view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.view.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.view.mousePressEvent = self._view_pressed  # type: ignore[method-assign]
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.recompute)
        model.changed.connect(self._model_changed)

    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def set_teacher(self, module: Any = None, spec: Any = None) -> None:
        self.teacher_module, self.teacher_spec = module, spec
        self._model_changed("teacher")

    def _model_changed(self, _reason: str) -> None:
        self._dirty = True
        if self.isVisible():
            self._timer.start()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._dirty:
            self._timer.start(0)

    # -- computing -------------------------------------------------------------------------------
    def recompute(self) -> None:
        """Probe teacher and student again (torch) and redraw."""
        self._dirty = False
        self.data = None
        if self.teacher_module is None and self.teacher_spec is None:
            self._message("The teacher is not loaded here yet: pairs are computed from the "
                          "teacher's layers when it is known (the demo teacher always is).")
            return
        if not self.model.is_valid():
            self._message("Fix the student's problems first (red on the canvas); pairs are "
                          "computed from a valid student.")
            return
        try:
            from kdgui.engine import jobs
            from kdgui.gui.qt_worker import run_off_ui_thread

            self.data = run_off_ui_thread(lambda: jobs.pairing_probe(
                self.model.spec, self.model.input_shape,  # type: ignore[arg-type]
                self.model.num_classes, self.teacher_module, self.teacher_spec))
        except Exception as exc:  # a teacher that cannot be probed: say so, keep the editor
            self._message(f"Cannot probe the networks: {getattr(exc, 'what', exc)}")
            return
        self.redraw()

    def pairs(self, kind: str | None = None) -> list[Pair]:
        """The pairs in use for ``kind``: the user's, else the automatic ones."""
        kind = kind or self.kind
        user = self.user_pairs.get(kind)
        if user is not None:
            return list(user)
        return list(self.data["auto"]) if self.data else []

    def toggle_pair(self, teacher: str, student: str) -> None:
        pairs = self.pairs()
        pair = (teacher, student)
        pairs = [p for p in pairs if p != pair] if pair in pairs else [*pairs, pair]
        self.user_pairs[self.kind] = pairs
        self.pairsChanged.emit(self.kind, [list(p) for p in pairs])
        self.redraw()

    def reset_pairs(self) -> None:
        self.user_pairs[self.kind] = None
        self.pairsChanged.emit(self.kind, None)
        self.redraw()

    # -- drawing ---------------------------------------------------------------------------------
    def _message(self, text: str) -> None:
        self.view.scene().clear()
        self.status.setText(text)

    def redraw(self) -> None:
        scene = self.view.scene()
        scene.clear()
        self.rows: dict[tuple[str, str], _Row] = {}
        if not self.data:
            return
        d = self.data
        for side, x in (("teacher", 0.0), ("student", COL_W + LINK_GAP)):
            head = QGraphicsSimpleTextItem(f"{side.title()} feature maps")
            font = QFont()
            font.setBold(True)
            head.setFont(font)
            head.setPos(x, -26)
            scene.addItem(head)
            band, last = False, None
            for r, (name, shape) in enumerate(d[side]):
                if last is not None and shape[1:] != last:
                    band = not band
                last = shape[1:]
                row = _Row(side, name, shape, x, r * ROW_H, name in d[f"{side}_ends"], band)
                scene.addItem(row)
                self.rows[(side, name)] = row
        t_shapes, s_shapes = dict(d["teacher"]), dict(d["student"])
        shown = 0
        for t, s in self.pairs():
            a, b = self.rows.get(("teacher", t)), self.rows.get(("student", s))
            if a is None or b is None:
                continue
            shown += 1
            (x1, y1), (x2, y2) = a.anchor(), b.anchor()
            color = QColor("#1a5fd0" if self.kind == "feature" else "#e07b00")
            line = scene.addLine(x1, y1, x2, y2, QPen(color, 2))
            line.setZValue(2)
            text = QGraphicsSimpleTextItem(adapter_text(s_shapes[s], t_shapes[t], self.kind))
            small = QFont()
            small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
            text.setFont(small)
            text.setBrush(QBrush(color.darker(130)))
            w = text.boundingRect().width()
            text.setPos((x1 + x2) / 2 - w / 2, (y1 + y2) / 2 - 16)
            box = scene.addRect(text.pos().x() - 3, text.pos().y() - 1, w + 6, 17,
                                QPen(Qt.PenStyle.NoPen), QBrush(QColor(255, 255, 255, 220)))
            box.setZValue(3)
            text.setZValue(4)
            scene.addItem(text)
        if self._picked:
            row = self.rows.get(("teacher", self._picked))
            if row is not None:
                row.setPen(QPen(QColor("#1a5fd0"), 2.5))
        mode = "your pairs" if self.user_pairs.get(self.kind) is not None else "automatic pairs"
        self.status.setText(
            f"{shown} {mode} ({'stage ends by spatial size' if mode[0] == 'a' else 'edited'}). "
            "Click a teacher layer, then a student layer, to add or remove a link.")
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-10, -10, 10, 10))
        self._fit()

    def _fit(self) -> None:
        """Scale down (never up) so both columns fit the width."""
        rect = self.view.scene().sceneRect()
        avail = max(1, self.view.viewport().width() - 4)
        k = min(1.0, avail / max(1.0, rect.width()))
        self.view.resetTransform()
        self.view.scale(k, k)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.data:
            self._fit()

    def _view_pressed(self, event: QMouseEvent) -> None:
        pos = self.view.mapToScene(event.position().toPoint())
        row = next((r for r in self.rows.values() if r.sceneBoundingRect().contains(pos)), None) \
            if getattr(self, "rows", None) else None
        self.click_row(row.side, row.name) if row is not None else None

    def click_row(self, side: str, name: str) -> None:
        """Teacher row: pick it; student row after a pick: toggle that link."""
        if side == "teacher":
            self._picked = None if self._picked == name else name
            self.redraw()
        elif self._picked is not None:
            teacher, self._picked = self._picked, None
            self.toggle_pair(teacher, name)

    def scene_rect(self) -> QRectF:
        return self.view.scene().sceneRect()
