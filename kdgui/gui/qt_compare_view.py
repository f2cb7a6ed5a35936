"""Two models of a run side by side: two Netron graphs, the changed layers coloured on both, and
the layer-by-layer diff table beside them (the Models view's *Compare…* mode).

Entering compare mode compares the run's last two models at once (A and B by default); pick
others and press **Compare** (or change run) to compare them: the engine prepares both graphs
and diffs their layer tables on the worker (:func:`kdgui.engine.jobs.compare_models`; with
*measure* ticked it also times every layer and takes each quantized layer's error). Each graph's
changed layers get an outline in the colour of what happened to them (pruned, quantized, shared,
decomposed, removed, added); the *colour by* picker fills the nodes on a latency or
quantization-error scale shared by both sides, with its legend under the table.

What is synchronised: clicking a node in either graph selects its layer's row in the table and
outlines (and scrolls to) the same-named layer in the other graph; clicking a row does that in
both graphs. Scrolling and zooming are *not* synchronised: the two graphs have different layouts,
so one scroll position has no counterpart in the other.

One comparison runs at a time; the latest request wins (:class:`WorkerRequest`): a press while
another pair is being compared supersedes it, so the pair picked last is the one shown, without
pressing again once the first ends (the button was disabled, or a press ignored, meanwhile).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdgui.gui.qt_graph_paint import (
    CHANGE_COLOURS,
    QtColourLegend,
    overlay_fills,
    overlay_title,
)
from kdgui.gui.qt_graph_pane import QtGraphPane
from kdgui.gui.qt_model_tables import fmt_value
from kdgui.gui.qt_worker import QtWorker, WorkerRequest

DIFF_COLUMNS = ("layer", "change", "output shape", "params", "sparsity", "bits", "rank",
                "latency ms A → B", "quant. error B", "type")
#: The *colour by* choices: label -> overlay key (None: only the change outlines).
COLOUR_BY = {"changes only": None, "latency": "latency_ms", "quantization error": "quant_error"}


def _jobs() -> Any:
    from kdgui.engine import jobs

    return jobs


def _cell(kind: str, value: Any) -> str:
    if value is None:
        return "—"
    if kind == "shape" and isinstance(value, list):
        return "×".join(str(v) for v in value[1:])
    if kind == "sparsity":
        return f"{100 * value:.0f}%"
    return fmt_value(value)


class CompareView(QWidget):
    """A and B pickers, two graph panes, the diff table and the legends."""

    compared = Signal(object)  # the engine's Comparison now shown
    graphsDrawn = Signal()  # both embedded graphs drawn (and painted) after a comparison
    noticeChanged = Signal(str)
    layerSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, embed: bool = True,
                 open_url: Callable[[str], Any] | None = None) -> None:
        super().__init__(parent)
        self._work = Path(tempfile.mkdtemp(prefix="kdgui-compare-"))
        self._sources: list[Any] = []
        self._task: QtWorker | None = None
        self._request: WorkerRequest | None = None  # the worker's (or the last one's)
        self._pending: Any = None  # the pair to compare once the worker's one has ended
        self._shown: Any = None  # the (A, B, measure) of the comparison on screen
        self.compare_count = 0  # comparisons started on the worker (tests count them)
        self.result: Any = None
        self.a_combo, self.b_combo = QComboBox(), QComboBox()
        self.measure_box = QCheckBox("measure latency && quantization error")
        self.measure_box.setToolTip("Time every layer and compare each quantized layer's output "
                                    "with its float counterpart (takes a few seconds more)")
        self.compare_button = QPushButton("Compare")
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(list(COLOUR_BY))
        bar = QHBoxLayout()
        for label, widget in (("A", self.a_combo), ("B", self.b_combo)):
            bar.addWidget(QLabel(label))
            bar.addWidget(widget, 1)
        bar.addWidget(self.measure_box)
        bar.addWidget(self.compare_button)
        bar.addWidget(QLabel("colour by"))
        bar.addWidget(self.colour_combo)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.panes = (QtGraphPane("A", self, embed=embed, open_url=open_url),
                      QtGraphPane("B", self, embed=embed, open_url=open_url))
        self.table = QTableWidget(0, len(DIFF_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(DIFF_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.summary = QLabel("")
        self.changes_legend, self.scale_legend = QtColourLegend(), QtColourLegend()
        self.changes_legend.set_swatches("outline: what happened to the layer (A → B)",
                                         list(CHANGE_COLOURS.items()))
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.table, self.summary, self.changes_legend, self.scale_legend):
            side_layout.addWidget(widget, 1 if widget is self.table else 0)
        graphs = QSplitter(Qt.Orientation.Horizontal)
        for pane in self.panes:
            graphs.addWidget(pane)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(graphs)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.notice)
        layout.addWidget(split, 1)
        self.compare_button.clicked.connect(lambda: self.compare())
        self.colour_combo.currentIndexChanged.connect(self.repaint_graphs)
        self.table.itemSelectionChanged.connect(self._on_row)
        for index, pane in enumerate(self.panes):
            pane.nodeClicked.connect(lambda node, i=index: self._on_node(i, node))
            pane.drawn.connect(self._on_pane_drawn)
        self._poll = QTimer(self)
        self._poll.setInterval(400)
        self._poll.timeout.connect(lambda: [p.poll() for p in self.panes])

    # -- choosing --------------------------------------------------------------------------------
    def set_sources(self, sources: list[Any]) -> None:
        """A run's models; A defaults to the one before the last, B to the last."""
        self._sources = list(sources)
        for combo in (self.a_combo, self.b_combo):
            combo.clear()
            combo.addItems([s.label for s in self._sources])
        if self._sources:
            self.a_combo.setCurrentIndex(max(0, len(self._sources) - 2))
            self.b_combo.setCurrentIndex(len(self._sources) - 1)
        self.compare_button.setEnabled(len(self._sources) > 1)
        if self.isVisible():
            self.compare_picked()  # a new run's models, in compare mode

    def _picked(self) -> tuple[Any, Any, bool] | None:
        a, b = self.a_combo.currentIndex(), self.b_combo.currentIndex()
        if len(self._sources) < 2 or min(a, b) < 0:
            return None
        return self._sources[a], self._sources[b], self.measure_box.isChecked()

    def compare_picked(self) -> None:
        """Compare the picked pair unless it is the one on screen (entering compare mode)."""
        if self._picked() is None or self._picked() != self._shown:
            self.compare()

    def compare(self, measure: bool | None = None) -> None:
        """Prepare, diff (and, with ``measure`` or the box ticked, measure) A and B on the
        worker, then show them; with fewer than two models, a notice says why not."""
        if measure is not None:
            self.measure_box.setChecked(measure)
        key = self._picked()
        if key is None:
            only = f" ({self._sources[0].label})" if self._sources else ""
            self._set_notice(f"Nothing to compare: this run has {len(self._sources) or 'no'} "
                             f"model{only}. Pick a run with a teacher and a student, or with "
                             "compression stages, in Run above.")
            return
        self._set_notice(f"Preparing {key[0].label} and {key[1].label}"
                         + (" and measuring their layers" if key[2] else "") + " …")
        busy = self._request if self._task is not None and self._task.running else None
        if busy is not None and not busy.cancelled and busy.key == key:
            self._pending = None  # the pair asked for is the one being compared
        elif busy is not None:
            busy.cancelled = True  # not started: skipped; started: its result is dropped
            self._pending = key
        else:
            self._start(WorkerRequest(key))

    def _start(self, request: WorkerRequest) -> None:
        source_a, source_b, measure = request.key
        out = self._work / f"c{id(request)}_{int(measure)}"

        def work() -> Any:
            if request.cancelled:
                return None
            request.started = True
            self.compare_count += 1
            return _jobs().compare_models(source_a, source_b, out, overlays=measure)

        task = QtWorker(work, name="kdgui-compare", owner=self)
        task.returned.connect(lambda r: request.cancelled or self._on_compared(r, request.key))
        task.errored.connect(lambda e: request.cancelled or self._set_notice(
            f"Cannot compare: {e.get('what', 'unknown error')}. {e.get('fix', '')}".strip()))
        task.finished.connect(self._compare_ended)
        self._task, self._request, self._pending = task, request, None
        task.start()

    def _compare_ended(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(WorkerRequest(pending))

    # -- showing ---------------------------------------------------------------------------------
    def _on_compared(self, result: Any, key: Any = None) -> None:
        self.result, self._shown = result, key
        self._fill(result)
        notes = list(result.notes)
        for pane, side, name in zip(self.panes, (result.a, result.b), "AB", strict=True):
            notes += side.prepared.notes
            notes += pane.show_file(side.prepared.onnx_path,
                                    f"{name}: {side.prepared.source.label}")
        self.repaint_graphs()
        self._set_notice("\n".join(dict.fromkeys(n for n in notes if n)))
        self._poll.start()
        self.compared.emit(result)

    def _fill(self, result: Any) -> None:
        self.table.setRowCount(0)
        lat = [s.overlays.column("latency_ms") if s.overlays else {} for s in (result.a, result.b)]
        err = result.b.overlays.column("quant_error") if result.b.overlays else {}
        for row in result.rows:
            cells = [row["name"], "" if row["kind"] == "same" else row["kind"]]
            for key, kind in (("shape", "shape"), ("params", ""), ("sparsity", "sparsity"),
                              ("bits", ""), ("rank", "")):
                a, b = (_cell(kind, v) for v in row[key])
                cells.append(a if a == b else f"{a} → {b}")
            la, lb = (f"{m[row['name']]:.3f}" if row["name"] in m else "—" for m in lat)
            cells.append(f"{la} → {lb}" if lat[0] or lat[1] else "")
            cells.append(f"{err[row['name']]:.3g}" if row["name"] in err else "")
            a, b = (_cell("", v) for v in row["type"])
            cells.append(a if a == b else f"{a} → {b}")
            index = self.table.rowCount()
            self.table.insertRow(index)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                colour = CHANGE_COLOURS.get(row["kind"])
                if colour and col == 1:
                    item.setBackground(QColor(colour).lighter(150))
                self.table.setItem(index, col, item)
        pa, pb = result.params
        changed = sum(r["kind"] != "same" for r in result.rows)
        self.summary.setText(f"params {pa:,} → {pb:,}; {changed} of {len(result.rows)} layers "
                             "differ")

    def repaint_graphs(self, *_: Any) -> None:
        """Outline changed layers on both graphs and fill them by the chosen overlay."""
        if self.result is None:
            return
        key = COLOUR_BY[self.colour_combo.currentText()]
        fills, scale, log = overlay_fills([self.result.a, self.result.b], key)
        for index, pane in enumerate(self.panes):
            borders = {n: CHANGE_COLOURS[k] for n, k in self.result.highlights(index).items()
                       if k in CHANGE_COLOURS}
            pane.paint(fills[index], borders)
        if key and scale:
            self.scale_legend.set_scale(f"fill: {overlay_title(key, log)}", f"{scale[0]:.3g}",
                                        f"{scale[1]:.3g}")
        elif key and (self.result.a.overlays or self.result.b.overlays):
            why = " (no quantized layer with a float counterpart)" if key == "quant_error" else ""
            self.scale_legend.set_swatches(
                f"fill: no {self.colour_combo.currentText()} on either side{why}", [])
        elif key:
            self.scale_legend.set_swatches(f"fill: no {self.colour_combo.currentText()} "
                                           "measured (tick measure and compare again)", [])
        else:
            self.scale_legend.clear()

    def _on_pane_drawn(self) -> None:
        if all(p.web is not None and p.web.drawn for p in self.panes):
            # Netron positions a graph just after its nodes appear: focus a moment later.
            QTimer.singleShot(600, self._show_first_change)

    def _show_first_change(self) -> None:
        changed = [r["name"] for r in self.result.rows if r["kind"] != "same"] \
            if self.result is not None else []
        if changed and not self.table.selectionModel().hasSelection():
            self.select_layer(changed[0])  # show the first change on both sides
        self.graphsDrawn.emit()

    # -- synchronised selection ------------------------------------------------------------------
    def _on_node(self, index: int, node: str) -> None:
        if self.result is None:
            return
        layer = self.result.side(index).node_layer.get(node)
        if layer:
            self.select_layer(layer, from_side=index)

    def _on_row(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and self.result is not None:
            self.select_layer(self.table.item(rows[0].row(), 0).text(), from_table=True)

    def select_layer(self, layer: str, *, from_side: int | None = None,
                     from_table: bool = False) -> None:
        """Show ``layer`` everywhere: its table row, and outlined in the graph(s) it was not
        clicked in."""
        if not from_table:
            for row in range(self.table.rowCount()):
                if self.table.item(row, 0).text() == layer:
                    self.table.blockSignals(True)
                    self.table.selectRow(row)
                    self.table.blockSignals(False)
                    break
        for index, pane in enumerate(self.panes):
            if index != from_side:
                pane.focus(self.result.side(index).nodes.get(layer, []))
        self.layerSelected.emit(layer)

    def _set_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self.noticeChanged.emit(text)

    def shutdown(self) -> None:
        self._poll.stop()
        for pane in self.panes:
            pane.shutdown()
        import shutil

        shutil.rmtree(self._work, ignore_errors=True)


__all__ = ["COLOUR_BY", "DIFF_COLUMNS", "CompareView", "WorkerRequest"]
