"""The headless commands a person uses: demo, run, resume, config, inspect, presets, methods."""

from __future__ import annotations

import json

import yaml

from kdgui.cli.main import main
from kdgui.core.config_io import example_yaml


def test_config_example_is_valid(tmp_path, capsys) -> None:
    assert main(["config", "--example"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["config", "--check", str(path)]) == 0
    assert yaml.safe_load(text) and text == example_yaml()


def test_run_from_config_prints_epochs_and_a_table(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: t\ntraining:\n  epochs: 2\n")
    out = tmp_path / "r"
    assert main(["run", str(cfg), "--out", str(out), "--temperature", "6"]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "accuracy" in text and "teacher" in text and "student" in text
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["distill"]["temperature"] == 6.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"]


def test_existing_run_folder_is_refused_then_resumable(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(out), "--quiet"]) == 0


def test_listing_commands(capsys) -> None:
    assert main(["presets"]) == 0
    assert "cnn-small" in capsys.readouterr().out
    assert main(["methods", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in data["loss"]} >= {"hard", "soft", "feature", "attention"}


def test_version(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "kdgui" in capsys.readouterr().out


def test_own_student_file_reloads_without_arch(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out / "student" / "student.safetensors"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert info["params"] == summary["student"]["params"]
    assert info["input_shape"] == [1, 8, 8]


def test_window_without_a_display_says_so_instead_of_aborting(monkeypatch, capsys) -> None:
    import sys

    from kdgui.launcher import main as launch

    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert launch([]) == 2
    assert "no display" in capsys.readouterr().err


def test_help_lists_the_commands_and_the_window_flags() -> None:
    """`kdgui --help` (the console script) shows the subcommands and the window's own flags."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "kdgui", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "compress", "export", "sensitivity"):
        assert f"\n    {command} " in proc.stdout or f"\n    {command}\n" in proc.stdout
    for window_flag in ("--autorun", "--screenshot PATH", "--panel NAME", "--runs-root DIR"):
        assert window_flag in proc.stdout, window_flag
    assert "Traceback" not in proc.stderr


def test_sensitivity_table_and_bad_ratio(tmp_path, capsys) -> None:
    out = tmp_path / "s.json"
    assert main(["sensitivity", "demo", "--data", "digits", "--ratios", "0.5,0.95",
                 "--layers", "layers.0,layers.19", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layers.0" in text and "baseline accuracy" in text
    data = json.loads(out.read_text())
    assert data["layers"] == ["layers.0", "layers.19"] and len(data["accuracy_drop"][0]) == 2
    assert data["accuracy_drop"][1][1] >= data["accuracy_drop"][1][0]  # more pruning, more loss
    assert main(["sensitivity", "demo", "--data", "digits", "--ratios", "1.5"]) == 2
    assert "1.5" in capsys.readouterr().err
