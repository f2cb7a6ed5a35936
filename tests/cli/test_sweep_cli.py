"""The teaching commands end to end: sweep, report, history, classroom."""

from __future__ import annotations

import csv
import json

from kdgui.cli.main import main

FAST = ["--epochs", "1", "--set", "data.limit=240", "--set", "training.num_threads=1"]


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sweep_demo_writes_three_runs_and_sweep_csv(tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "--demo", "--vary", "distill.temperature=1,4,8", "--out", str(out),
                 *FAST]) == 0
    text = capsys.readouterr().out
    assert "[3/3] 8: completed" in text and "Pareto" in text
    rows = read_rows(out / "sweep.csv")
    assert [r["value"] for r in rows] == ["1", "4", "8"]
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 3
    for folder, row in zip(runs, rows, strict=True):
        assert folder.name == row["run_dir"]
        assert json.loads((folder / "summary.json").read_text())["completed"]

    html = tmp_path / "r.html"
    assert main(["report", str(out), "--html", str(html), "--csv", str(tmp_path / "r.csv")]) == 0
    assert html.read_text().count("data:image/png;base64,") == 3

    assert main(["history", "--root", str(out), "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("completed") == 3
    assert main(["history", "--root", str(out), "tag", "00_", "warm"]) == 0
    (out / "history.sqlite").write_bytes(b"broken" * 100)
    assert main(["history", "--root", str(out), "search", "warm"]) == 0
    captured = capsys.readouterr()
    assert "rebuilt" in captured.err and "warm" in captured.out


def test_sweep_errors_are_one_line_with_exit_2(tmp_path, capsys) -> None:
    assert main(["sweep", "--demo", "--vary", "distill.temperature", "--out",
                 str(tmp_path / "s")]) == 2
    assert "KEY=V1,V2" in capsys.readouterr().err
    assert main(["sweep", "--demo", "--vary", "quantize.bits=8,1", "--out",
                 str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "bits" in err and "Traceback" not in err
    assert main(["sweep", "--vary", "T=1,2", "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


def test_classroom_lists_six_lessons_and_shows_one(capsys) -> None:
    assert main(["classroom", "list"]) == 0
    text = capsys.readouterr().out
    for name in ("distillation", "temperature", "pruning", "bits", "lowrank",
                 "deep-compression"):
        assert name in text
    assert main(["classroom", "show", "bits"]) == 0
    assert "What to look at" in capsys.readouterr().out
    assert main(["classroom", "run", "nope", "--out", "x"]) == 2
