"""The live plots' x axes span the planned run from its start (RunStarted's epochs and steps):
each change of a view range lays both axes out again on the UI thread (several ms holding the
GIL the training needs), so within the plan the x range must not move as points arrive; data
past the plan (a fine-tuning stage) still widens it."""

from __future__ import annotations

import numpy as np

from kdgui.core.config import demo_config
from kdgui.core.events import StepEvent
from kdgui.gui.qt_accuracy_plot import QtAccuracyPlot
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_loss_plot import QtLossPlot
from kdgui.gui.qt_run_panel import QtRunPanel
from kdgui.gui.qt_sparsity_heatmap import QtSparsityHeatmap

LAYERS = [f"block{i}.conv" for i in range(6)]


def _shown(plot, qtbot) -> None:
    qtbot.addWidget(plot)
    plot.resize(500, 300)
    plot.show()
    qtbot.waitExposed(plot)


def _x_range(plot, qtbot) -> tuple[float, float]:
    plot.flush()
    qtbot.wait(1)  # the paint, where pyqtgraph fits its auto range
    x0, x1 = plot.plot.getViewBox().viewRange()[0]
    return round(x0, 6), round(x1, 6)


def test_the_loss_plot_spans_the_planned_steps_from_the_first_point(qtbot) -> None:
    plot = QtLossPlot()
    _shown(plot, qtbot)
    plot.plan_x(600)
    ranges = []
    for step in [1, *range(10, 601, 10)]:
        plot.add(step, {"total": 2.0 / (1 + step / 50), "hard": 1.0 / (1 + step / 50)})
        ranges.append(_x_range(plot, qtbot))
    assert len(set(ranges)) == 1, sorted(set(ranges))  # without a plan: 10 different ranges
    x0, x1 = ranges[0]
    assert x0 <= 1 and 600 <= x1 <= 700  # the plan with a little headroom, from 0
    assert x0 >= -0.05 * 600  # no negative steps shown (the pen's padding counted as data)
    for step in range(610, 801, 10):  # a fine-tuning stage past the plan: the range grows
        plot.add(step, {"total": 0.1, "hard": 0.05})
    assert _x_range(plot, qtbot)[1] >= 800
    plot.clear()  # a new run forgets the plan
    plot.add(1, {"total": 1.0})
    plot.add(10, {"total": 0.5})
    assert _x_range(plot, qtbot)[1] < 100


def test_the_accuracy_plot_spans_the_planned_epochs(qtbot) -> None:
    plot = QtAccuracyPlot()
    _shown(plot, qtbot)
    plot.plan_x(20)
    ranges = []
    for epoch in range(1, 21):
        plot.add(1 - 0.5 / (epoch + 1), 1 - 0.6 / (epoch + 1), "distill")
        ranges.append(_x_range(plot, qtbot))
    assert len(set(ranges)) == 1, sorted(set(ranges))
    assert ranges[0][0] <= 1 and 20 <= ranges[0][1] <= 23
    for _ in range(5):  # fine-tuning after pruning: epochs 21-25
        plot.add(0.9, 0.9, "prune")
    assert _x_range(plot, qtbot)[1] >= 25


def _image_columns(heatmap: QtSparsityHeatmap) -> tuple[float, float]:
    rect = heatmap.image.mapRectToParent(heatmap.image.boundingRect())
    return rect.left(), rect.right()


def test_the_heatmap_keeps_its_x_range_while_columns_fill_the_plan(qtbot) -> None:
    heatmap = QtSparsityHeatmap()
    _shown(heatmap, qtbot)
    heatmap.plan_x(30, "epoch")
    ranges = []
    for epoch in range(1, 31):
        heatmap.add(LAYERS, np.linspace(0, epoch / 30, len(LAYERS)), "distill")
        ranges.append(_x_range(heatmap, qtbot))
        # The image spans the data's columns only (one unit each), not the planned run.
        assert _image_columns(heatmap) == (0.5, epoch + 0.5)
    assert len(set(ranges)) == 1, sorted(set(ranges))
    assert ranges[0][0] <= 0.5 and 30.5 <= ranges[0][1] <= 32
    heatmap.add(LAYERS, np.ones(len(LAYERS)), "prune")  # past the plan: the view widens
    assert _x_range(heatmap, qtbot)[1] >= 31.5
    # Columns of steps (each epoch's first step, then every 10th) against the step plan.
    heatmap.clear()
    heatmap.plan_x(30, "epoch")
    heatmap.plan_x(600, "step")
    ranges = []
    for step in [1, *range(10, 601, 10)]:
        heatmap.add(LAYERS, np.full(len(LAYERS), step / 600), "distill", step, "step")
        ranges.append(_x_range(heatmap, qtbot))
    assert len(set(ranges[1:])) == 1, sorted(set(ranges))  # the 2nd column fixes the spacing
    assert ranges[-1][0] <= 1 - 4.5 and ranges[-1][1] >= 600


def _run_panel(qtbot, epochs: int) -> tuple:
    """The demo config for ``epochs`` and a shown, reset Run panel observing it."""
    config = demo_config()
    config.training.epochs = epochs
    panel = QtRunPanel(QtConfigState(config))
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    qtbot.waitExposed(panel)
    panel.reset()
    return config, panel


def test_the_run_panel_plans_the_axes_from_run_started(qtbot, tmp_path) -> None:
    """RunStarted's epochs × steps per epoch: the loss plot's x range is the planned run's from
    the first step (steps are global and 1-based), the accuracy plot's the planned epochs."""
    from tests.gui.fake_engine import fake_run

    config, panel = _run_panel(qtbot, epochs=3)
    loss_ranges, accuracy_ranges, heatmap_ranges = set(), set(), set()
    for ev in fake_run(config, tmp_path / "run", step_s=0.0, steps_per_epoch=40):
        panel.handle(ev)
        if isinstance(ev, StepEvent):
            loss_ranges.add(_x_range(panel.loss_plot, qtbot))
            heatmap_ranges.add(_x_range(panel.heatmap, qtbot))
        elif panel.accuracy_plot.x.view().size:
            accuracy_ranges.add(_x_range(panel.accuracy_plot, qtbot))
    assert len(loss_ranges) == 1 and len(heatmap_ranges) <= 2, (loss_ranges, heatmap_ranges)
    (x0, x1), = loss_ranges
    assert x0 <= 1 and 120 <= x1 <= 140
    assert len(accuracy_ranges) == 1 and 3 <= next(iter(accuracy_ranges))[1] <= 4


def test_a_stopped_runs_plots_fit_what_it_trained_not_the_plan(qtbot, tmp_path) -> None:
    """Stopped after 2 of 20 planned epochs, the curves fill their plots again (with the plan
    kept, they sat squeezed against the left tenth of an axis for the epochs never trained)."""
    from kdgui.core.events import EpochEvent, RunControl, RunFinished
    from tests.gui.fake_engine import fake_run

    config, panel = _run_panel(qtbot, epochs=20)
    control = RunControl()
    during = None
    for ev in fake_run(config, tmp_path / "run", control=control, step_s=0.0,
                       steps_per_epoch=40):
        panel.handle(ev)
        if isinstance(ev, EpochEvent) and ev.epoch == 2:
            during = (_x_range(panel.loss_plot, qtbot), _x_range(panel.accuracy_plot, qtbot))
            control.stop()
    assert isinstance(ev, RunFinished) and ev.stopped
    (_, loss_during), (_, accuracy_during) = during
    assert loss_during >= 800 and accuracy_during >= 20  # the plan: 20 epochs of 40 steps
    _, loss_after = _x_range(panel.loss_plot, qtbot)
    _, accuracy_after = _x_range(panel.accuracy_plot, qtbot)
    last_step = panel.loss_plot.steps["total"].view()[-1]
    assert last_step <= loss_after <= 2 * last_step, (last_step, loss_after)
    assert 2 <= accuracy_after <= 5, accuracy_after
