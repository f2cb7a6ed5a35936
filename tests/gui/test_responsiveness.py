"""What keeps the window responsive during a run (issue 12's responsiveness goals), tested as
mechanisms, never by the clock: the frame clock redraws one plot per frame within a budget,
events cross threads in batches, the set-up check waits while a run loads the same things, and
the start-up heap is frozen so a garbage collection never walks it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kdgui.core.config import demo_config
from kdgui.core.events import EpochEvent, StepEvent
from kdgui.gui.qt_accuracy_plot import QtAccuracyPlot
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_loss_plot import QtLossPlot
from kdgui.gui.qt_plot_base import UI_BUDGET, frame_clock
from kdgui.gui.qt_run_panel import QtRunPanel
from kdgui.gui.qt_setup_check import QtSetupCheck
from kdgui.gui.qt_sparsity_heatmap import QtSparsityHeatmap
from kdgui.gui.qt_worker import QtWorker

ROOT = Path(__file__).resolve().parents[2]


def _step(step: int) -> StepEvent:
    return StepEvent(step=step, epoch=1, losses={"total": 1.0 / step, "hard": 0.5 / step},
                     lr=0.1, samples_per_s=1.0, progress=step / 1000, eta_s=1.0,
                     layer_names=["a", "b"], sparsity=[0.0, 0.5])


def test_the_frame_clock_redraws_one_plot_per_frame_and_keeps_to_its_budget(qtbot) -> None:
    clock = frame_clock()
    clock._queue.clear()  # ticks are driven by hand here
    plots = [QtLossPlot(), QtAccuracyPlot(), QtSparsityHeatmap()]
    for plot in plots:
        qtbot.addWidget(plot)

    def feed() -> None:
        plots[0].add(1, {"total": 1.0})
        plots[1].add(0.5, 0.5, "distill")
        plots[2].add(["a", "b"], [0.0, 0.5], "distill", 1.0, "step")

    feed()
    assert clock.pending() == plots and all(p.redraw_count == 0 for p in plots)
    # Fresh plots (nothing drawn since cleared) draw at once, budget or not — one per frame.
    clock.spend(10.0)
    for drawn in range(1, 4):
        assert clock.tick() in plots
        assert sum(p.redraw_count for p in plots) == drawn
    assert clock.tick() is None and not clock.pending()
    # Drawn once, they wait for the budget: a redraw that cost c buys c / UI_BUDGET of quiet.
    feed()
    clock._quiet_until = 0.0
    before = time.perf_counter()
    clock.spend(0.004)
    assert clock._quiet_until >= before + 0.004 / UI_BUDGET
    clock._quiet_until = before + 3600  # still quiet
    assert clock.tick() is None and all(p.redraw_count == 1 for p in plots)
    clock._quiet_until = 0.0  # the quiet time has passed: the longest-waiting plot draws first
    assert clock.tick() is plots[0]
    assert [p.redraw_count for p in plots] == [2, 1, 1]
    # A plot cleared (a new run) is fresh again: its first point does not wait for the budget.
    plots[2].clear()
    plots[2].add(["a"], [0.1], "distill", 1.0, "step")
    clock.spend(10.0)
    assert clock.tick() is plots[2]
    assert UI_BUDGET <= 0.05
    for plot in plots:
        plot.flush()


def test_a_burst_of_step_events_costs_a_handful_of_redraws(qtbot) -> None:
    panel = QtRunPanel(QtConfigState(demo_config()))
    qtbot.addWidget(panel)
    panel.show()
    clock = frame_clock()
    clock._queue.clear()
    panel.reset()
    for step in range(1, 1001):
        panel.handle(_step(step))
    panel.handle(EpochEvent(epoch=1, step=1000, train_loss=0.1, train_accuracy=0.9,
                            val_accuracy=0.9, teacher_accuracy=0.95, agreement=0.9,
                            layer_names=["a", "b"], sparsity=[0.0, 0.5], duration_s=1.0))
    redraws = sum(p.redraw_count for p in panel.plots())
    assert redraws == 0  # handling events only marks plots dirty
    for _ in range(10):  # ten frames
        clock.tick()
    counts = [p.redraw_count for p in panel.plots()]
    assert counts[:3] == [1, 1, 1]  # 1000 events: each plot drawn once (fresh), not per event
    assert max(counts) == 1
    assert panel.loss_plot.curves["total"].getData()[0].size == 1000
    panel.flush()


def test_a_worker_hands_over_its_values_in_batches(qtbot) -> None:
    """Values queue up on the worker's thread; one drain on the UI thread delivers them all,
    in order (no queued signal per value)."""
    got: list[int] = []

    def values():
        yield from range(500)

    worker = QtWorker(values, needs_engine=False)
    worker._timer.setInterval(60_000)  # only the explicit drains below deliver
    worker.yielded.connect(got.append)
    worker.start()
    assert worker._thread.wait(10_000)
    assert got == []
    assert worker.drain() == 501  # 500 values and the return value, in one wake-up
    assert got == list(range(500))
    worker.wait()


def test_no_setup_check_starts_while_a_run_holds_it(qtbot) -> None:
    state = QtConfigState(demo_config())
    calls: list[str] = []

    def job(config):
        calls.append(config.data.spec)
        return {"ok": True}

    check = QtSetupCheck(state, job=job)
    check.hold(True)  # a run is loading the same data and models
    check.check()
    assert not check.checking and calls == []
    check.hold(False)  # the run ended: the pending check starts (after its debounce)
    qtbot.waitUntil(lambda: calls == ["digits"] and not check.checking, timeout=10_000)
    # A run that started is the answer for its config: nothing is left to check.
    state.set(("student", "width"), 0.5)
    check.hold(True)
    check.passed(state.config)
    check.hold(False)
    assert check._checked_key == check._key() and not check._timer.isActive()
    assert calls == ["digits"]


def test_the_start_up_heap_is_frozen_once_torch_is_in() -> None:
    """After :func:`ui_thread.freeze_start_up`, a collection walks only what was made since (in a
    fresh process: freezing is for the application, not for the test session); and the window
    process hands the GIL to its UI thread within half a millisecond, not CPython's 5 ms."""
    code = textwrap.dedent("""
        import gc, sys
        sys.path.insert(0, %r)
        from PySide6.QtCore import QCoreApplication
        app = QCoreApplication([])
        from kdgui.gui import ui_thread
        assert ui_thread.freeze_start_up() == 0  # not installed: nothing frozen
        import pyqtgraph  # noqa: F401
        assert sys.getswitchinterval() == 0.005
        ui_thread.install()
        assert not gc.isenabled() and ui_thread.installed()
        assert sys.getswitchinterval() == ui_thread.SWITCH_INTERVAL_S == 0.0005
        before = len(gc.get_objects())
        frozen = ui_thread.freeze_start_up()
        after = len(gc.get_objects())
        print(before, frozen, after)
        assert before > 20000 and frozen >= before // 2 and after < before // 20
    """) % str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={"QT_QPA_PLATFORM": "offscreen",
                                              "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_growing_curve_moves_its_axes_in_steps_not_at_every_point(qtbot) -> None:
    """Each move of the view range lays the axes out again and paints twice: a live curve
    keeps its range until the data leaves it (qt_steady_view)."""
    from kdgui.gui.qt_steady_view import held_range

    plot = QtLossPlot()
    qtbot.addWidget(plot)
    plot.resize(500, 300)
    plot.show()
    qtbot.waitExposed(plot)
    moves: list[object] = []
    plot.plot.getViewBox().sigRangeChanged.connect(lambda *_a: moves.append(1))
    for step in range(10, 1010, 10):
        plot.add(step, {"total": 2.0 / (1 + step / 100), "hard": 1.0 / (1 + step / 100)})
        plot.flush()
        qtbot.wait(1)  # the paint, where pyqtgraph fits its auto range
    assert len(moves) <= 15  # 100 points: a plain auto range moves 100 times
    (x0, x1), (y0, y1) = plot.plot.getViewBox().viewRange()
    assert x0 <= 10 and x1 >= 1000 and y0 <= 2.0 / 1.1 and y1 >= 2.0 / 1.1  # all data inside
    # The held range: kept while the data fills it, refitted when the data leaves it.
    assert held_range((0.0, 90.0), [0.0, 150.0], 0) == [0.0, 150.0]
    assert held_range((0.0, 160.0), [0.0, 150.0], 0)[1] >= 160.0 * 1.5
    assert held_range((0.0, 10.0), [0.0, 150.0], 0)[1] < 150.0  # a new, shorter run
    plot.set_log(True)  # the log-scale toggle still fits the data
    plot.flush()
    qtbot.wait(1)
    (_x0, _x1), (ly0, ly1) = plot.plot.getViewBox().viewRange()
    assert ly0 <= -1.04 and ly1 >= 0.26  # log10 of 0.09 … 1.82: all data inside


def test_a_run_is_drained_every_frame_until_its_first_step(make_window, qtbot) -> None:
    """The first live point waits at most a frame; after it, events every 100 ms suffice (each
    wake-up of the UI thread takes the GIL from the training thread)."""
    import functools

    from kdgui.gui.qt_worker import DRAIN_MS, STEADY_DRAIN_MS
    from tests.gui.fake_engine import fake_run

    window = make_window(run_fn=functools.partial(fake_run, step_s=0.01, steps_per_epoch=30))
    window.state.set(("training", "epochs"), 20)
    assert window.start_run()
    worker = window.runner.worker
    assert worker._timer.interval() == DRAIN_MS < STEADY_DRAIN_MS
    qtbot.waitUntil(lambda: window.run_panel.last_step is not None, timeout=10_000)
    assert worker._timer.interval() == STEADY_DRAIN_MS
    with qtbot.waitSignal(window.run_ended, timeout=20_000):
        window.stop_run()


def test_a_planned_run_holds_the_x_range_over_the_plan() -> None:
    """held_range with a plan (RunStarted's epochs × steps): one range from the first point to
    the plan's end, headroom but no growth room; past the plan, the growth rule as before."""
    from kdgui.gui.qt_steady_view import held_range

    first = held_range((1.0, 1.0), None, 0, plan=600.0)
    assert first[0] == 0.0 and 600.0 <= first[1] <= 660.0
    held = first
    for hi in range(10, 601, 10):
        held = held_range((1.0, float(hi)), held, 0, plan=600.0)
        assert held == first
    # The pen's pixel padding (a few px either side of the data) is not data past the plan
    # or below zero.
    assert held_range((-3.0, 603.0), first, 0, plan=600.0) == first
    assert held_range((-2.0, 300.0), None, 0)[0] == 0.0  # was −100: 25 % blank on the left
    assert held_range((-50.0, 300.0), None, 1)[0] < -50.0  # negative data keeps its room
    past = held_range((1.0, 700.0), first, 0, plan=600.0)
    assert past[1] >= 700.0 * 1.4  # fine-tuning past the plan: the growth rule
    assert held_range((1.0, 10.0), None, 0, plan=None)[1] < 50.0  # no plan: as before
