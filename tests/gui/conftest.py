"""Fixtures for the window tests: an offscreen window with private settings and runs folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kdgui.gui.main_window import QtMainWindow  # noqa: E402
from tests.gui.fake_engine import fake_run  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, tmp_path: Path, settings: QSettings):  # noqa: ANN001
    """Make windows with a chosen engine; every window is closed and no run is left behind."""
    made: list[QtMainWindow] = []

    def make(run_fn=fake_run, **kwargs) -> QtMainWindow:  # noqa: ANN001, ANN003
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
    QApplication.processEvents()


@pytest.fixture
def window(make_window) -> Iterator[QtMainWindow]:  # noqa: ANN001
    yield make_window()
