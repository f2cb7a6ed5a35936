"""The Results list shows the window's runs root only, never ./runs of the working directory."""

from __future__ import annotations

from pathlib import Path


def _fake_run_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("name: elsewhere\n")
    (path / "metrics.jsonl").write_text("")
    return path


def test_results_list_ignores_runs_in_the_working_directory(make_window, tmp_path: Path) -> None:
    stray = _fake_run_folder(Path.cwd() / "runs" / "20260101-000000-stray")
    mine = _fake_run_folder(tmp_path / "runs" / "20260101-000001-mine")
    window = make_window()
    items = window.results_panel.run_list
    listed = [Path(items.item(i).data(0x0100)) for i in range(items.count())]
    assert listed == [mine.resolve()]
    assert stray.resolve() not in listed


def test_changing_the_runs_root_drops_the_old_roots_runs(make_window, tmp_path: Path) -> None:
    _fake_run_folder(tmp_path / "runs" / "20260101-000001-old")
    other = _fake_run_folder(tmp_path / "other" / "20260101-000002-new")
    window = make_window()
    window.results_panel.set_runs_root(tmp_path / "other")
    items = window.results_panel.run_list
    assert [Path(items.item(i).data(0x0100)) for i in range(items.count())] == [other.resolve()]
