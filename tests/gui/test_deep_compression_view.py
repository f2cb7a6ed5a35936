"""The Deep Compression tab of Results: Table 2 per layer, a bar per stage, the bit-plan heatmap."""

from __future__ import annotations

import json
from pathlib import Path

from kdgui.gui.qt_deep_compression import QtDeepCompressionView, table2_rows


def _layer(name, params, nonzero, bits, index_bits, fixed, coded):
    return {"layer": name, "params": params, "nonzero": nonzero, "density": nonzero / params,
            "weight_bits": bits, "index_bits": index_bits, "fixed_bytes": fixed,
            "huffman_bytes": coded, "entries": nonzero, "bits_per_weight": 8 * coded / params}


def table(plan: bool = True) -> dict:
    out = {"rows": [
        {"stage": "float", "size_bytes": 4000, "ratio": 1.0, "accuracy": 0.95, "paper_ratio": 1.0},
        {"stage": "pruning", "size_bytes": 400, "ratio": 10.0, "accuracy": 0.96,
         "paper_ratio": 12.0},
        {"stage": "sharing", "size_bytes": 150, "ratio": 26.7, "accuracy": 0.96,
         "paper_ratio": 32.0},
        {"stage": "coding", "size_bytes": 100, "ratio": 40.0, "accuracy": 0.96,
         "paper_ratio": 40.0}],
        "layers": [_layer("fc1", 800, 80, 3, 8, 60, 50), _layer("fc2", 200, 20, 6, 5, 30, 25)]}
    if plan:
        out["bit_plan"] = {"layers": ["fc1", "fc2"], "bits": [2, 3, 4, 5, 6, 7, 8],
                           "nonzero": [80, 20], "plan": {"fc1": 3, "fc2": 6},
                           "accuracy_drop": [[0.02, 0.001, 0, 0, 0, 0, 0],
                                             [0.3, 0.1, 0.05, 0.01, 0.0, 0.0, 0.0]],
                           "kl": [[0.05, 0.004, 0.001, 0, 0, 0, 0],
                                  [0.9, 0.3, 0.08, 0.02, 0.004, 0.001, 0.0]],
                           "average_bits": 3.6, "budget_bits": 3.75, "predicted_drop": 0.001,
                           "predicted_kl": 0.008, "samples": 256}
    return out


def test_table2_rows_per_layer_and_total() -> None:
    rows = table2_rows(table()["layers"])
    assert rows[0] == ["fc1", "800", "10.0%", "3", "8", "0.50", "1.88%", "1.56%"]
    total = rows[-1]
    assert total[0] == "total" and total[1] == "1.0K" and total[2] == "10.0% (10×)"
    assert total[3] == "3.6"  # weight bits averaged over non-zeros: (3·80 + 6·20) / 100
    assert total[-1] == "1.88% (53×)"  # (50 + 25) B coded of 4 · 1000 B float


def test_view_shows_what_the_table_has_and_renders(qtbot, tmp_path: Path) -> None:
    view = QtDeepCompressionView()
    qtbot.addWidget(view)
    view.resize(900, 800)
    view.set_table(table())
    view.show()
    assert view.table.rowCount() == 3 and view.table.item(2, 0).text() == "total"
    assert view.heatmap.isVisibleTo(view) and not view.empty.isVisibleTo(view)
    assert "3.75 bits per non-zero weight" in view.plan_title.text()
    assert [r["stage"] for r in view.stages.rows] == ["float", "pruning", "sharing", "coding"]
    image = view.grab().toImage()
    # the chosen cell of fc1 (3 bits) is outlined in the series blue somewhere in the heatmap
    heat = view.heatmap.grab().toImage()
    blues = sum(1 for x in range(0, heat.width(), 2) for y in range(0, heat.height(), 2)
                if heat.pixelColor(x, y).name() == "#1f77b4")
    assert image.width() > 0 and blues > 10
    view.set_table(table(plan=False))
    assert not view.heatmap.isVisibleTo(view) and view.table.isVisibleTo(view)
    view.set_table(None)
    assert view.empty.isVisibleTo(view) and not view.table.isVisibleTo(view)


def test_results_shows_a_runs_deep_compression_table(window, tmp_path: Path) -> None:
    run = tmp_path / "dc-run"
    run.mkdir()
    (run / "config.yaml").write_text("name: dc-run\n", encoding="utf-8")
    (run / "metrics.jsonl").write_text("", encoding="utf-8")
    (run / "summary.json").write_text(json.dumps({"deep_compression": table()}),
                                      encoding="utf-8")
    panel = window.results_panel
    panel.open_run(run)
    view = panel.deep_compression
    assert view.table.rowCount() == 3 and view.heatmap.plan is not None
    assert panel.result_tabs.isTabEnabled(1)  # the tab beside the plots, full width
    other = tmp_path / "plain-run"
    other.mkdir()
    (other / "config.yaml").write_text("name: plain\n", encoding="utf-8")
    (other / "summary.json").write_text("{}", encoding="utf-8")
    panel.open_run(other)
    assert not panel.result_tabs.isTabEnabled(1) and view.empty.isVisibleTo(view)
