"""The window starts a 2-process run (torchrun, gloo on the CPU) and follows it like any run.

The Processes field of step 4 is the config's ``training.processes``; above 1 the engine's
``run`` job launches torchrun and passes rank 0's events on, so the plots need nothing new.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gui.fake_engine import logged_events

pytestmark = pytest.mark.slow


def test_the_window_runs_two_processes_and_plots_them_live(make_window, qtbot) -> None:
    window = make_window(run_fn=None)  # the real engine
    field = window.panels["distill"].training_form.fields["processes"]
    field.spin.setValue(2)  # as a person types it
    assert window.state.config.training.processes == 2
    window.state.set(("training", "epochs"), 2)
    window.state.set(("training", "log_every"), 5)
    panel = window.run_panel
    with qtbot.waitSignal(window.run_ended, timeout=240000) as ended:
        window.start_run()
        # live points are drawn while the processes still train
        qtbot.waitUntil(lambda: _plotted(panel) > 0, timeout=180000)
        live = _plotted(panel)
        running_then = window.runner.running
    assert ended.args == [True], window.errors
    assert live >= 1 and running_then
    assert "distributed: 2 processes (gloo)" in panel.log.toPlainText()
    logged = logged_events(panel.run_dir)
    sent = [e.step for e in logged if e.kind == "step"]
    assert list(panel.loss_plot.curves["total"].getData()[0]) == sent and sent
    assert len(panel.accuracy_plot.val) == 2
    assert Path(panel.run_dir, "summary.json").is_file()
    assert os.listdir(window.runs_root) == [Path(panel.run_dir).name]  # one run folder
    if os.environ.get("KDGUI_SHOTS"):
        window.panels["distill"].grab().save(os.path.join(os.environ["KDGUI_SHOTS"],
                                                          "distill-processes.png"))
        panel.grab().save(os.path.join(os.environ["KDGUI_SHOTS"], "run-two-processes.png"))


def _plotted(panel) -> int:
    """Points on the run panel's total-loss curve (none before the first redraw)."""
    curve = panel.loss_plot.curves.get("total")
    xs = curve.getData()[0] if curve is not None else None
    return 0 if xs is None else len(xs)
