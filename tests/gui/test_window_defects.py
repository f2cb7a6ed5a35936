"""Issue 12, the window as its users found it: each test failed on the code it was filed against.

Fast: the fake engine (tests/gui/fake_engine.py) or run folders written here the way the engine
writes them; the real engine only where the defect lived in the engine's output (marked slow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRectF

from kdgui.core.events import (
    EpochEvent,
    LogEvent,
    RunFinished,
    StageEvent,
    StepEvent,
)
from kdgui.gui.qt_bars import QtBars
from kdgui.gui.qt_export_dialog import QtExportDialog
from kdgui.gui.qt_loss_plot import QtLossPlot
from tests.gui.fake_engine import fake_run


def _metrics(name: str, params: int, acc: float, zip_bytes: int, raw_bytes: int) -> dict:
    return {"name": name, "params": params, "nonzero_params": params, "size_bytes": raw_bytes,
            "zip_size_bytes": zip_bytes, "macs": 20 * params, "latency_ms": 0.2,
            "accuracy": acc}


def write_pipeline_run(root: Path) -> Path:
    """A run folder as the engine leaves it after prune 0.8 + dynamic int8 (no real weights:
    the export job is replaced in the tests that use this)."""
    run = root / "20260101-000000-mnist"
    (run / "student").mkdir(parents=True)
    (run / "student" / "student.safetensors").write_bytes(b"\0")
    (run / "config.yaml").write_text("name: mnist\n", encoding="utf-8")
    student = _metrics("student", 109_388, 0.97, 400_000, 437_000)
    stages = [_metrics("before", 109_388, 0.97, 400_000, 437_000),
              _metrics("prune:magnitude", 109_388, 0.96, 120_000, 437_000),
              _metrics("quantize:dynamic-int8", 33_100, 0.96, 40_000, 130_000)]
    files = ["model.pt2", "model.pt2", "model.ts"]
    for i, (metrics, file) in enumerate(zip(stages, files, strict=True)):
        folder = run / "stages" / f"{i}_{metrics['name'].replace(':', '-')}"
        folder.mkdir(parents=True)
        (folder / file).write_bytes(b"\0")
        (folder / "metrics.json").write_text(json.dumps(
            {"metrics": metrics, "layers": [], "model_file": file}), encoding="utf-8")
    summary = {"teacher": _metrics("teacher", 400_000, 0.99, 1_500_000, 1_600_000),
               "student": student, "stages": stages, "stopped": False, "completed": True,
               "exports": [{"format": "onnx", "ok": False,
                            "error": "cannot export to ONNX: DynamicQuantizedLinear has no "
                                     "ONNX equivalent"}]}
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (run / "metrics.jsonl").write_text("", encoding="utf-8")
    return run


class FakeExportJob:
    """Stands in for jobs.export_run: records what the dialog asked for, returns records."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, run_dir, formats, *, stage="final", out_dir=None, verify=True):
        self.calls.append({"run_dir": run_dir, "formats": formats, "stage": stage,
                           "out_dir": out_dir, "verify": verify})
        fmt = formats[0]
        yield LogEvent(level="info", message=f"exporting stage {stage}")
        record = {"format": fmt, "ok": True, "stage": "2_quantize-dynamic-int8",
                  "verify_ran": verify, "path": str(Path(out_dir) / "model.pt"),
                  "size_bytes": 1234, "verified": verify,
                  "max_abs_diff": 1e-6 if verify else None, "tolerance": 1e-4 if verify else None,
                  "warnings": []}
        return {"stage": "2_quantize-dynamic-int8", "exports": [record]}


# -- 12.2: Export model… exports the final stage, says which, "verified" only when it ran -------
def test_export_dialog_exports_the_final_stage_and_names_it(qtbot, tmp_path) -> None:
    run = write_pipeline_run(tmp_path)
    job = FakeExportJob()
    dialog = QtExportDialog(str(run), job=job)
    qtbot.addWidget(dialog)
    assert dialog.stage_combo.currentData() == "final"
    assert "quantize:dynamic-int8" in dialog.stage_combo.currentText()
    assert "33.1k" in dialog.stage_combo.currentText()
    keys = [dialog.stage_combo.itemData(i) for i in range(dialog.stage_combo.count())]
    assert keys == ["final", "1_prune-magnitude", "student"]  # stage 0 is the student again
    dialog.export_button.click()
    qtbot.waitUntil(lambda: bool(dialog.records or dialog.error_data), timeout=10000)
    assert dialog.error_data is None
    assert job.calls[0]["stage"] == "final"
    text = dialog.result_label.text()
    assert "final model — after quantize:dynamic-int8" in text
    assert "✓ verified" in text


def test_export_dialog_never_says_verified_when_nothing_was_compared(qtbot, tmp_path) -> None:
    run = write_pipeline_run(tmp_path)
    job = FakeExportJob()
    dialog = QtExportDialog(str(run), job=job)
    qtbot.addWidget(dialog)
    dialog.stage_combo.setCurrentIndex(dialog.stage_combo.findData("student"))
    dialog.verify_box.setChecked(False)
    dialog.export_button.click()
    qtbot.waitUntil(lambda: bool(dialog.records or dialog.error_data), timeout=10000)
    assert job.calls[0]["stage"] == "student" and job.calls[0]["verify"] is False
    text = dialog.result_label.text()
    assert "verified" not in text.replace("Not verified", "")
    assert "distilled student, before compression" in text


# -- 12.3: failed exports are warnings in Run, Results and the status bar -----------------------
def _run_with_failed_export(config, out_dir=None, *, control=None, **kw):
    for ev in fake_run(config, out_dir, control=control, step_s=0.001, **kw):
        if isinstance(ev, RunFinished):
            summary = dict(ev.summary)
            error = "cannot export to ONNX: DynamicQuantizedLinear has no ONNX equivalent"
            summary["exports"] = [{"format": "onnx", "ok": False, "error": error}]
            Path(ev.run_dir, "summary.json").write_text(json.dumps(summary), encoding="utf-8")
            with Path(ev.run_dir, "metrics.jsonl").open("a", encoding="utf-8") as log:
                log.write(json.dumps(LogEvent(level="error", message=error).to_dict()) + "\n")
            yield LogEvent(level="error", message=error)
            yield RunFinished(run_dir=ev.run_dir, summary=summary, stopped=False)
        else:
            yield ev


def test_a_failed_export_is_shown_in_run_results_and_the_status_bar(make_window, qtbot) -> None:
    window = make_window(run_fn=_run_with_failed_export)
    window.state.set(("training", "epochs"), 1)
    with qtbot.waitSignal(window.run_ended, timeout=20000):
        assert window.start_run()
    panel = window.run_panel
    assert panel.problems_label.isVisible()
    assert "onnx export failed" in panel.problems_label.text()
    assert len(panel.problems) == 1  # the log line and the summary are one problem
    message = window.statusBar().currentMessage()
    assert message != "Run finished." and "onnx export failed" in message
    window.show_panel("results")
    results = window.results_panel
    assert results.problems_label.isVisible()
    assert "onnx export failed" in results.problems_label.text()


# -- 12.6: the before/after chart ---------------------------------------------------------------
PIPELINE = {
    "teacher": _metrics("teacher", 109_388, 0.99, 380_000, 437_000),
    "student": _metrics("student", 20_000, 0.97, 72_000, 80_000),
    "prune:magnitude-0.8": _metrics("p", 20_000, 0.96, 24_000, 80_000),
    "lowrank:svd": _metrics("l", 15_000, 0.95, 15_000, 60_000),
    "quantize:dynamic-int8": _metrics("q", 15_000, 0.95, 6_000, 16_000),
}


@pytest.mark.parametrize("size", [(480, 280), (640, 320), (900, 360)])
def test_bars_legend_keeps_every_stage_inside_and_above_the_labels(qtbot, size) -> None:
    bars = QtBars()
    qtbot.addWidget(bars)
    bars.resize(*size)
    bars.show()
    qtbot.waitExposed(bars)
    for name, metrics in PIPELINE.items():
        bars.set_stage(name, metrics)
    for _ in range(2):  # a second redraw (Results re-selects, Save plots flushes) lost "teacher"
        bars.mark_dirty()
        bars.flush()
        assert bars.legend_names() == list(PIPELINE)
    qtbot.wait(50)  # text items place themselves when painted
    bars.plot_widget.viewport().repaint()
    view = bars.plot.getViewBox().sceneBoundingRect()
    legend = bars.legend.sceneBoundingRect()
    assert bars.plot.sceneBoundingRect().contains(legend), legend  # not clipped ("acher")
    assert not legend.intersects(view)  # above the bars, never over them
    labels = [item for item in bars._items if hasattr(item, "textItem")]
    assert len(labels) == 5 * len(PIPELINE)
    for label in labels:
        rect: QRectF = label.sceneBoundingRect()
        assert not rect.intersects(legend), (label.textItem.toPlainText(), rect, legend)
        assert view.contains(rect)


def test_bars_size_is_the_zip_size_so_pruning_shows(qtbot, tmp_path) -> None:
    bars = QtBars()
    qtbot.addWidget(bars)
    for name, metrics in PIPELINE.items():
        bars.set_stage(name, metrics)
    assert bars.stages["prune:magnitude-0.8"]["size"] < bars.stages["student"]["size"]
    ticks = dict(bars.plot.getAxis("bottom")._tickLevels[0])
    assert ticks[1] == "zip size"
    bars.export(str(tmp_path / "bars.png"))
    assert "teacher" in bars.legend_names()  # in the saved PNG too (drawn from this legend)


# -- 12.8: smaller defects ----------------------------------------------------------------------
def test_paused_is_cleared_after_resume(window) -> None:
    panel = window.run_panel
    panel.set_running(True, True)
    assert panel.status_label.text() == "Paused."
    panel.set_running(True, False)
    assert panel.status_label.text() != "Paused."


def test_a_run_shorter_than_log_every_still_plots_its_loss(window) -> None:
    panel = window.run_panel
    panel.reset()
    panel.handle(EpochEvent(epoch=1, step=3, train_loss=0.8, train_accuracy=0.5,
                            val_accuracy=0.5, teacher_accuracy=0.9, agreement=0.5,
                            layer_names=["a"], sparsity=np.zeros(1), duration_s=0.1))
    panel.flush()
    xs, ys = panel.loss_plot.curves["total"].getData()
    assert list(xs) == [3] and list(ys) == pytest.approx([0.8])


def test_one_shot_pruning_without_fine_tuning_shows_in_the_heatmap(window) -> None:
    panel = window.run_panel
    panel.reset()
    panel.handle(EpochEvent(epoch=1, step=10, train_loss=0.8, train_accuracy=0.5,
                            val_accuracy=0.5, teacher_accuracy=0.9, agreement=0.5,
                            layer_names=["conv", "fc"], sparsity=np.zeros(2), duration_s=0.1))
    layers = [{"name": "conv", "sparsity": 0.8}, {"name": "fc", "sparsity": 0.79}]
    panel.handle(StageEvent(name="prune:magnitude", metrics={"params": 10}, layers=layers))
    panel.flush()
    matrix = panel.heatmap.matrix()
    assert matrix.shape == (2, 2)
    assert list(matrix[:, -1]) == pytest.approx([0.8, 0.79])
    assert panel.heatmap.stages[-1] == "prune:magnitude"


def test_plot_axes_have_no_si_prefix_and_empty_plots_show_0_to_1(window) -> None:
    for plot in window.run_panel.plots():
        for name in ("left", "bottom"):
            assert plot.plot.getAxis(name).autoSIPrefix is False
    sweeps = window.view("sweeps")
    for plot in (sweeps.curve_plot, sweeps.size_plot, sweeps.latency_plot):
        for name in ("left", "bottom"):
            assert plot.getAxis(name).autoSIPrefix is False
    empty = QtLossPlot()
    (x0, x1), (y0, y1) = empty.plot.getViewBox().viewRange()
    assert (x0, x1, y0, y1) == pytest.approx((0, 1, 0, 1))


def test_save_plots_writes_svg_when_svg_is_chosen(window, qtbot, tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    results = window.results_panel
    results.plot_format.setCurrentIndex(results.plot_format.findData("svg"))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: str(tmp_path)))
    window.run_panel.handle(StepEvent(step=1, epoch=1, losses={"total": 1.0}, lr=0.1,
                                      samples_per_s=1.0, progress=0.1, eta_s=1.0))
    results.save_plots_button.click()
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["accuracy.svg", "bars.svg", "loss.svg", "sparsity.svg"]
    assert "<svg" in (tmp_path / "loss.svg").read_text(encoding="utf-8")[:2000]


# -- what TensorBoard users expect ---------------------------------------------------------------
def test_hover_reads_the_values_under_the_mouse(qtbot) -> None:
    plot = QtLossPlot()
    qtbot.addWidget(plot)
    for step, total in ((10, 2.0), (20, 1.0), (30, 0.5)):
        plot.add(step, {"total": total, "hard": total / 2})
    plot.flush()
    text = plot._hover.show_at(21.0, 1.0)
    assert text == "step 20\ntotal: 1\nhard: 0.5"
    assert plot._hover.label.isVisible()


def test_smoothing_and_log_scale(qtbot) -> None:
    plot = QtLossPlot()
    qtbot.addWidget(plot)
    values = [1.0, 0.0, 1.0, 0.0]
    for step, v in enumerate(values):
        plot.add(step, {"total": v + 0.5})
    plot.smoothing.setValue(50)
    plot.flush()
    _x, shown = plot.curves["total"].getData()
    # Debiased EMA with weight 0.5, computed by hand.
    ema, debias, expected = 0.0, 0.0, []
    for v in values:
        ema = 0.5 * ema + 0.5 * (v + 0.5)
        debias = 0.5 * debias + 0.5
        expected.append(ema / debias)
    assert list(plot.shown_values("total")) == pytest.approx(expected)
    assert len(shown) == 4
    plot.log_box.setChecked(True)
    assert plot.plot.getViewBox().state["logMode"][1] is True


def test_results_overlays_the_loss_of_several_runs(make_window, qtbot) -> None:
    window = make_window()
    window.state.set(("training", "epochs"), 1)
    for _ in range(2):
        with qtbot.waitSignal(window.run_ended, timeout=20000):
            assert window.start_run()
    results = window.results_panel
    results.run_list.selectAll()
    assert len(results.selected()) == 2
    results.loss_curves.flush()
    assert len(results.loss_curves.runs) == 2
    assert all(len(xs) > 1 for _name, xs, _ys in results.loss_curves.runs)


# -- the real engine: Export after a pipeline writes the final stage ----------------------------
@pytest.mark.slow
def test_export_after_prune_writes_the_pruned_model_and_verifies_it(qtbot, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    from kdgui.core.config import ExperimentConfig, demo_config
    from kdgui.engine import jobs

    data = demo_config().model_dump(mode="json")
    data["training"]["epochs"] = 1
    data["compression"]["steps"] = [{"kind": "prune", "method": "magnitude",
                                     "params": {"sparsity": 0.8}}]
    run_dir = tmp_path / "run"
    events = list(jobs.run(ExperimentConfig.model_validate(data), run_dir))
    assert events[-1].kind == "finished", events[-1]
    dialog = QtExportDialog(str(run_dir))
    qtbot.addWidget(dialog)
    assert dialog.stage_combo.currentData() == "final"
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("onnx"))
    dialog.path_edit.setText(str(tmp_path / "out"))
    dialog.export_button.click()
    qtbot.waitUntil(lambda: bool(dialog.records or dialog.error_data), timeout=180000)
    assert dialog.error_data is None, dialog.error_data
    record = dialog.records[0]
    assert record["verified"] is True and "✓ verified" in dialog.result_label.text()
    assert "prune:magnitude" in dialog.result_label.text()
    weights = [numpy_helper.to_array(t) for t in onnx.load(record["path"]).graph.initializer]
    matrices = np.concatenate([w.ravel() for w in weights if w.ndim >= 2])
    assert (matrices == 0).mean() > 0.7  # the pruned model, not the dense student


# -- 12.7: the explorer and sensitivity views follow the selected run, with its own config ------
def _two_runs(window, qtbot) -> tuple[Path, Path]:
    """Run A on 300 digits, run B on 200 digits stopped early (fake engine)."""
    paths = []
    for limit in (300, 200):
        window.state.set(("data", "limit"), limit)
        window.state.set(("training", "epochs"), 1)
        with qtbot.waitSignal(window.run_ended, timeout=20000):
            assert window.start_run()
        paths.append(Path(window.run_panel.run_dir))
    summary = json.loads((paths[1] / "summary.json").read_text(encoding="utf-8"))
    summary["stopped"] = True  # as a run stopped from the window leaves it
    (paths[1] / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    window.state.set(("data", "limit"), 100)  # the window's config has moved on since
    return paths[0], paths[1]


def _select(results, path: Path) -> None:
    for i in range(results.run_list.count()):
        item = results.run_list.item(i)
        if Path(item.data(0x0100)) == path.resolve():
            results.run_list.clearSelection()
            item.setSelected(True)
            return
    raise AssertionError(f"{path} is not listed")


def test_explorer_follows_the_selected_run_with_its_own_data(make_window, qtbot) -> None:
    window = make_window()
    run_a, run_b = _two_runs(window, qtbot)
    explorer = window.view("explorer")
    seen = []

    def loader(source):
        seen.append((source.run_dir, source.config.data.limit))
        raise RuntimeError("no torch in this test")

    explorer._loader = loader
    window.show_panel("results")
    _select(window.results_panel, run_a)
    assert Path(explorer.source.run_dir) == run_a.resolve()
    assert run_a.name in explorer.source_label.text()
    window.show_panel("explorer")
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen[-1] == (str(run_a.resolve()), 300)  # run A's data, not the window's (100)
    window.show_panel("results")
    _select(window.results_panel, run_b)
    assert "stopped" in explorer.source_label.text()
    window.show_panel("explorer")
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    assert seen[-1] == (str(run_b.resolve()), 200)


def test_sensitivity_view_names_its_run_and_uses_its_config(make_window, qtbot) -> None:
    window = make_window()
    run_a, run_b = _two_runs(window, qtbot)
    view = window.view("sensitivity")
    window.show_panel("results")
    _select(window.results_panel, run_b)
    assert Path(view.source.run_dir) == run_b.resolve()
    assert view.source.config.data.limit == 200
    assert run_b.name in view.source_label.text() and "stopped" in view.source_label.text()
    _select(window.results_panel, run_a)
    assert "stopped" not in view.source_label.text()


# -- 12.5: mismatches are found before Run, in the window's words --------------------------------
def _exported_teacher(path: Path, in_channels: int, classes: int) -> str:
    """A small teacher saved with torch.export, as a user would bring one."""
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)).eval()
    batch = torch.export.Dim("batch", min=2, max=1024)
    program = torch.export.export(net, (torch.zeros(2, in_channels, 8, 8),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return str(path)


def _five_class_folder(root: Path) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(5):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(10):
            Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8), "L").save(
                root / f"class{c}" / f"{i}.png")
    return f"folder:{root}"


def _issue_after_check(window, qtbot, teacher: str, data: str = "digits") -> str:
    check = window.setup_check
    window.state.set(("data", "spec"), data)
    window.state.set(("teacher", "path"), teacher)
    qtbot.waitUntil(lambda: check.result is not None and not check.checking
                    and check._key() == check._checked_key, timeout=120000)
    panel = window.panels["teacher"]
    return "" if panel.issues_label.isHidden() else panel.issues_label.text()


@pytest.mark.slow
def test_mismatches_disable_run_with_an_inline_message(make_window, qtbot, tmp_path) -> None:
    # The user's files exist before the window starts (torch.export on this thread while the
    # window's warm-up imports torch._dynamo on its worker would race on the import).
    import torch
    from torch import nn

    rgb = _exported_teacher(tmp_path / "rgb.pt2", 3, 10)
    gray10 = _exported_teacher(tmp_path / "gray10.pt2", 1, 10)
    five = _five_class_folder(tmp_path / "five")
    torch.save(nn.Linear(64, 10).state_dict(), tmp_path / "weights.pt")
    window = make_window(run_fn=None)
    text = _issue_after_check(window, qtbot, rgb)
    assert "takes 3-channel images but digits has 1-channel images" in text
    assert not window.run_panel.start_button.isEnabled()
    assert not window.state.valid and not window.start_run()

    text = _issue_after_check(window, qtbot, gray10, five)
    assert "predicts 10 classes but five has 5" in text
    assert "Choose data with 10 classes" in text and "--" not in text

    text = _issue_after_check(window, qtbot, str(tmp_path / "weights.pt"))
    assert "only weights" in text and "1 · Teacher" in text and "--arch" not in text

    text = _issue_after_check(window, qtbot, str(tmp_path / "missing.pt"))
    assert "does not exist" in text
    assert not window.run_panel.start_button.isEnabled()

    text = _issue_after_check(window, qtbot, "demo")
    assert text == "" and window.state.valid
    assert window.run_panel.start_button.isEnabled()


def test_engine_flags_become_window_words() -> None:
    from kdgui.gui.qt_setup_check import setup_issues, window_words

    fix = ("Set the teacher's num_classes to 5 (--num-classes) or pick a checkpoint/head "
           "trained for this dataset")
    assert "--" not in window_words(fix)
    assert window_words("Only if you trust its source, pass --trust") == \
        "Only if you trust its source, tick 'Trust this file' in 1 · Teacher"
    [issue] = setup_issues({"ok": False, "part": "teacher", "teacher_classes": 10,
                            "data_classes": 5, "data_name": "mnist",
                            "error": {"what": "x", "fix": fix}})
    assert issue.path == ("teacher", "path")
    assert "10 classes" in issue.fix and "set the teacher's num_classes to 5" not in issue.fix


def test_a_failed_load_clears_the_teacher_table_and_declined_trust_says_what_to_do(
        window, qtbot) -> None:
    panel = window.panels["teacher"]
    panel.summary.show_summary({"params": 10, "layers": [
        {"name": "old.conv", "type": "Conv2d", "out_shape": [8], "params": 10, "macs": 1}]})
    assert panel.summary.table.rowCount() == 1
    errors = []
    panel.error.connect(errors.append)
    panel.confirm_trust = lambda *_a: False
    panel._on_inspect_error({"type": "TrustRequired", "what": "this file is a pickle",
                             "fix": "Only if you trust its source, pass --trust"})
    assert panel.summary.table.rowCount() == 0
    assert "--trust" not in errors[-1]["fix"] and "Trust this file" in errors[-1]["fix"]


def test_run_folders_are_named_after_the_data(window) -> None:
    data = window.panels["data"]
    data.spec_combo.setEditText("mnist:/data/mnist")
    data._spec_edited()  # as pressing Enter in the field does
    assert window.state.get(("name",)) == "mnist"
    data.spec_combo.setEditText("folder:/photos/flowers/")
    data._spec_edited()
    assert window.state.get(("name",)) == "flowers"
    window.state.set(("name",), "my-study")  # a name the user chose stays
    data.spec_combo.setEditText("cifar10:data")
    data._spec_edited()
    assert window.state.get(("name",)) == "my-study"


def test_heatmap_cells_tell_their_value_on_hover(window) -> None:
    heatmap = window.run_panel.heatmap
    heatmap.add(["conv", "fc"], np.array([0.1, 0.2]), "distill", 10, "step")
    heatmap.add(["conv", "fc"], np.array([0.5, 0.8]), "distill", 20, "step")
    heatmap.flush()
    assert heatmap._hover.show_at(20.2, 1.5) == "fc\nstep 20 (distill)\nsparsity 80.0% zeros"
    assert heatmap._hover.show_at(9.0, 0.2) == "conv\nstep 10 (distill)\nsparsity 10.0% zeros"
    assert heatmap._hover.show_at(40.0, 0.2) is None


def test_sensitivity_cells_tell_their_value_on_hover(window) -> None:
    view = window.view("sensitivity")
    view.show_result({"layers": ["conv", "fc"], "ratios": [0.5, 0.9], "baseline": 0.95,
                      "accuracy_drop": [[0.01, 0.05], [0.0, 0.30]], "model": "student"})
    assert view.cell_text(1.5, 1.2) == "fc pruned to 90%: −30.00 accuracy points"
    assert view.cell_text(3.0, 0.0) is None


@pytest.mark.parametrize("size", [(1280, 800), (1024, 640)])
def test_presentation_mode_cuts_off_nothing(make_window, qtbot, tmp_path, size) -> None:
    from kdgui.gui.presentation import set_presentation_mode

    window = make_window()
    window.state.set(("training", "epochs"), 2)
    with qtbot.waitSignal(window.run_ended, timeout=20000):
        assert window.start_run()
    for name, metrics in PIPELINE.items():
        window.run_panel.bars.set_stage(name, metrics)
    window.resize(*size)
    window.presentation_action.setChecked(True)
    window.toggle_presentation()
    try:
        for key in ("run", "results"):
            window.show_panel(key)
            qtbot.wait(300)
            window.grab().save(str(tmp_path / f"{key}.png"))  # what a person would see
            panel = window.panels[key]
            assert panel.scroll.horizontalScrollBar().maximum() == 0, key  # nothing off right
        for plot in window.run_panel.plots():
            plot.flush()
            title = plot.plot.titleLabel
            shown = title.item.boundingRect().width()
            assert shown <= plot.plot.getViewBox().width() + 2, plot._full_title
        table = window.results_panel.compare
        header = table.horizontalHeader()
        for column in range(table.columnCount()):
            text = table.horizontalHeaderItem(column).text()
            needed = header.fontMetrics().horizontalAdvance(text)
            assert header.sectionSize(column) >= needed, text  # the run's name, whole
        assert table.verticalHeader().defaultSectionSize() >= table.fontMetrics().height()
    finally:
        window.presentation_action.setChecked(False)
        set_presentation_mode(window, False)


def test_models_notices_have_no_terminal_colour_codes(window) -> None:
    models = window.view("models")
    models._set_notice("\x1b[31mCannot show this model\x1b[0m: \\x1b[1mnetron\\x1b[0m failed")
    assert models.notice.text() == "Cannot show this model: netron failed"


@pytest.mark.parametrize("stages", [2, 3, 5])
def test_bar_value_labels_never_overlap(qtbot, stages) -> None:
    bars = QtBars()
    qtbot.addWidget(bars)
    bars.resize(500, 300)
    bars.show()
    qtbot.waitExposed(bars)
    for name in list(PIPELINE)[:stages]:
        bars.set_stage(name, PIPELINE[name])
    bars.flush()
    qtbot.wait(50)
    bars.plot_widget.viewport().repaint()
    rects = [item.sceneBoundingRect() for item in bars._items if hasattr(item, "textItem")]
    assert len(rects) == 5 * stages
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.intersects(b), (a, b)


def test_error_messages_use_window_words_not_cli_flags(window) -> None:
    window.show_error({"what": "this file is a pickle",
                       "fix": "Only if you trust its source, pass --trust (or set teacher.trust)"})
    assert "--trust" not in window.errors[-1]["fix"]
    assert "Trust this file" in window.error_box.informativeText()
