"""The run folder's one owner (kdgui.core.run_folders): layout, finding, safe names, reading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdgui.core import run_folders as rf
from kdgui.core.components.export import export_formats
from kdgui.core.config import demo_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import ArtifactEvent, LogEvent, RunFinished


def _write_run(folder: Path, *, summary: dict | None = None, events: list[dict] | None = None
               ) -> Path:
    """A run folder the way the engine writes one."""
    run = rf.RunFolder.create(folder, demo_config())
    for event in events or [{"event": "started"}]:
        with rf.metrics_path(folder).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
    if summary is not None:
        run.write_summary(summary)
    run.close()
    return folder


# -------------------------------------------------------------------------------------- layout


def test_layout_names_match_the_documented_folder(tmp_path: Path) -> None:
    run = tmp_path / "r"
    assert rf.config_path(run) == run / "config.yaml"
    assert rf.metrics_path(run) == run / "metrics.jsonl"
    assert rf.summary_path(run) == run / "summary.json"
    assert rf.checkpoint_path(run) == run / "checkpoints" / "last.pt"
    assert rf.student_path(run) == run / "student" / "student.safetensors"
    assert rf.stages_dir(run) == run / "stages"
    doc = (Path(__file__).parents[2] / "docs" / "run-folder.md").read_text(encoding="utf-8")
    for name in (rf.CONFIG_FILE, rf.METRICS_FILE, rf.SUMMARY_FILE, rf.CHECKPOINT_FILE,
                 rf.PREVIOUS_CHECKPOINT_FILE,
                 rf.STUDENT_FILE, rf.TAGS_FILE, rf.LESSON_FILE):
        assert f"`{name}`" in doc, name


def test_export_paths_use_the_format_tables_suffixes(tmp_path: Path) -> None:
    """One table: the run folder's export file names are the declared suffixes, also in docs."""
    doc = (Path(__file__).parents[2] / "docs" / "run-folder.md").read_text(encoding="utf-8")
    for fmt in export_formats():
        path = rf.export_path(tmp_path, fmt.name)
        assert path == tmp_path / "export" / f"model{fmt.suffix}"
        assert f"`model{fmt.suffix}`" in doc, fmt.name
    assert rf.export_path(tmp_path, "torchscript").name == "model.ts"
    with pytest.raises(ConfigError, match="unknown exporter 'zip'"):
        rf.export_path(tmp_path, "zip")


def test_stage_folders_sort_numerically_and_skip_unfinished(tmp_path: Path) -> None:
    stages = rf.stages_dir(tmp_path)
    for name in (rf.stage_folder_name(10, "quantize:fake"), rf.stage_folder_name(2, "prune"),
                 ".3_lowrank.tmp", "9_no-metrics"):
        (stages / name).mkdir(parents=True)
    for done in ("10_quantize-fake", "2_prune", ".3_lowrank.tmp"):
        (stages / done / rf.STAGE_METRICS_FILE).write_text("{}")
    assert [p.name for p in rf.stage_dirs(tmp_path)] == ["2_prune", "10_quantize-fake"]


# ------------------------------------------------------------------------------ finding runs


def test_run_folder_definition_and_listing(tmp_path: Path) -> None:
    done = _write_run(tmp_path / "runs" / "a", summary={"stopped": False})
    only_config = tmp_path / "runs" / "b"
    only_config.mkdir()
    rf.config_path(only_config).write_text("name: b\n")
    compress_out = tmp_path / "runs" / "c"
    (compress_out / "stages").mkdir(parents=True)  # kdgui compress: models but no config
    assert rf.is_run_folder(done) and not rf.is_run_folder(only_config)
    assert not rf.is_run_folder(compress_out) and rf.holds_models(compress_out)
    assert rf.find_runs(tmp_path / "runs") == [done]
    assert rf.find_runs(done) == [done]
    assert rf.find_runs(tmp_path / "runs", models=True) == [compress_out]
    assert rf.find_runs(tmp_path / "missing") == []
    nested = _write_run(tmp_path / "runs" / "sweep" / "01_x")
    assert sorted(rf.find_run_folders(tmp_path / "runs")) == sorted([done, nested])


# ---------------------------------------------------------------- safe names (issue 13 item 3)


def test_a_traversing_name_stays_inside_the_runs_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "runs"
    path = rf.new_run_dir(root, "x/../../../ESCAPED")
    assert path.parent == root
    assert path.resolve().parent == root.resolve()
    assert "/" not in path.name and path.name.endswith("-x-..-..-..-ESCAPED")
    rf.RunFolder.create(path, demo_config()).close()
    escaped = [p for p in tmp_path.rglob("*ESCAPED*") if root not in p.parents]
    assert escaped == []
    for name in ("..", ".", "../..", "/etc/passwd", "C:\\Windows\\x", ""):
        made = rf.new_run_dir(root, name)
        assert made.parent == root and not made.name.endswith("."), name


def test_a_huge_name_is_capped(tmp_path: Path) -> None:
    path = rf.new_run_dir(tmp_path, "n" * 50_000_000)
    stamp = len("YYYYmmdd-HHMMSS-")
    assert len(path.name) == stamp + rf.MAX_NAME_CHARS


def test_ensure_inside_refuses_paths_and_links_that_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    assert rf.ensure_inside(root, root / "ok") == (root / "ok").resolve()
    with pytest.raises(ConfigError, match="outside the runs folder"):
        rf.ensure_inside(root, root / ".." / "elsewhere")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    with pytest.raises(ConfigError, match="outside the runs folder"):
        rf.ensure_inside(root, root / "link" / "run")


def test_names_taken_in_the_same_second_get_a_suffix(tmp_path: Path) -> None:
    first = rf.new_run_dir(tmp_path, "demo")
    first.mkdir()
    second = rf.new_run_dir(tmp_path, "demo")
    assert second != first and second.name.startswith(first.name)


# ------------------------------------------------------------------- writing and reading back


def test_write_then_read_back_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    run = rf.RunFolder.create(folder, demo_config())
    run.log_event(ArtifactEvent(what="student", path=str(rf.student_path(folder))))
    run.log_event(LogEvent(level="info", message="hello"))
    run.close()
    with rf.metrics_path(folder).open("a", encoding="utf-8") as fh:
        fh.write('{"event": "step", "ste')  # a line cut by a crash
    record = rf.read_run(folder)
    assert [e.kind for e in record.events] == ["artifact", "log"]
    assert record.bad_lines == 1 and record.summary == {} and not record.completed
    assert rf.run_status(folder) == "incomplete"
    run = rf.RunFolder.open_existing(folder)
    run.write_summary({"student": {"accuracy": 0.9}, "stopped": False})
    record = rf.read_run(folder)
    assert record.completed and record.summary["student"]["accuracy"] == 0.9
    assert rf.run_status(folder) == "completed"


def test_summary_comes_from_the_finished_event_when_summary_json_is_missing(tmp_path: Path
                                                                            ) -> None:
    folder = tmp_path / "r"
    run = rf.RunFolder.create(folder, demo_config())
    run.log_event(RunFinished(run_dir=str(folder), summary={"stopped": True}, stopped=True))
    run.close()
    record = rf.read_run(folder)
    assert record.summary == {"stopped": True} and not record.completed


def test_status_of_failed_stopped_and_damaged_runs(tmp_path: Path) -> None:
    failed = _write_run(tmp_path / "f", events=[{"event": "started"}, {"event": "failed"}])
    stopped = _write_run(tmp_path / "s", summary={"stopped": True})
    assert rf.run_status(failed) == "failed" and rf.last_event(failed) == "failed"
    assert rf.run_status(stopped) == "stopped"
    rf.summary_path(failed).write_text("{not json")
    assert rf.read_summary(failed) is None
    with pytest.raises(ConfigError, match="cannot read"):
        rf.read_run(failed)
    with pytest.raises(ConfigError, match="not a run folder"):
        rf.read_run(tmp_path / "nothing")


def test_create_refuses_a_folder_that_holds_a_run(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "r")
    with pytest.raises(ConfigError, match="already holds a run"):
        rf.RunFolder.create(folder, demo_config())
    with pytest.raises(ConfigError, match=r"no config\.yaml"):
        rf.RunFolder.open_existing(tmp_path / "empty")
