"""Damaged run folders through the entry points that read them (resume, report, history):
exit 0 or 2, one line, never an internal error (issue 13: "a hidden corpus of damaged run
folders"). Found by probing: a config.yaml that is not UTF-8 or is nested thousands deep made
``report`` and ``history add`` fail with UnicodeDecodeError / RecursionError."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_fuzz import call, check_outcome

DEEP = "[" * 5000 + "]" * 5000


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        target = run / name
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)
    return damage


DAMAGES: dict[str, Callable[[Path], None]] = {
    "config-not-utf8": _write("config.yaml", bytes(range(128, 256))),
    "config-deep": _write("config.yaml", f"name: {DEEP}\n"),
    "config-empty": _write("config.yaml", ""),
    "metrics-deep-line": lambda run: (run / "metrics.jsonl").open("a").write(DEEP + "\n"),
    "metrics-binary": _write("metrics.jsonl", os.urandom(300)),
    "summary-deep": _write("summary.json", DEEP),
    "summary-not-json": _write("summary.json", "{oops"),
    "checkpoint-random": _write("checkpoints/last.pt", bytes(range(256)) * 8),
}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("damaged") / "good"
    result = call(["demo", "--epochs", "1", "--quiet", "--out", str(run),
                   "--set", "data.limit=300"])
    assert result.code == 0, result.err
    return run


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_run_folders_are_handled_by_every_reader(damage, good_run, tmp_path,
                                                         monkeypatch) -> None:
    run = tmp_path / damage
    shutil.copytree(good_run, run)
    DAMAGES[damage](run)
    monkeypatch.setenv("KDGUI_RUNS", str(tmp_path / "runs"))
    for args in (["report", str(run), "--html", str(tmp_path / "r.html")],
                 ["history", "add", str(run)],
                 ["run", "--resume", str(run), "--quiet"]):
        result = call(args)
        check_outcome(result)
    assert not list(run.rglob("*.tmp"))
