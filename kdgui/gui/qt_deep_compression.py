"""Deep Compression in the window: the paper's Table 2 per layer, a bar per stage, the bit plan.

Everything comes from a run's ``summary.json['deep_compression']`` (the staged table the engine
writes, :mod:`kdgui.engine.compress.share.table`), so a run made by the CLI shows the same:

* **per layer**, like Han et al.'s Table 2: weights, density after pruning (P), bits per weight
  after sharing (P+Q), index bits, bits per weight once Huffman-coded, and the compression rate
  (compressed ÷ float size of the layer's weights) after sharing and after coding;
* **per stage** (float → pruning → sharing → coding): the size ratio of this run beside the
  paper's LeNet-300-100 figure, and the accuracy under each stage;
* **the mixed-precision plan** when the sharing step had a ``bits_budget``: a heatmap of layers ×
  bits, each cell the accuracy lost when only that layer is shared at that width, the chosen
  width outlined.

The widgets only draw plain numbers: no torch, no engine import.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdgui.gui.qt_plot_base import SERIES_COLORS

#: Han et al. 2016, Table 2, LeNet-300-100 total (the per-layer table's reference line).
PAPER_TABLE2 = ("Han et al. 2016, Table 2, LeNet-300-100 in all: 266K weights, 8% kept (12×), "
                "6 weight bits, 5 index bits; compression rate 3.1% (32×) after sharing, "
                "2.49% (40×) after Huffman coding.")
#: Accuracy of the paper's LeNet-300-100 before and after (100 − top-1 error).
PAPER_ACCURACY = {"float": 98.36, "coding": 98.42}

TABLE2_HEADER = ["layer", "weights", "weights % (P)", "weight bits (P+Q)", "index bits",
                 "bits/weight (P+Q+H)", "rate (P+Q)", "rate (P+Q+H)"]


def _count(n: float) -> str:
    return f"{n / 1e3:.0f}K" if n >= 10_000 else (f"{n / 1e3:.1f}K" if n >= 1000 else f"{n:.0f}")


def table2_rows(layers: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of the per-layer table (and a total row) from the staged table's ``layers``.

    The rate is the layer's coded size over its float32 size (the paper's "compress rate"); the
    total's bits are averages weighted by non-zeros (weight bits) and by entries (index bits).
    """
    rows = []
    for r in layers:
        float_bytes = 4 * max(int(r["params"]), 1)
        rows.append([str(r["layer"]), _count(r["params"]), f"{100 * r['density']:.1f}%",
                     str(r["weight_bits"]), str(r["index_bits"]), f"{r['bits_per_weight']:.2f}",
                     f"{100 * r['fixed_bytes'] / float_bytes:.2f}%",
                     f"{100 * r['huffman_bytes'] / float_bytes:.2f}%"])
    if len(layers) > 1:
        params = sum(int(r["params"]) for r in layers)
        nonzero = sum(int(r["nonzero"]) for r in layers)
        entries = sum(int(r.get("entries", r["nonzero"])) for r in layers)
        fixed = sum(int(r["fixed_bytes"]) for r in layers)
        coded = sum(int(r["huffman_bytes"]) for r in layers)
        wbits = sum(r["weight_bits"] * r["nonzero"] for r in layers) / max(nonzero, 1)
        ibits = sum(r["index_bits"] * r.get("entries", r["nonzero"]) for r in layers) / max(
            entries, 1)
        rows.append(["total", _count(params),
                     f"{100 * nonzero / max(params, 1):.1f}% ({params / max(nonzero, 1):.0f}×)",
                     f"{wbits:.1f}", f"{ibits:.1f}", f"{8 * coded / max(params, 1):.2f}",
                     f"{100 * fixed / (4 * params):.2f}% ({4 * params / max(fixed, 1):.0f}×)",
                     f"{100 * coded / (4 * params):.2f}% ({4 * params / max(coded, 1):.0f}×)"])
    return rows


def _text_color(widget: QWidget) -> QColor:
    return widget.palette().color(widget.foregroundRole())


class StageBars(QWidget):
    """One group per stage: this run's size ratio beside the paper's, accuracy underneath."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.setMinimumHeight(250)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(520, 260)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = list(rows)
        self.update()

    def paintEvent(self, _event: Any) -> None:
        if not self.rows:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = _text_color(self)
        fm = p.fontMetrics()
        line = fm.height()
        top, bottom = line * 2 + 4, self.height() - 3 * line - 10
        ratios = [r.get("ratio") or 0.0 for r in self.rows] + \
            [r.get("paper_ratio") or 0.0 for r in self.rows]
        peak = max([*ratios, 1.0])
        group_w = (self.width() - 20) / len(self.rows)
        ours, paper = QColor(SERIES_COLORS[0]), QColor(SERIES_COLORS[7])
        paper.setAlpha(150)
        for i, row in enumerate(self.rows):
            x0 = 10 + i * group_w
            bar_w = min(46.0, group_w * 0.32)
            for j, (value, color) in enumerate(((row.get("ratio"), ours),
                                                (row.get("paper_ratio"), paper))):
                x = x0 + group_w / 2 - bar_w - 2 + j * (bar_w + 4)
                if value is None:
                    p.setPen(text)
                    p.drawText(QRectF(x - 6, bottom - line, bar_w + 12, line),
                               Qt.AlignmentFlag.AlignCenter, "n/a")
                    continue
                h = (bottom - top) * value / peak
                p.fillRect(QRectF(x, bottom - h, bar_w, h), color)
                p.setPen(text)
                p.drawText(QRectF(x - 12, bottom - h - line - 2, bar_w + 24, line),
                           Qt.AlignmentFlag.AlignCenter, f"{value:.1f}×")
            p.setPen(text)
            acc = row.get("accuracy")
            paper_acc = PAPER_ACCURACY.get(row["stage"])
            texts = [row["stage"], "" if acc is None else f"{100 * acc:.2f}%",
                     "" if paper_acc is None else f"paper {paper_acc:.2f}%"]
            for k, label in enumerate(texts):
                p.drawText(QRectF(x0, bottom + 4 + k * line, group_w, line),
                           Qt.AlignmentFlag.AlignCenter, label)
        p.setPen(QPen(text, 1))
        p.drawLine(10, int(bottom), self.width() - 10, int(bottom))
        # legend
        for k, (label, color) in enumerate((("this run", ours), ("paper (LeNet-300-100)",
                                                                 paper))):
            x = 12 + k * 170
            p.fillRect(QRectF(x, 6, 12, 12), color)
            p.drawText(QRectF(x + 16, 2, 160, line + 4), Qt.AlignmentFlag.AlignVCenter,
                       label)
        p.end()


class BitPlanHeatmap(QWidget):
    """Layers × bits: how far the output moves (KL divergence, millinats) when only that layer
    is shared at that width — the sensitivity the plan minimises; darker red is a larger change,
    the chosen width is outlined."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan: dict[str, Any] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_plan(self, plan: dict[str, Any] | None) -> None:
        self.plan = plan
        rows = len(plan["layers"]) if plan else 0
        self.setFixedHeight((rows + 2) * (self.fontMetrics().height() + 12) + 8 if plan else 0)
        self.update()

    def cell_color(self, value: float, peak: float) -> QColor:
        """White to red on a log scale (sensitivities span orders of magnitude)."""
        import math

        t = math.log1p(max(value, 0.0)) / math.log1p(peak) if peak > 0 else 0.0
        t = max(0.0, min(1.0, t))
        return QColor(int(255 - 40 * t), int(245 - 200 * t), int(235 - 200 * t))

    def paintEvent(self, _event: Any) -> None:
        if not self.plan:
            return
        plan = self.plan
        p = QPainter(self)
        text = _text_color(self)
        fm = p.fontMetrics()
        cell_h = fm.height() + 12
        names = [str(n) for n in plan["layers"]]
        label_w = max(fm.horizontalAdvance(n) for n in [*names, "layer"]) + 16
        bits = plan["bits"]
        cell_w = max(54.0, (self.width() - label_w - 10) / max(len(bits), 1))
        drops = [[1000 * k for k in row] for row in plan["kl"]]  # millinats
        peak = max([max(row) for row in drops] + [1.0])
        p.setPen(text)
        p.drawText(QRectF(0, 0, label_w, cell_h), Qt.AlignmentFlag.AlignVCenter, "layer")
        for j, b in enumerate(bits):
            p.drawText(QRectF(label_w + j * cell_w, 0, cell_w, cell_h),
                       Qt.AlignmentFlag.AlignCenter, f"{b} bits")
        for i, name in enumerate(names):
            y = (i + 1) * cell_h
            p.setPen(text)
            p.drawText(QRectF(0, y, label_w, cell_h), Qt.AlignmentFlag.AlignVCenter, name)
            chosen = plan["plan"].get(name)
            for j, b in enumerate(bits):
                rect = QRectF(label_w + j * cell_w + 1, y + 1, cell_w - 2, cell_h - 2)
                p.fillRect(rect, self.cell_color(drops[i][j], peak))
                p.setPen(QColor("#202020"))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, f"{drops[i][j]:.2f}")
                if b == chosen:
                    p.setPen(QPen(QColor(SERIES_COLORS[0]), 3))
                    p.drawRect(rect.adjusted(1, 1, -1, -1))
        p.setPen(text)
        y = (len(names) + 1) * cell_h
        p.drawText(QRectF(0, y, self.width(), cell_h), Qt.AlignmentFlag.AlignVCenter,
                   "cell: output change (KL divergence, millinats) with only that layer shared "
                   "at that width; outlined: the plan's choice")
        p.end()


class QtDeepCompressionView(QWidget):
    """The Deep Compression page of a run (Results → the "Deep Compression" tab)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        outer.addWidget(scroll)
        body = QWidget()
        scroll.setWidget(body)
        layout = QVBoxLayout(body)
        self.empty = QLabel("This run has no Deep Compression table: add a "
                            "<i>quantize: kmeans</i> step (weight sharing) and the "
                            "<i>deepc</i> export to see pruning → sharing → coding here.")
        self.empty.setWordWrap(True)
        layout.addWidget(self.empty)
        self.stage_title = QLabel("<b>Size ratio per stage</b> (float size ÷ size), this run "
                                  "beside Han et al. 2016; accuracy under each stage")
        self.stage_title.setWordWrap(True)
        self.stages = StageBars()
        self.table_title = QLabel("<b>Per layer</b>, as the paper's Table 2 "
                                  "(P: pruning, Q: sharing, H: Huffman coding)")
        self.table = QTableWidget(0, len(TABLE2_HEADER))
        self.table.setHorizontalHeaderLabels(TABLE2_HEADER)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.paper_note = QLabel(PAPER_TABLE2)
        self.paper_note.setWordWrap(True)
        self.plan_title = QLabel()
        self.plan_title.setWordWrap(True)
        self.heatmap = BitPlanHeatmap()
        for w in (self.stage_title, self.stages, self.table_title, self.table, self.paper_note,
                  self.plan_title, self.heatmap):
            layout.addWidget(w)
        layout.addStretch(1)
        self.set_table(None)

    def set_table(self, table: dict[str, Any] | None) -> None:
        """Show a run's ``summary['deep_compression']`` (None: the explanation only)."""
        has = bool(table)
        self.empty.setVisible(not has)
        for w in (self.stage_title, self.stages):
            w.setVisible(has)
        layers = (table or {}).get("layers") or []
        for w in (self.table_title, self.table, self.paper_note):
            w.setVisible(bool(layers))
        plan = (table or {}).get("bit_plan")
        self.plan_title.setVisible(bool(plan))
        self.heatmap.setVisible(bool(plan))
        self.stages.set_rows((table or {}).get("rows") or [])
        rows = table2_rows(layers)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                item = QTableWidgetItem(value)
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if row[0] == "total":
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        head_h = self.table.horizontalHeader().sizeHint().height()
        self.table.setFixedHeight(head_h + sum(self.table.rowHeight(i) for i in range(len(rows)))
                                  + 2 * self.table.frameWidth() + 2)
        if plan:
            drop = plan.get("predicted_drop")
            self.plan_title.setText(
                f"<b>Mixed precision by sensitivity</b>: bits per layer chosen to meet "
                f"{plan['budget_bits']:g} bits per non-zero weight on average (reached "
                f"{plan['average_bits']:.2f}) with the least predicted output change "
                f"({1000 * plan['predicted_kl']:.2f} millinats"
                + ("" if drop is None else f", accuracy drop {100 * drop:.2f} points")
                + f", measured on {plan['samples']} training samples).")
        self.heatmap.set_plan(plan)


__all__ = [
    "PAPER_TABLE2",
    "BitPlanHeatmap",
    "QtDeepCompressionView",
    "StageBars",
    "table2_rows",
]
