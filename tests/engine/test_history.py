"""The history index: search, filter, tag, compare, delete; survives restarts and corruption."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from kdgui.core.history import History, HistoryError
from kdgui.core.history_schema import check_db


def make_run(folder: Path, name: str, *, accuracy: float | None = 0.9, temperature: float = 4.0,
             size: int = 1000, stopped: bool = False, failed: bool = False) -> Path:
    """A run folder as the engine writes it (config.yaml, metrics.jsonl, summary.json)."""
    folder.mkdir(parents=True)
    config = {"name": name, "data": {"spec": "digits"}, "teacher": {"path": "demo"},
              "student": {"preset": "cnn-small"}, "distill": {"temperature": temperature,
                                                             "alpha": 0.7},
              "training": {"epochs": 1}, "compression": {"steps": []}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    last = "failed" if failed else "finished"
    (folder / "metrics.jsonl").write_text(json.dumps({"event": "started"}) + "\n"
                                          + json.dumps({"event": last}) + "\n")
    if accuracy is not None and not failed:
        metrics = {"accuracy": accuracy, "params": 10, "nonzero_params": 10, "size_bytes": size,
                   "zip_size_bytes": size // 2, "macs": 5, "latency_ms": 0.1}
        (folder / "summary.json").write_text(json.dumps({
            "name": name, "stopped": stopped, "teacher": {**metrics, "size_bytes": 10 * size},
            "student": metrics, "stages": []}))
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_run(tmp_path / "runs" / "a", "alpha-run", accuracy=0.95, temperature=1.0, size=900)
    make_run(tmp_path / "runs" / "b", "beta-run", accuracy=0.80, temperature=8.0, size=500)
    make_run(tmp_path / "runs" / "sweep" / "00_T=1", "swept", accuracy=0.7, stopped=True)
    make_run(tmp_path / "runs" / "c", "crashed", failed=True)
    return tmp_path / "runs"


def names(records) -> set[str]:
    return {r.name for r in records}


def test_index_search_and_filter(root: Path) -> None:
    with History(root) as h:
        assert h.count() == 4
        assert names(h.search("beta")) == {"beta-run"}
        assert names(h.list(status="completed")) == {"alpha-run", "beta-run"}
        assert names(h.list(status="stopped")) == {"swept"}
        assert names(h.list(status="failed")) == {"crashed"}
        assert names(h.list(min_accuracy=0.85)) == {"alpha-run"}
        assert names(h.list(max_size_bytes=600)) == {"beta-run"}
        assert [r.name for r in h.list(sort="accuracy", status="completed")] == [
            "alpha-run", "beta-run"]
        assert h.get("a").temperature == 1.0
        with pytest.raises(HistoryError):
            h.get("nope")


def test_tags_survive_restart_and_live_in_the_run_folder(root: Path) -> None:
    with History(root) as h:
        h.tag("a", add=["baseline", "lecture-1"])
        h.tag("a", remove=["lecture-1"])
        with pytest.raises(HistoryError):
            h.tag("a", add=["bad,tag"])
    assert json.loads((root / "a" / "tags.json").read_text())["tags"] == ["baseline"]
    with History(root) as h:  # a restart: the same database, opened again
        assert h.rebuilt_from is None
        assert names(h.list(tag="baseline")) == {"alpha-run"}
        assert names(h.search("baseline")) == {"alpha-run"}


def test_new_and_removed_folders_are_picked_up_on_open(root: Path) -> None:
    History(root).close()
    make_run(root / "d", "delta-run")
    import shutil

    shutil.rmtree(root / "b")
    with History(root) as h:
        assert names(h.list()) == {"alpha-run", "swept", "crashed", "delta-run"}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "empty"])
def test_a_corrupt_database_is_rebuilt_from_the_folders(root: Path, damage: str) -> None:
    with History(root) as h:
        h.tag("b", add=["keep-me"])
        db = h.db_path
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 200)
    elif damage == "truncated":  # header intact, pages cut and scribbled on
        db.write_bytes(data[:100] + b"\x13" * 3000)
    elif damage == "foreign":
        db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE something_else (x)")
        conn.commit()
        conn.close()
    else:
        db.write_bytes(b"")
    with History(root) as h:
        assert h.rebuilt_from is not None
        assert h.count() == 4
        assert names(h.list(tag="keep-me")) == {"beta-run"}
        if damage != "empty":
            assert h.set_aside is not None and h.set_aside.exists()
        assert check_db(h._conn) is None


def test_a_missing_database_is_rebuilt_and_remembers_runs_added_from_elsewhere(
        root: Path, tmp_path: Path) -> None:
    outside = make_run(tmp_path / "elsewhere" / "x", "outside-run")
    with History(root) as h:
        h.add(outside)
        assert h.count() == 5
        db = h.db_path
    db.unlink()
    with History(root) as h:
        assert h.rebuilt_from == "missing"
        assert "outside-run" in names(h.list())
    with pytest.raises(HistoryError):
        History(root).add(tmp_path / "elsewhere" / "nothing-here")


def test_delete_keeps_the_folder_unless_asked(root: Path) -> None:
    with History(root) as h:
        h.delete("a")
        assert (root / "a" / "config.yaml").is_file()
        assert "alpha-run" not in names(h.list())
        h.delete("b", delete_files=True)
        assert not (root / "b").exists()
        assert h.count() == 2
        rebuilt = h.rebuild()
    assert rebuilt == 2  # a run hidden on purpose stays hidden after a rebuild
    with History(root) as h:
        h.add(root / "a")
        assert "alpha-run" in names(h.list())


def test_compare_lists_metrics_and_config_differences(root: Path) -> None:
    with History(root) as h:
        result = h.compare(["a", "b"])
        assert result["metrics"]["accuracy"] == [0.95, 0.80]
        assert result["config_diff"] == {"distill.temperature": [1.0, 8.0]}
        with pytest.raises(HistoryError):
            h.compare(["a"])


def test_run_ids_are_stable_across_rebuilds_and_other_runs(root: Path, tmp_path: Path) -> None:
    """A saved ID must keep naming the same run: after a rebuild, a lost database, or other
    runs appearing and disappearing (IDs used to be renumbered in scan order)."""
    with History(root) as h:
        before = {r.path: r.id for r in h.list()}
    assert len(set(before.values())) == len(before) == 4
    make_run(root / "0-first-in-order", "newcomer")  # sorts before every other folder
    import shutil

    shutil.rmtree(root / "b")
    with History(root) as h:
        h.rebuild()
        after = {r.path: r.id for r in h.list()}
    assert {p: i for p, i in after.items() if p in before} == {
        p: i for p, i in before.items() if not p.endswith("/b")}
    (root / "history.sqlite").unlink()
    with History(root) as h:
        assert {r.path: r.id for r in h.list()} == after
        newcomer = next(r for r in h.list() if r.name == "newcomer")
        assert h.get(newcomer.id).path == newcomer.path
    # The same folder under another runs root (a copy, another machine) has the same ID.
    copy = tmp_path / "copy"
    shutil.copytree(root / "a", copy / "a")
    with History(copy) as h:
        assert [r.id for r in h.list()] == [before[str(root / "a")]]
