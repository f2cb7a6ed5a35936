"""Issue 13 item 3: a run's name cannot put its folder outside the runs root (end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdgui.cli.main import main
from kdgui.core.run_folders import find_runs, read_run


def test_a_traversing_name_writes_the_run_inside_the_runs_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("KDGUI_RUNS", raising=False)  # the default root: ./runs of the cwd
    cfg = work / "c.yaml"
    cfg.write_text('name: "x/../../../ESCAPED"\ntraining:\n  epochs: 1\n', encoding="utf-8")

    assert main(["run", str(cfg), "--quiet"]) == 0

    runs = find_runs(work / "runs")
    assert len(runs) == 1 and runs[0].parent == work / "runs"
    assert runs[0].name.endswith("-x-..-..-..-ESCAPED")
    assert read_run(runs[0]).completed
    outside = [p for p in tmp_path.rglob("*ESCAPED*") if (work / "runs") not in p.parents]
    assert outside == []

