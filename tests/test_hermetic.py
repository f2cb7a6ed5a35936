"""The suite is hermetic (tests/conftest.py): no test sees the clone's ``./runs``, the user's home
or settings, or what another test left behind, so ``bash scripts/demo.sh`` followed by the test
suite in the same clone passes, in either order."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)


def _under(path: str | os.PathLike[str], base: Path) -> bool:
    return Path(path).resolve().is_relative_to(base.resolve())


def _demo_like_run(folder: Path) -> Path:
    """A finished run folder as ``kdgui demo --out runs/demo`` leaves it (the files that make it
    a run folder for the window's list)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": "demo"}), encoding="utf-8")
    (folder / "metrics.jsonl").write_text(json.dumps({"event": "finished"}) + "\n",
                                          encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps({"name": "demo", "stopped": False}),
                                         encoding="utf-8")
    return folder


def test_each_test_runs_in_a_private_cwd_home_and_runs_root(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> None:
    base = tmp_path_factory.getbasetemp()
    cwd = Path.cwd()
    assert _under(cwd, base) and cwd != pytestconfig.invocation_params.dir
    assert not _under(cwd, pytestconfig.rootpath)  # never the clone
    assert list(cwd.iterdir()) == []  # empty: no ./runs, whatever ran before
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        assert _under(os.environ[var], base) and not _under(os.environ[var], cwd), var
    assert Path("~").expanduser() == Path(os.environ["HOME"]) != REAL_HOME
    assert Path(os.environ["KDGUI_RUNS"]) == cwd / "runs" == Path("runs").resolve()


def test_default_qsettings_are_private(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QSettings

    settings = QSettings("kdgui", "KD Studio")  # what the window uses unless given settings
    assert settings.allKeys() == []
    assert _under(settings.fileName(), tmp_path_factory.getbasetemp())
    assert not _under(settings.fileName(), REAL_HOME)


@pytest.mark.parametrize("me", ["first", "second"])
def test_nothing_leaks_between_tests(me: str) -> None:
    """Whichever of the two runs second would see the other's run folder, file and setting."""
    assert not Path("runs").exists() and not (Path.home() / "marker").exists()
    _demo_like_run(Path("runs") / f"{me}-run")
    (Path.home() / "marker").write_text(me)
    try:
        from PySide6.QtCore import QSettings
    except ImportError:
        return
    settings = QSettings("kdgui", "KD Studio")
    assert settings.value("runs_root") is None
    settings.setValue("runs_root", str(Path("runs").resolve()))
    settings.sync()


def test_window_does_not_list_a_run_folder_left_in_the_clone(
    qtbot, tmp_path: Path, hermetic_isolate: Callable[[], Path]
) -> None:
    """The bug this guards against: the demo's ``./runs/demo`` showed in a test's run list.

    A window opened in a 'clone' holding the demo's run folder must not list it: its Results
    list shows the window's own runs root only (it used to list ./runs before the root was set,
    which is how the demo's run leaked into the tests). Then isolate the way every test is
    isolated, run, and check where the run went.
    """
    pytest.importorskip("PySide6")
    from PySide6.QtCore import Qt

    from kdgui.gui.main_window import QtMainWindow
    from tests.gui.fake_engine import fake_run

    clone = tmp_path / "clone"
    _demo_like_run(clone / "runs" / "demo")
    os.chdir(clone)  # hermetic_isolate's monkeypatch restores the cwd at teardown
    leaky = QtMainWindow(run_fn=fake_run)
    qtbot.addWidget(leaky)
    assert leaky.results_panel.run_list.count() == 0  # ./runs is not this window's root
    leaky.close()

    cwd = hermetic_isolate()
    window = QtMainWindow(run_fn=fake_run)
    qtbot.addWidget(window)
    assert window.results_panel.run_list.count() == 0
    assert (cwd / window.runs_root).resolve() == cwd / "runs"
    window.state.set(("training", "epochs"), 1)
    with qtbot.waitSignal(window.run_ended, timeout=20000):
        assert window.start_run()
    assert window.results_panel.run_list.count() == 1
    listed = window.results_panel.run_list.item(0).data(Qt.ItemDataRole.UserRole)
    assert [p.parent.resolve() for p in (cwd / "runs").glob("*/summary.json")] == [Path(listed)]
    assert sorted(p.name for p in (clone / "runs").iterdir()) == ["demo"]  # the clone untouched
    window.close()
