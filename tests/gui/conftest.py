"""Fixtures for the window tests: an offscreen window with private settings and runs folder."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from kdgui.gui.main_window import QtMainWindow
from kdgui.gui.qt_worker import wait_for_workers
from tests.gui.fake_engine import fake_run


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_ui_thread() -> Iterator[None]:
    """No cyclic garbage collection while a window test runs; collect on this (the UI) thread
    before and after, as the app does with its UI-thread collector.

    Collected on a worker thread (which allocates a lot while torch runs there), a previous
    test's widget is destroyed there while the UI thread deletes widgets too: the two block
    each other on Qt's object lock and the GIL (seen as a hang in the Models view tests)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        QApplication.processEvents()
        gc.collect()
        gc.enable()


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, tmp_path: Path, settings: QSettings):
    """Make windows with a chosen engine; every window is closed and no run is left behind.

    At teardown every background worker (runs, probes, model loading, the engine warm-up) is
    waited for and its queued values delivered while the windows still exist: a worker left
    running would otherwise import torch or emit into the next test while it starts.
    """
    made: list[QtMainWindow] = []

    def make(run_fn=fake_run, **kwargs) -> QtMainWindow:
        window = QtMainWindow(run_fn=run_fn, settings=settings,
                              runs_root=tmp_path / "runs", **kwargs)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        made.append(window)
        return window

    yield make
    for window in made:
        if window.runner.running:
            window.runner.stop()
            assert window.runner.wait(10000), "a run did not stop within 10 s"
        window.close()
    assert wait_for_workers(30000), "a background worker was still running 30 s after the test"
    QApplication.processEvents()


@pytest.fixture
def window(make_window) -> Iterator[QtMainWindow]:
    yield make_window()
