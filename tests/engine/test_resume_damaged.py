"""Resuming a killed run: damaged checkpoints are reported (never loaded unsafely), the previous
checkpoint is offered, the killed process's temporary files go, and the event log ends up with
exactly the lines of an uninterrupted run (issue 13, item 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from kdgui.cli.main import main
from kdgui.core.config import demo_config
from kdgui.core.errors import CheckpointDamaged
from kdgui.core.events import StepEvent
from kdgui.engine.rundir import RunDir
from kdgui.engine.session import run


def _config():
    cfg = demo_config()
    cfg.training.epochs = 3
    cfg.training.log_every = 2
    cfg.data.limit = 500
    return cfg


def _lines(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A clean 3-epoch run, and the same run killed in the middle of its third epoch."""
    base = tmp_path_factory.mktemp("resume")
    list(run(_config(), base / "clean"))
    gen = run(_config(), base / "killed")
    seen = 0
    for event in gen:
        if isinstance(event, StepEvent) and event.epoch == 3:
            seen += 1
            if seen == 2:
                break
    gen.close()  # as if the process had been killed here
    return {"clean": base / "clean", "killed": base / "killed"}


@pytest.fixture
def killed(runs, tmp_path) -> Path:
    folder = tmp_path / "killed"
    shutil.copytree(runs["killed"], folder)
    return folder


def test_the_killed_fixture_has_a_previous_checkpoint_and_aborted_steps(killed) -> None:
    ckpt = killed / "checkpoints"
    last = torch.load(ckpt / "last.pt", weights_only=True)
    prev = torch.load(ckpt / "prev.pt", weights_only=True)
    assert (last["epoch"], prev["epoch"]) == (1, 0)  # after epochs 2 and 1
    assert [e["epoch"] for e in _lines(killed) if e["event"] == "step"][-2:] == [3, 3]


def test_resume_gives_the_clean_runs_event_log_and_leaves_no_tmp_files(runs, killed) -> None:
    (killed / "checkpoints" / ".last.abc123.tmp").write_bytes(b"half a checkpoint")
    (killed / ".config.yaml.xyz.tmp").write_text("half a config")
    assert main(["run", "--resume", str(killed), "--quiet"]) == 0
    clean, resumed = _lines(runs["clean"]), _lines(killed)
    assert len(resumed) == len(clean)
    assert [e["event"] for e in resumed] == [e["event"] for e in clean]
    assert resumed[0]["event"] == "started" and resumed[0]["resumed_from_epoch"] == 2
    steps = [(e["epoch"], e["step"]) for e in resumed if e["event"] == "step"]
    assert steps == [(e["epoch"], e["step"]) for e in clean if e["event"] == "step"]
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["empty", "truncated", "random"])
def test_a_damaged_checkpoint_is_reported_and_the_previous_one_offered(
    killed, capsys, damage
) -> None:
    last = killed / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "random": bytes(range(256)) * 64}[damage])
    before = (killed / "metrics.jsonl").read_bytes()
    assert main(["run", "--resume", str(killed), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "checkpoints/last.pt" in err and ("damaged" in err or "empty" in err)
    assert "checkpoints/prev.pt (after epoch 1) is intact" in err
    assert "weights_only" not in err and "unsafe" not in err.lower()
    assert (killed / "metrics.jsonl").read_bytes() == before  # nothing changed
    # Taking the offer works: the previous checkpoint resumes the run.
    shutil.move(killed / "checkpoints" / "prev.pt", last)
    assert main(["run", "--resume", str(killed), "--quiet"]) == 0
    assert (killed / "summary.json").is_file()


def test_without_an_intact_previous_checkpoint_it_says_start_afresh(killed, capsys) -> None:
    (killed / "checkpoints" / "last.pt").write_bytes(b"\x00" * 100)
    (killed / "checkpoints" / "prev.pt").write_bytes(b"")
    assert main(["run", "--resume", str(killed), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No intact earlier checkpoint" in err and "--out NEW_DIR" in err


def test_a_foreign_torch_file_is_not_taken_for_a_checkpoint(killed) -> None:
    torch.save({"weights": torch.zeros(3)}, killed / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointDamaged, match="not a KD Studio training checkpoint"):
        RunDir.resume(killed)


def test_saving_keeps_exactly_one_previous_checkpoint(tmp_path) -> None:
    folder = RunDir.create(tmp_path / "r", _config())
    for epoch in range(3):
        folder.save_checkpoint({"epoch": epoch, "x": torch.full((2,), float(epoch))})
    ckpt = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt", "prev.pt"]
    assert torch.load(ckpt / "prev.pt", weights_only=True)["epoch"] == 1
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 2
